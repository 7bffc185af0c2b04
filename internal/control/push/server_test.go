package push

import (
	"context"
	"encoding/json"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/control/store"
)

const testToken = "s3cret"

func startServer(t testing.TB, st store.Store, opts Options) (*Server, string) {
	t.Helper()
	if opts.JoinToken == "" {
		opts.JoinToken = testToken
	}
	if opts.Logger == nil {
		opts.Logger = quietLog
	}
	if opts.Grace == 0 {
		opts.Grace = 200 * time.Millisecond
	}
	if opts.Debounce == 0 {
		opts.Debounce = 10 * time.Millisecond
	}
	if opts.StatusInterval == 0 {
		opts.StatusInterval = 20 * time.Millisecond
	}
	if opts.Settle == 0 {
		opts.Settle = -1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(st, opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Serve(ln); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return s, ln.Addr().String()
}

func putYAML(t testing.TB, st store.Store, yaml string) {
	t.Helper()
	var ws []store.Write
	for _, o := range storeObjects(t, yaml) {
		ws = append(ws, store.Write{Object: *o})
	}
	if _, err := st.Put(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
}

// rawProxy is a proxy speaking the protocol by hand, to test the server
// without the real client.
type rawProxy struct {
	t       testing.TB
	cc      *grpc.ClientConn
	stream  grpc.BidiStreamingClient[meshv1.ProxyMessage, meshv1.ConfigUpdate]
	cancel  context.CancelFunc
	updates chan *meshv1.ConfigUpdate
	err     chan error

	mu  sync.Mutex
	res map[string][]byte // assembled resources
}

func dialProxy(t testing.TB, addr, token string, hello *meshv1.Hello) *rawProxy {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	stream, err := meshv1.NewMeshClient(cc).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := &rawProxy{t: t, cc: cc, stream: stream, cancel: cancel,
		updates: make(chan *meshv1.ConfigUpdate, 1000), err: make(chan error, 1), res: map[string][]byte{}}
	t.Cleanup(p.close)
	// A refused stream fails Send with io.EOF; the reason comes on Recv.
	stream.Send(&meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Hello{Hello: hello}})
	go func() {
		for {
			u, err := stream.Recv()
			if err != nil {
				p.err <- err
				close(p.updates)
				return
			}
			p.mu.Lock()
			if u.Snapshot {
				p.res = map[string][]byte{}
			}
			for _, n := range u.Removed {
				delete(p.res, n)
			}
			for _, r := range u.Resources {
				p.res[r.Name] = r.Body
			}
			p.mu.Unlock()
			p.updates <- u
		}
	}()
	return p
}

func (p *rawProxy) close() {
	p.cancel()
	p.cc.Close()
}

func (p *rawProxy) next(timeout time.Duration) *meshv1.ConfigUpdate {
	p.t.Helper()
	select {
	case u, ok := <-p.updates:
		if !ok {
			p.t.Fatalf("stream ended: %v", <-p.err)
		}
		return u
	case <-time.After(timeout):
		p.t.Fatalf("no update within %v", timeout)
		return nil
	}
}

func (p *rawProxy) ack(v string) {
	p.t.Helper()
	if err := p.stream.Send(&meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Ack{Ack: &meshv1.Ack{Version: v}}}); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawProxy) send(m *meshv1.ProxyMessage) {
	p.t.Helper()
	if err := p.stream.Send(m); err != nil {
		p.t.Fatal(err)
	}
}

// waitFor reads updates (ACKing each) until cond holds on the assembled
// resources.
func (p *rawProxy) waitFor(timeout time.Duration, what string, cond func(res map[string][]byte) bool) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		ok := cond(p.res)
		p.mu.Unlock()
		if ok {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			p.t.Fatalf("not true within %v: %s; resources: %v", timeout, what, p.names())
		}
		select {
		case u, ok := <-p.updates:
			if !ok {
				p.t.Fatalf("stream ended: %v", <-p.err)
			}
			p.ack(u.Version)
		case <-time.After(left):
		}
	}
}

