package stats

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	telemetryv1 "weft.dev/weft/api/telemetry/v1"
	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/proxy/reporter"
	"weft.dev/weft/internal/telemetry"
)

// The Report stream end to end: a proxy's telemetry and reporter on one
// side, Stats on a real gRPC server and the HTTP API on the other.

type rig struct {
	s   *Stats
	tel *telemetry.Telemetry
	rec *telemetry.Recorder
	api *httptest.Server
	cc  *grpc.ClientConn
}

func newRig(t *testing.T, authorize func(context.Context, *telemetryv1.Hello) error) *rig {
	t.Helper()
	st := newTestStore(t, meshObjects()...)
	s, err := New(Options{Store: st, Authorize: authorize})
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	s.Register(gs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	a, err := api.New(api.Options{Store: st, AdminToken: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	s.Mount(a)
	hs := httptest.NewServer(a)
	t.Cleanup(hs.Close)
	tel, err := telemetry.New(telemetry.Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return &rig{s: s, tel: tel, rec: tel.For(telemetry.Peer{Workload: "frontend-1", Namespace: "shop"}, nil), api: hs, cc: cc}
}

// call sends one request through the recorder as the proxy would.
func (r *rig) call(path string, code int) {
	req := httptest.NewRequest("GET", "http://backend"+path, nil)
	x := r.rec.Begin(httptest.NewRecorder(), req, telemetry.Client)
	x.Service("backend", "shop")
	x.Route("shop/backend/0")
	x.Cluster("backend.shop:80")
	x.Upstream("shop/backend-1", "10.0.0.1:80")
	x.WriteHeader(code)
	x.End()
}

func (r *rig) get(t *testing.T, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", r.api.URL+path, nil)
	req.Header.Set("Authorization", "Bearer admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) runReporter(t *testing.T) context.CancelFunc {
	rep := reporter.New(reporter.Options{Telemetry: r.tel, Name: "frontend-1", Namespace: "shop",
		Labels: map[string]string{"app": "frontend"}, Interval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rep.Run(ctx, r.cc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reporter: %v", err)
		}
	})
	return cancel
}

func TestReportToGraph(t *testing.T) {
	r := newRig(t, nil)
	for i := 0; i < 7; i++ {
		r.call("/x", 200)
	}
	r.call("/x", 503)
	r.runReporter(t)
	var g api.GraphResponse
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.get(t, "/api/v1/graph?window=1m", &g)
		var found *api.GraphEdge
		for i, e := range g.Edges {
			if e.Source == "shop/frontend" && e.Target == "shop/backend" {
				found = &g.Edges[i]
			}
		}
		if found != nil && found.Requests == 8 {
			if found.Errors != 1 || found.RPS <= 0 {
				t.Errorf("edge = %+v; want 1 error and a rate", found)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no frontend -> backend edge with 8 requests: %+v", g.Edges)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// More traffic arrives as differences.
	for i := 0; i < 5; i++ {
		r.call("/y", 200)
	}
	for {
		r.get(t, "/api/v1/graph", &g)
		if len(g.Edges) == 1 && g.Edges[0].Requests == 13 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edges %+v; want 13 requests", g.Edges)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var ps api.ProxiesResponse
	r.get(t, "/api/v1/proxies", &ps)
	if len(ps.Proxies) != 1 || ps.Proxies[0].Name != "frontend-1" || ps.Proxies[0].Telemetry == nil || !ps.Proxies[0].Telemetry.Connected {
		t.Errorf("proxies = %+v", ps)
	}
	var m api.ServiceMetricsResponse
	r.get(t, "/api/v1/services/shop/backend/metrics?window=1m", &m)
	if m.Golden.Requests != 13 || len(m.Routes) != 1 || m.Routes[0].Route != "shop/backend/0" {
		t.Errorf("service metrics = %+v", m)
	}
}

func TestTapThroughStream(t *testing.T) {
	r := newRig(t, nil)
	r.runReporter(t)
	// Wait for the stream, so the tap reaches the proxy.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if len(r.s.telemetryOf()) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reporter never connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", r.api.URL+"/api/v1/tap?namespace=shop&service=backend&path=/t/&limit=2", nil)
	req.Header.Set("Authorization", "Bearer admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer cancel()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("content type %q", ct)
	}
	lines := make(chan api.TapLine, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var l api.TapLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
		close(lines)
	}()
	first := <-lines
	if first.Kind != api.TapLineOpened || first.Proxies != 1 {
		t.Fatalf("first line %+v; want a tap line naming 1 proxy", first)
	}
	// The proxy gets TapStart asynchronously: send until tapped.
	var got []*api.TapRequest
	stop := time.After(5 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break loop
			}
			if l.Kind == api.TapLineRequest {
				got = append(got, l.Request)
			}
		case <-tick.C:
			r.call("/other", 200) // filtered out by path
			r.call("/t/1", 201)
		case <-stop:
			t.Fatalf("tapped %d requests in 5s", len(got))
		}
	}
	if len(got) != 2 {
		t.Fatalf("tapped %d requests with limit=2", len(got))
	}
	ev := got[0]
	if ev.Path != "/t/1" || ev.Method != "GET" || ev.Status != 201 || ev.DestinationService != "backend.shop" ||
		ev.SourceWorkload != "frontend-1" || ev.Proxy != "shop/frontend-1" || ev.LatencyMs <= 0 {
		t.Errorf("tapped %+v", ev)
	}
	// The stream ended with the limit: the proxy is told to stop.
	for deadline := time.Now().Add(5 * time.Second); ; {
		r.s.mu.Lock()
		n := len(r.s.taps)
		r.s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tap still open after its client left")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		r.call("/t/2", 200)
		time.Sleep(20 * time.Millisecond)
		if len(r.tel.TapEvents()) == 0 {
			break
		}
		for len(r.tel.TapEvents()) > 0 {
			<-r.tel.TapEvents()
		}
		if time.Now().After(deadline) {
			t.Fatal("the proxy still taps after TapStop")
		}
	}
}

func TestReportRefused(t *testing.T) {
	r := newRig(t, func(context.Context, *telemetryv1.Hello) error { return status.Error(codes.Unauthenticated, "no") })
	rep := reporter.New(reporter.Options{Telemetry: r.tel, Name: "a"})
	err := rep.Run(context.Background(), r.cc)
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("Run = %v; want Unauthenticated", err)
	}
}

func TestTapHTTPErrors(t *testing.T) {
	r := newRig(t, nil)
	for _, q := range []string{"path=nope", "limit=x", "limit=-1"} {
		req, _ := http.NewRequest("GET", r.api.URL+"/api/v1/tap?"+q, nil)
		req.Header.Set("Authorization", "Bearer admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("tap?%s: %s; want 400", q, resp.Status)
		}
	}
	resp, err := http.Get(r.api.URL + "/api/v1/graph")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("graph without token: %s; want 401", resp.Status)
	}
	req, _ := http.NewRequest("GET", r.api.URL+"/api/v1/graph?window=banana", nil)
	req.Header.Set("Authorization", "Bearer admin")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		t.Errorf("graph?window=banana: %s", resp.Status)
	}
}
