package controlclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeControl is a control plane the test drives by hand.
type fakeControl struct {
	meshv1.UnimplementedMeshServer
	addr     string
	srv      *grpc.Server
	sessions chan *session
}

type session struct {
	hello  *meshv1.Hello
	token  string
	stream grpc.BidiStreamingServer[meshv1.ProxyMessage, meshv1.ConfigUpdate]
	msgs   chan *meshv1.ProxyMessage
	end    chan error // what the server returns to end the stream
}

func startFake(t *testing.T, addr string) *fakeControl {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeControl{addr: ln.Addr().String(), srv: grpc.NewServer(), sessions: make(chan *session, 10)}
	meshv1.RegisterMeshServer(f.srv, f)
	go f.srv.Serve(ln)
	t.Cleanup(f.srv.Stop)
	return f
}

func (f *fakeControl) Stream(stream grpc.BidiStreamingServer[meshv1.ProxyMessage, meshv1.ConfigUpdate]) error {
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	md, _ := metadata.FromIncomingContext(stream.Context())
	s := &session{hello: m.GetHello(), stream: stream, msgs: make(chan *meshv1.ProxyMessage, 100), end: make(chan error, 1)}
	if v := md.Get("authorization"); len(v) > 0 {
		s.token = v[0]
	}
	f.sessions <- s
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				close(s.msgs)
				return
			}
			s.msgs <- m
		}
	}()
	select {
	case err := <-s.end:
		return err
	case <-stream.Context().Done():
		return nil
	}
}

func (f *fakeControl) session(t *testing.T) *session {
	t.Helper()
	select {
	case s := <-f.sessions:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not connect")
		return nil
	}
}

func (s *session) send(t *testing.T, u *meshv1.ConfigUpdate) {
	t.Helper()
	if err := s.stream.Send(u); err != nil {
		t.Fatal(err)
	}
}

func (s *session) reply(t *testing.T) *meshv1.ProxyMessage {
	t.Helper()
	select {
	case m, ok := <-s.msgs:
		if !ok {
			t.Fatal("stream ended")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no reply from the proxy")
		return nil
	}
}

func svcRes(t *testing.T, ns, name string, port int32) *meshv1.Resource {
	t.Helper()
	s := &compile.Service{Name: name, Namespace: ns, Hosts: []string{name, name + "." + ns},
		Ports: []*compile.ServicePort{{Name: "http", Port: port, Protocol: "http"}}}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return &meshv1.Resource{Name: meshv1.ServiceResource(ns, name), Body: b}
}

func clusterRes(t *testing.T, name string, addrs ...string) *meshv1.Resource {
	t.Helper()
	c := &compile.Cluster{Name: name, Endpoints: []*compile.Endpoint{}}
	for _, a := range addrs {
		c.Endpoints = append(c.Endpoints, &compile.Endpoint{Address: a})
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return &meshv1.Resource{Name: meshv1.ClusterResource(name), Body: b}
}

// dataPlane records what Apply gets and refuses versions on demand.
type dataPlane struct {
	mu      sync.Mutex
	applied []*compile.Config
	refuse  map[string]error
}

func (d *dataPlane) apply(cfg *compile.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.refuse[cfg.Version]; err != nil {
		return err
	}
	d.applied = append(d.applied, cfg)
	return nil
}

func (d *dataPlane) last() *compile.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.applied) == 0 {
		return nil
	}
	return d.applied[len(d.applied)-1]
}

