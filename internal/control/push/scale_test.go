package push

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/control/store"
)

// TestPushScale is the push-at-scale benchmark: a bolt store with S
// services and E endpoints (Workloads), P simulated proxies holding real
// gRPC streams on loopback (each registers its own workload, so P of the E
// endpoints are registrations), then C endpoint changes of one service that
// every proxy calls. For each change it measures the time from the store
// write to each proxy's ACK of the version that has it.
//
// It runs only with WEFT_PUSH_SCALE=1 (it takes a minute and most of two
// cores). Sizes: WEFT_PUSH_SERVICES (1000), WEFT_PUSH_ENDPOINTS (10000),
// WEFT_PUSH_PROXIES (1000), WEFT_PUSH_CHANGES (30), WEFT_PUSH_DEPS (10
// services per proxy; 0 = every service). WEFT_PUSH_OUT writes the report
// (Markdown) to a file.
//
//	WEFT_PUSH_SCALE=1 go test -run TestPushScale -v -timeout 30m ./internal/control/push/
func TestPushScale(t *testing.T) {
	if os.Getenv("WEFT_PUSH_SCALE") == "" {
		t.Skip("set WEFT_PUSH_SCALE=1 to run the push-at-scale benchmark")
	}
	nSvc := envInt("WEFT_PUSH_SERVICES", 1000)
	nEp := envInt("WEFT_PUSH_ENDPOINTS", 10000)
	nProxy := envInt("WEFT_PUSH_PROXIES", 1000)
	nChange := envInt("WEFT_PUSH_CHANGES", 30)
	nDeps := envInt("WEFT_PUSH_DEPS", 10)
	if nProxy > nEp {
		t.Fatal("more proxies than endpoints")
	}

	st, err := store.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()

	// Services svc-0000.. and the static endpoints (those no proxy
	// registers), spread round robin over the services.
	var writes []store.Write
	for i := 0; i < nSvc; i++ {
		writes = append(writes, store.Write{Object: store.Object{Kind: "Service", Namespace: "default", Name: svcName(i),
			Data: []byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":%q,"namespace":"default"},"spec":{"selector":{"app":%q},"ports":[{"name":"http","port":80,"targetPort":"http","appProtocol":"http"}]}}`, svcName(i), svcName(i)))}})
	}
	for i := nProxy; i < nEp; i++ {
		writes = append(writes, store.Write{Object: workloadStoreObject(fmt.Sprintf("static-%05d", i), svcName(i%nSvc), i)})
	}
	for len(writes) > 0 {
		n := min(len(writes), 2000)
		if _, err := st.Put(ctx, writes[:n]); err != nil {
			t.Fatal(err)
		}
		writes = writes[n:]
	}

	var peakHeap atomic.Uint64
	stopSampler := sampleHeap(&peakHeap)
	srv, addr := startServer(t, st, Options{Debounce: DefaultDebounce, DebounceMax: DefaultDebounceMax, Grace: 30 * time.Second, StatusInterval: time.Second})
	ru0 := rusage()
	start := time.Now()

	// The proxies. Proxy i registers workload proxy-i of service i%S and
	// calls svc-0000 (the hot service whose endpoints change) and nDeps-1
	// others.
	hot := meshv1.ClusterResource(compile.ClusterName("default", svcName(0), 80))
	sims := make([]*simProxy, nProxy)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50) // connect 50 at a time, as a rollout would
	for i := range sims {
		var deps []string
		if nDeps > 0 {
			deps = append(deps, svcName(0))
			for len(deps) < nDeps {
				deps = append(deps, svcName(rand.IntN(nSvc)))
			}
		}
		h := &meshv1.Hello{Name: fmt.Sprintf("proxy-%05d", i), Labels: map[string]string{"app": svcName(i % nSvc)},
			Address: ipOf(i), Ports: []*meshv1.Port{{Name: "http", Port: 8080}}, Inbound: ipOf(i) + ":15006", Dependencies: deps}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			sims[i] = startSim(t, addr, h, hot)
		}(i)
	}
	wg.Wait()
	// Every proxy has its snapshot with every registration in place.
	wantHot := nEp/nSvc + boolInt(nEp%nSvc > 0)
	waitSims(t, sims, 5*time.Minute, func(s *simProxy) bool { return s.hotEndpoints.Load() == int64(wantHot) })
	connected := time.Since(start)
	ruConnect := rusage()
	t.Logf("%d proxies connected and in sync after %v (control plane compiled %d times, last compile %v)",
		nProxy, connected.Round(time.Millisecond), srv.Metrics().Builds.Load(), time.Duration(srv.Metrics().LastBuild.Load()).Round(time.Millisecond))

	// Endpoint changes: add a workload to the hot service, then remove it.
	var lastLat, allLat []time.Duration
	ruSteady := rusage()
	for c := 0; c < nChange; c++ {
		want := int64(wantHot + 1)
		if c%2 == 1 {
			want = int64(wantHot)
		}
		for _, s := range sims {
			s.mark.Store(nil)
			s.want.Store(want)
		}
		t0 := time.Now()
		if c%2 == 0 {
			if _, err := st.Put(ctx, []store.Write{{Object: workloadStoreObject("extra", svcName(0), nEp+c)}}); err != nil {
				t.Fatal(err)
			}
		} else if _, err := st.Delete(ctx, []string{"Workload/default/extra"}); err != nil {
			t.Fatal(err)
		}
		waitSims(t, sims, time.Minute, func(s *simProxy) bool { return s.mark.Load() != nil && s.mark.Load().acked })
		var worst time.Duration
		for _, s := range sims {
			d := s.mark.Load().at.Sub(t0)
			allLat = append(allLat, d)
			worst = max(worst, d)
		}
		lastLat = append(lastLat, worst)
		t.Logf("change %d: last proxy ACKed after %v (compile %v)", c, worst.Round(time.Millisecond), time.Duration(srv.Metrics().LastBuild.Load()).Round(time.Millisecond))
		time.Sleep(200 * time.Millisecond) // let status writes settle between changes
	}
	ruEnd := rusage()
	stopSampler()

	sortDur(lastLat)
	sortDur(allLat)
	steadyCPU := ruEnd.cpu - ruSteady.cpu
	steadyWall := time.Since(start) - connected
	report := fmt.Sprintf(`## Push at scale

%d services, %d endpoints (%d registered by proxies, the rest static Workloads), %d proxies on real gRPC streams over loopback in one process, bolt store, %s.
Each proxy calls %s; every change adds or removes an endpoint of a service all of them call.

| measure | value |
|---|---|
| endpoint change -> last proxy ACK, p50 | %v |
| endpoint change -> last proxy ACK, p99 | %v |
| endpoint change -> last proxy ACK, max | %v |
| endpoint change -> each proxy's ACK, p50 / p99 | %v / %v |
| changes measured | %d |
| connect + snapshot of all proxies | %v |
| store List + compile + cut of the whole mesh (last) | %v |
| CPU, connect phase (process) | %v |
| CPU per endpoint change (process, incl. simulated proxies) | %v |
| peak Go heap in use (process) | %d MiB |
| peak RSS (VmHWM, process) | %d MiB |
`, nSvc, nEp, nProxy, nProxy, runtime.GOOS+"/"+runtime.GOARCH+fmt.Sprintf(", %d CPUs", runtime.NumCPU()),
		depsText(nDeps),
		pct(lastLat, 50), pct(lastLat, 99), lastLat[len(lastLat)-1], pct(allLat, 50), pct(allLat, 99), len(lastLat),
		connected.Round(time.Millisecond), time.Duration(srv.Metrics().LastBuild.Load()).Round(time.Millisecond),
		(ruConnect.cpu - ru0.cpu).Round(time.Millisecond), (steadyCPU / time.Duration(nChange)).Round(time.Millisecond),
		peakHeap.Load()>>20, vmHWM()>>20)
	_ = steadyWall
	t.Log("\n" + report)
	if out := os.Getenv("WEFT_PUSH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
	if p99 := pct(lastLat, 99); p99 > time.Second {
		t.Errorf("p99 endpoint change -> last ACK is %v, want under 1s", p99)
	}
	if hwm := vmHWM(); hwm > 1<<30 {
		t.Errorf("peak RSS %d MiB, want under 1 GiB", hwm>>20)
	}
	for _, s := range sims {
		s.close()
	}
}

func depsText(n int) string {
	if n == 0 {
		return "every service (no declared dependencies)"
	}
	return fmt.Sprintf("%d declared services", n)
}

func svcName(i int) string { return fmt.Sprintf("svc-%04d", i) }

func ipOf(i int) string { return fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255) }

func workloadStoreObject(name, app string, i int) store.Object {
	return store.Object{Kind: "Workload", Namespace: "default", Name: name, Data: []byte(fmt.Sprintf(
		`{"apiVersion":"weft.dev/v1alpha1","kind":"Workload","metadata":{"name":%q,"namespace":"default","labels":{"app":%q}},"spec":{"address":%q,"ports":[{"name":"http","port":8080}],"zone":"z%d"}}`,
		name, app, ipOf(i), i%3))}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

// simProxy is a simulated proxy: it keeps the resources it is sent, ACKs
// each update, and records when it first holds the hot cluster with the
// wanted number of endpoints.
type simProxy struct {
	t      testing.TB
	cc     *grpc.ClientConn
	cancel context.CancelFunc
	stream grpc.BidiStreamingClient[meshv1.ProxyMessage, meshv1.ConfigUpdate]
	hot    string

	hotEndpoints atomic.Int64
	want         atomic.Int64
	mark         atomic.Pointer[simMark]
	errs         atomic.Int64
}

type simMark struct {
	at    time.Time
	acked bool
}

func startSim(t testing.TB, addr string, h *meshv1.Hello, hot string) *simProxy {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Error(err)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+testToken)
	stream, err := meshv1.NewMeshClient(cc).Stream(ctx)
	if err != nil {
		t.Error(err)
		cancel()
		return nil
	}
	s := &simProxy{t: t, cc: cc, cancel: cancel, stream: stream, hot: hot}
	s.want.Store(-1)
	if err := stream.Send(&meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Hello{Hello: h}}); err != nil {
		t.Error(err)
	}
	go s.run()
	return s
}