func (p *rawProxy) names() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for n := range p.res {
		out = append(out, n)
	}
	return out
}

func endpointsOf(t testing.TB, res map[string][]byte, cluster string) []string {
	t.Helper()
	body, ok := res[meshv1.ClusterResource(cluster)]
	if !ok {
		return nil
	}
	var c compile.Cluster
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range c.Endpoints {
		out = append(out, e.Address+"@"+e.Inbound)
	}
	return out
}

func TestAuthRequired(t *testing.T) {
	_, addr := startServer(t, newMemStore(), Options{})
	p := dialProxy(t, addr, "wrong", &meshv1.Hello{Name: "a"})
	select {
	case <-p.updates:
		err := <-p.err
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("got %v, want Unauthenticated", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
	}
}

func TestHelloMustComeFirst(t *testing.T) {
	_, addr := startServer(t, newMemStore(), Options{})
	cc, _ := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer cc.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+testToken)
	stream, err := meshv1.NewMeshClient(cc).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Ack{Ack: &meshv1.Ack{Version: "x"}}})
	if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
}

// A proxy's registration shows in other proxies' endpoints, and leaves
// them after its stream ends and the grace period passes.
func TestRegistrationReachesOtherProxies(t *testing.T) {
	st := newMemStore()
	putYAML(t, st, meshYAML)
	_, addr := startServer(t, st, Options{})

	client := dialProxy(t, addr, testToken, &meshv1.Hello{Name: "productpage", Dependencies: []string{"reviews"}})
	u := client.next(5 * time.Second)
	if !u.Snapshot {
		t.Fatal("first update is not a snapshot")
	}
	client.ack(u.Version)
	if got := endpointsOf(t, client.res, "reviews-v2.default:9080"); len(got) != 0 {
		t.Fatalf("reviews-v2 endpoints before registration: %v", got)
	}

	v2 := dialProxy(t, addr, testToken, &meshv1.Hello{
		Name: "reviews-v2-x", Labels: map[string]string{"app": "reviews", "version": "v2"},
		Address: "127.0.0.9", Ports: []*meshv1.Port{{Name: "http", Port: 18090}}, Inbound: "127.0.0.9:15006",
		ServiceAccount: "reviews",
	})
	v2.waitFor(5*time.Second, "v2 gets its snapshot", func(res map[string][]byte) bool { return len(res) > 0 })
	want := []string{"127.0.0.9:18090@127.0.0.9:15006"}
	client.waitFor(5*time.Second, "v2's endpoint reaches the client", func(res map[string][]byte) bool {
		return reflect.DeepEqual(endpointsOf(t, res, "reviews-v2.default:9080"), want)
	})
	if !st.registered("Workload/default/reviews-v2-x") {
		t.Fatal("workload not registered")
	}

	v2.close()
	start := time.Now()
	client.waitFor(5*time.Second, "v2's endpoint leaves after grace", func(res map[string][]byte) bool {
		return len(endpointsOf(t, res, "reviews-v2.default:9080")) == 0
	})
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("endpoint removed after %v, before the 200ms grace", d)
	}
}

// A reconnecting proxy keeps its workload: the new registration replaces
// the old, and the old stream's end does not remove it.
func TestReconnectKeepsRegistration(t *testing.T) {
	st := newMemStore()
	putYAML(t, st, meshYAML)
	_, addr := startServer(t, st, Options{})
	hello := &meshv1.Hello{Name: "w", Labels: map[string]string{"app": "ratings"}, Address: "127.0.0.7", Ports: []*meshv1.Port{{Name: "http", Port: 9080}}}
	a := dialProxy(t, addr, testToken, hello)
	a.next(5 * time.Second)
	b := dialProxy(t, addr, testToken, hello)
	b.next(5 * time.Second)
	a.close()
	time.Sleep(400 * time.Millisecond) // twice the grace
	if !st.registered("Workload/default/w") {
		t.Fatal("the old stream's end removed the new registration")
	}
}