func startClient(t *testing.T, opts Options) (*Client, *dataPlane, func()) {
	t.Helper()
	dp := &dataPlane{refuse: map[string]error{}}
	if opts.Name == "" {
		opts.Name = "pp"
	}
	opts.Apply = dp.apply
	opts.Logger = quietLog
	if opts.BackoffBase == 0 {
		opts.BackoffBase = 10 * time.Millisecond
		opts.BackoffMax = 50 * time.Millisecond
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return c, dp, stop
}

func ackOf(m *meshv1.ProxyMessage) string { return m.GetAck().GetVersion() }

func TestSnapshotThenDeltas(t *testing.T) {
	f := startFake(t, "")
	_, dp, _ := startClient(t, Options{Addrs: []string{f.addr}, Token: "tok", Namespace: "shop",
		Labels: map[string]string{"app": "pp"}, Address: "10.0.0.1", Ports: []Port{{"http", 8080}}, Inbound: "10.0.0.1:15006",
		Dependencies: []string{"reviews"}})
	s := f.session(t)
	if s.token != "Bearer tok" {
		t.Errorf("authorization %q", s.token)
	}
	h := s.hello
	if h.Name != "pp" || h.Namespace != "shop" || h.Address != "10.0.0.1" || h.Inbound != "10.0.0.1:15006" ||
		len(h.Ports) != 1 || h.Ports[0].Port != 8080 || !reflect.DeepEqual(h.Dependencies, []string{"reviews"}) || h.Version != "" {
		t.Errorf("hello %+v", h)
	}

	s.send(t, &meshv1.ConfigUpdate{Version: "v1", Snapshot: true, Resources: []*meshv1.Resource{
		svcRes(t, "shop", "reviews", 9080), svcRes(t, "shop", "ratings", 9080),
		clusterRes(t, "reviews.shop:9080", "10.0.0.2:9080"), clusterRes(t, "ratings.shop:9080"),
	}})
	if got := ackOf(s.reply(t)); got != "v1" {
		t.Fatalf("ack %q", got)
	}
	cfg := dp.last()
	if cfg.Version != "v1" || len(cfg.Services) != 2 || cfg.Services[0].Name != "ratings" || len(cfg.Clusters) != 2 {
		t.Fatalf("applied %+v", cfg)
	}

	s.send(t, &meshv1.ConfigUpdate{Version: "v2", Resources: []*meshv1.Resource{clusterRes(t, "reviews.shop:9080", "10.0.0.2:9080", "10.0.0.3:9080")},
		Removed: []string{"service/shop/ratings", "cluster/ratings.shop:9080"}})
	if got := ackOf(s.reply(t)); got != "v2" {
		t.Fatalf("ack %q", got)
	}
	cfg = dp.last()
	if cfg.Version != "v2" || len(cfg.Services) != 1 || len(cfg.Clusters) != 1 || len(cfg.Clusters["reviews.shop:9080"].Endpoints) != 2 {
		t.Fatalf("after delta %+v", cfg)
	}
	// A new snapshot replaces everything.
	s.send(t, &meshv1.ConfigUpdate{Version: "v3", Snapshot: true, Resources: []*meshv1.Resource{svcRes(t, "shop", "x", 80)}})
	s.reply(t)
	if cfg := dp.last(); len(cfg.Services) != 1 || cfg.Services[0].Name != "x" || len(cfg.Clusters) != 0 {
		t.Fatalf("after second snapshot %+v", cfg)
	}
}

func TestNackKeepsLastGood(t *testing.T) {
	f := startFake(t, "")
	c, dp, _ := startClient(t, Options{Addrs: []string{f.addr}})
	s := f.session(t)
	s.send(t, &meshv1.ConfigUpdate{Version: "good", Snapshot: true, Resources: []*meshv1.Resource{svcRes(t, "default", "a", 80)}})
	s.reply(t)

	dp.refuse["bad"] = errors.New("route table: regex does not compile")
	s.send(t, &meshv1.ConfigUpdate{Version: "bad", Resources: []*meshv1.Resource{svcRes(t, "default", "b", 80)}})
	m := s.reply(t)
	if m.GetNack().GetVersion() != "bad" || m.GetNack().GetError() != "route table: regex does not compile" {
		t.Fatalf("want a NACK of bad, got %v", m)
	}
	if c.Config().Version != "good" || dp.last().Version != "good" {
		t.Fatal("the last good config is not kept")
	}
	if st := c.Status(); st.Applied != "good" || st.Version != "bad" || st.LastError == "" {
		t.Errorf("status %+v", st)
	}

	// A resource that does not decode is NACKed too.
	s.send(t, &meshv1.ConfigUpdate{Version: "garbled", Resources: []*meshv1.Resource{{Name: "cluster/x", Body: []byte("{not json")}}})
	if m := s.reply(t); m.GetNack().GetVersion() != "garbled" {
		t.Fatalf("want a NACK of garbled, got %v", m)
	}

	// The next delta fixes both, on top of what was received.
	s.send(t, &meshv1.ConfigUpdate{Version: "fixed", Resources: []*meshv1.Resource{clusterRes(t, "x")}})
	if got := ackOf(s.reply(t)); got != "fixed" {
		t.Fatalf("ack %q", got)
	}
	if cfg := c.Config(); len(cfg.Services) != 2 || cfg.Clusters["x"] == nil {
		t.Errorf("fixed config %+v", cfg)
	}
}

// The client rotates through the replicas, resends its version and learned
// services on reconnect, and keeps its config while disconnected.
func TestReconnect(t *testing.T) {
	dead := freeAddr(t)
	f := startFake(t, "")
	c, _, _ := startClient(t, Options{Addrs: []string{dead, f.addr}, Dependencies: []string{"a"}})
	s := f.session(t)
	s.send(t, &meshv1.ConfigUpdate{Version: "v1", Snapshot: true, Resources: []*meshv1.Resource{svcRes(t, "default", "a", 80)}})
	s.reply(t)
	c.Want("b.default.svc.cluster.local")
	if m := s.reply(t); m.GetWant().GetService() != "default/b" {
		t.Fatalf("want %v", m)
	}

	s.end <- status.Error(codes.Unavailable, "replica going away")
	s2 := f.session(t)
	if s2.hello.Version != "v1" || !reflect.DeepEqual(s2.hello.Learned, []string{"default/b"}) {
		t.Errorf("second hello: version %q learned %v", s2.hello.Version, s2.hello.Learned)
	}
	if c.Config() == nil || c.Config().Version != "v1" {
		t.Error("config lost across reconnect")
	}
	// A bare confirmation of the version it holds is ACKed without a
	// re-apply.
	s2.send(t, &meshv1.ConfigUpdate{Version: "v1"})
	if got := ackOf(s2.reply(t)); got != "v1" {
		t.Fatalf("ack %q", got)
	}

	// The whole control plane goes away and comes back on the same address.
	addr := f.addr
	f.srv.Stop()
	time.Sleep(100 * time.Millisecond)
	if c.Status().Connected {
		t.Error("still connected after the server stopped")
	}
	f2 := startFake(t, addr)
	s3 := f2.session(t)
	if s3.hello.Version != "v1" {
		t.Errorf("hello after restart has version %q", s3.hello.Version)
	}
}

func TestUnauthenticatedIsFatal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	meshv1.RegisterMeshServer(srv, refuser{})
	go srv.Serve(ln)
	defer srv.Stop()
	err = Run(context.Background(), Options{Addrs: []string{ln.Addr().String()}, Name: "x", Apply: func(*compile.Config) error { return nil }, Logger: quietLog})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Run returned %v, want Unauthenticated", err)
	}
}