func (s *simProxy) run() {
	// Only the hot cluster is kept: a thousand copies of the mesh would
	// measure the simulation, not the control plane.
	var hot []byte
	for {
		u, err := s.stream.Recv()
		if err != nil {
			return
		}
		touched := false
		if u.Snapshot {
			hot, touched = nil, true
		}
		for _, n := range u.Removed {
			if n == s.hot {
				hot, touched = nil, true
			}
		}
		for _, r := range u.Resources {
			if r.Name == s.hot {
				hot, touched = r.Body, true
			}
		}
		if touched {
			var c compile.Cluster
			if hot != nil {
				if err := json.Unmarshal(hot, &c); err != nil {
					s.errs.Add(1)
				}
			}
			s.hotEndpoints.Store(int64(len(c.Endpoints)))
		}
		err = s.stream.Send(&meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Ack{Ack: &meshv1.Ack{Version: u.Version}}})
		if err != nil {
			return
		}
		if w := s.want.Load(); w >= 0 && s.hotEndpoints.Load() == w && s.mark.Load() == nil {
			s.mark.Store(&simMark{at: time.Now(), acked: true})
		}
	}
}

func (s *simProxy) close() {
	s.cancel()
	s.cc.Close()
}

func waitSims(t testing.TB, sims []*simProxy, timeout time.Duration, cond func(*simProxy) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := 0
		for _, s := range sims {
			if s != nil && cond(s) {
				n++
			}
		}
		if n == len(sims) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d proxies got there in %v", n, len(sims), timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func sortDur(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := (len(d)*p + 99) / 100
	i = min(max(i-1, 0), len(d)-1)
	return d[i].Round(time.Millisecond)
}

type usage struct{ cpu time.Duration }

func rusage() usage {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
}

// sampleHeap records the peak of the Go heap in use until stopped.
func sampleHeap(peak *atomic.Uint64) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() { close(stop); <-done }
}

func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return n << 10
		}
	}
	return 0
}