func TestNackShowsInStatus(t *testing.T) {
	st := newMemStore()
	putYAML(t, st, meshYAML)
	s, addr := startServer(t, st, Options{})
	p := dialProxy(t, addr, testToken, &meshv1.Hello{Name: "pp", Namespace: "default", Dependencies: []string{"reviews"}})
	u := p.next(5 * time.Second)
	p.ack(u.Version)
	good := u.Version

	putYAML(t, st, strings.Replace(meshYAML, "weight: 10", "weight: 20", 1))
	u2 := p.next(5 * time.Second)
	if u2.Snapshot || u2.Version == good {
		t.Fatalf("want a delta with a new version, got snapshot=%v version=%s", u2.Snapshot, u2.Version)
	}
	p.send(&meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Nack{Nack: &meshv1.Nack{Version: u2.Version, Error: "route table: bad regex"}}})

	var ps []ProxyStatus
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		ps, err = s.Proxies(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 1 && ps[0].NackVersion != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(ps) != 1 {
		t.Fatalf("status: %+v", ps)
	}
	got := ps[0]
	if got.Name != "pp" || got.NackVersion != u2.Version || got.NackError != "route table: bad regex" ||
		got.VersionAcked != good || got.VersionSent != u2.Version || got.InSync() || got.Replica == "" {
		t.Errorf("status %+v", got)
	}
}

func TestWantAndUnknown(t *testing.T) {
	st := newMemStore()
	putYAML(t, st, meshYAML)
	_, addr := startServer(t, st, Options{})
	p := dialProxy(t, addr, testToken, &meshv1.Hello{Name: "pp", Dependencies: []string{"ratings"}})
	u := p.next(5 * time.Second)
	if got := names(u.Resources); !reflect.DeepEqual(got, []string{"cluster/ratings.default:9080", "inbound", "service/default/ratings"}) {
		t.Fatalf("snapshot %v", got)
	}
	p.ack(u.Version)

	p.send(&meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Want{Want: &meshv1.Want{Service: "reviews.default.svc.cluster.local:9080"}}})
	u = p.next(5 * time.Second)
	if u.Snapshot || !contains(names(u.Resources), "service/default/reviews") || !contains(names(u.Resources), "cluster/reviews-v1.default:9080") {
		t.Fatalf("want of reviews gave %v", names(u.Resources))
	}
	p.ack(u.Version)

	p.send(&meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Want{Want: &meshv1.Want{Service: "nope"}}})
	u = p.next(5 * time.Second)
	if len(u.Resources) != 0 || !reflect.DeepEqual(u.Unknown, []string{"default/nope"}) {
		t.Fatalf("want of an unknown service gave resources %v unknown %v", names(u.Resources), u.Unknown)
	}
	p.ack(u.Version)

	// Created later, it arrives by itself: it stayed in scope.
	putYAML(t, st, `
apiVersion: v1
kind: Service
metadata: {name: nope}
spec:
  selector: {app: nope}
  ports: [{name: http, port: 80}]
`)
	p.waitFor(5*time.Second, "nope arrives", func(res map[string][]byte) bool { return res["service/default/nope"] != nil })
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// A proxy that reconnects with the version it holds gets a confirmation,
// not a snapshot.
func TestResyncWithCurrentVersion(t *testing.T) {
	st := newMemStore()
	putYAML(t, st, meshYAML)
	_, addr := startServer(t, st, Options{})
	hello := &meshv1.Hello{Name: "pp", Dependencies: []string{"reviews"}}
	p := dialProxy(t, addr, testToken, hello)
	u := p.next(5 * time.Second)
	p.close()

	hello.Version = u.Version
	p2 := dialProxy(t, addr, testToken, hello)
	u2 := p2.next(5 * time.Second)
	if u2.Snapshot || len(u2.Resources) != 0 || u2.Version != u.Version {
		t.Fatalf("resync: snapshot=%v resources=%d version=%s, want a bare confirmation of %s", u2.Snapshot, len(u2.Resources), u2.Version, u.Version)
	}

	// A stale version gets a snapshot.
	hello.Version = "0123456789abcdef"
	p3 := dialProxy(t, addr, testToken, hello)
	if u3 := p3.next(5 * time.Second); !u3.Snapshot {
		t.Fatal("stale version: no snapshot")
	}
}