type refuser struct{ meshv1.UnimplementedMeshServer }

func (refuser) Stream(grpc.BidiStreamingServer[meshv1.ProxyMessage, meshv1.ConfigUpdate]) error {
	return status.Error(codes.Unauthenticated, "missing or wrong join token")
}

func TestWaitFor(t *testing.T) {
	f := startFake(t, "")
	c, _, _ := startClient(t, Options{Addrs: []string{f.addr}, Dependencies: []string{"a"}})
	s := f.session(t)
	s.send(t, &meshv1.ConfigUpdate{Version: "v1", Snapshot: true, Resources: []*meshv1.Resource{svcRes(t, "default", "a", 80)}})
	s.reply(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !c.WaitFor(ctx, "a:80") {
		t.Error("WaitFor of a service in the config: false")
	}
	if c.WaitFor(ctx, "api.example.com") {
		t.Error("WaitFor of an outside host: true")
	}

	got := make(chan bool)
	go func() { got <- c.WaitFor(ctx, "b") }()
	if m := s.reply(t); m.GetWant().GetService() != "default/b" {
		t.Fatalf("want %v", m)
	}
	s.send(t, &meshv1.ConfigUpdate{Version: "v2", Resources: []*meshv1.Resource{svcRes(t, "default", "b", 80)}})
	if !<-got {
		t.Error("WaitFor of b after it arrived: false")
	}
	s.reply(t) // ack

	start := time.Now()
	go func() { got <- c.WaitFor(ctx, "nope") }()
	s.reply(t) // the want
	s.send(t, &meshv1.ConfigUpdate{Version: "v2", Unknown: []string{"default/nope"}})
	if <-got {
		t.Error("WaitFor of an unknown service: true")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("WaitFor of an unknown service took %v", d)
	}
}

func TestBackoff(t *testing.T) {
	base, max := 100*time.Millisecond, 5*time.Second
	for n := 0; n < 40; n++ {
		ceil := max
		if n < 6 {
			ceil = base << n
		}
		var sum time.Duration
		for i := 0; i < 200; i++ {
			d := Backoff(n, base, max)
			if d <= 0 || d > ceil+time.Millisecond {
				t.Fatalf("Backoff(%d) = %v, want in (0, %v]", n, d, ceil)
			}
			sum += d
		}
		// Full jitter: the mean is about half the ceiling.
		if mean := sum / 200; mean < ceil/4 || mean > ceil*3/4 {
			t.Errorf("Backoff(%d) mean %v for ceiling %v", n, mean, ceil)
		}
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// With the real data plane: a version whose route table cannot be built
// is NACKed with the proxy's reason, and the proxy keeps its last good
// config.
func TestRealProxyRefusal(t *testing.T) {
	f := startFake(t, "")
	p := proxy.New(proxy.Options{Logger: quietLog})
	defer p.Close()
	c, err := New(Options{Addrs: []string{f.addr}, Name: "pp", Apply: p.Apply, Logger: quietLog, BackoffBase: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	s := f.session(t)
	s.send(t, &meshv1.ConfigUpdate{Version: "good", Snapshot: true, Resources: []*meshv1.Resource{svcRes(t, "default", "a", 80)}})
	if got := ackOf(s.reply(t)); got != "good" {
		t.Fatalf("ack %q", got)
	}
	bad := &compile.Service{Name: "a", Namespace: "default", Hosts: []string{"a"}, Ports: []*compile.ServicePort{{Name: "http", Port: 80, Protocol: "http",
		HTTP: &compile.HTTPRouting{Rules: []*compile.HTTPRule{{Route: "default/a/0", Matches: []*compile.HTTPMatch{{PathType: compile.PathRegex, Path: "(unclosed"}}}}}}}}
	body, _ := json.Marshal(bad)
	s.send(t, &meshv1.ConfigUpdate{Version: "bad", Resources: []*meshv1.Resource{{Name: "service/default/a", Body: body}}})
	m := s.reply(t)
	if m.GetNack().GetVersion() != "bad" || !strings.Contains(m.GetNack().GetError(), "regex") {
		t.Fatalf("want a NACK of bad naming the regex, got %v", m)
	}
	if v := p.Config().Version; v != "good" {
		t.Errorf("proxy runs %q, want its last good config", v)
	}
}

// A proxy that gets every service does not wait for hosts it lacks.
func TestWaitForWithoutDependencies(t *testing.T) {
	f := startFake(t, "")
	c, _, _ := startClient(t, Options{Addrs: []string{f.addr}})
	s := f.session(t)
	s.send(t, &meshv1.ConfigUpdate{Version: "v1", Snapshot: true, Resources: []*meshv1.Resource{svcRes(t, "default", "a", 80)}})
	s.reply(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !c.WaitFor(ctx, "a") || c.WaitFor(ctx, "b") {
		t.Error("WaitFor: want a known, b not")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("WaitFor took %v", d)
	}
}