// A burst of store changes is compiled and pushed a few times, not once
// per change, and the proxy ends with the newest state.
func TestBurstIsCoalesced(t *testing.T) {
	st := newMemStore()
	putYAML(t, st, meshYAML)
	s, addr := startServer(t, st, Options{Debounce: 50 * time.Millisecond, DebounceMax: 200 * time.Millisecond})
	p := dialProxy(t, addr, testToken, &meshv1.Hello{Name: "pp", Dependencies: []string{"ratings"}})
	p.ack(p.next(5 * time.Second).Version)
	builds := s.Metrics().Builds.Load()

	const n = 40
	for i := 0; i < n; i++ {
		putYAML(t, st, workloadYAML(i))
	}
	p.waitFor(5*time.Second, "all workloads arrive", func(res map[string][]byte) bool {
		return len(endpointsOf(t, res, "ratings.default:9080")) == n+1
	})
	if got := s.Metrics().Builds.Load() - builds; got > 5 {
		t.Errorf("%d changes compiled %d times; want them coalesced", n, got)
	}
}

func workloadYAML(i int) string {
	return `
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: ratings-` + strconv.Itoa(i) + `, labels: {app: ratings}}
spec: {address: 10.0.` + strconv.Itoa(i/250) + `.` + strconv.Itoa(i%250+1) + `, ports: [{name: http, port: 9080}]}
`
}

// Two replicas on one store each list the other's proxies.
func TestProxiesAcrossReplicas(t *testing.T) {
	st := newMemStore()
	putYAML(t, st, meshYAML)
	s1, a1 := startServer(t, st, Options{Replica: "r1"})
	s2, a2 := startServer(t, st, Options{Replica: "r2"})
	p1 := dialProxy(t, a1, testToken, &meshv1.Hello{Name: "one"})
	p1.ack(p1.next(5 * time.Second).Version)
	p2 := dialProxy(t, a2, testToken, &meshv1.Hello{Name: "two"})
	p2.ack(p2.next(5 * time.Second).Version)

	for _, s := range []*Server{s1, s2} {
		var ps []ProxyStatus
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			ps, _ = s.Proxies(context.Background())
			if len(ps) == 2 && ps[0].VersionAcked != "" && ps[1].VersionAcked != "" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(ps) != 2 || ps[0].Name != "one" || ps[0].Replica != "r1" || ps[1].Name != "two" || ps[1].Replica != "r2" || !ps[0].InSync() || !ps[1].InSync() {
			t.Errorf("replica %s lists %+v", s.Replica(), ps)
		}
	}
}

// After a (re)start, a proxy that already holds a config waits for the
// others to re-register; a new proxy does not wait.
func TestSettleHoldsResyncingProxies(t *testing.T) {
	st := newMemStore()
	putYAML(t, st, meshYAML)
	start := time.Now()
	_, addr := startServer(t, st, Options{Settle: 500 * time.Millisecond})
	fresh := dialProxy(t, addr, testToken, &meshv1.Hello{Name: "fresh"})
	fresh.next(5 * time.Second)
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("a new proxy waited %v", d)
	}
	back := dialProxy(t, addr, testToken, &meshv1.Hello{Name: "back", Version: "0123456789abcdef"})
	back.next(5 * time.Second)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("a resyncing proxy got its update after %v, before settling", d)
	}
}
