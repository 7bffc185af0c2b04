package stats

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	telemetryv1 "weft.dev/weft/api/telemetry/v1"
	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/control/store"
)

var testBounds = []float64{0.001, 0.01, 0.1, 1}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestStore(t *testing.T, objs ...store.Object) store.Store {
	t.Helper()
	st, err := store.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var ws []store.Write
	for _, o := range objs {
		ws = append(ws, store.Write{Object: o})
	}
	if len(ws) > 0 {
		if _, err := st.Put(context.Background(), ws); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func service(ns, name, selector string) store.Object {
	return store.Object{Kind: "Service", Namespace: ns, Name: name,
		Data: []byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":%q,"namespace":%q},"spec":{"selector":%s}}`, name, ns, selector))}
}

func workload(ns, name, labels, addr string) store.Object {
	return store.Object{Kind: "Workload", Namespace: ns, Name: name,
		Data: []byte(fmt.Sprintf(`{"apiVersion":"weft.dev/v1alpha1","kind":"Workload","metadata":{"name":%q,"namespace":%q,"labels":%s},"spec":{"address":%q}}`, name, ns, labels, addr))}
}

func newTestStats(t *testing.T, c *clock, objs ...store.Object) *Stats {
	t.Helper()
	s, err := New(Options{Store: newTestStore(t, objs...), Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hello(ns, name string, labels map[string]string, started time.Time) *telemetryv1.Hello {
	return &telemetryv1.Hello{Name: name, Namespace: ns, Labels: labels, StartedUnixNano: started.UnixNano(), DurationBuckets: testBounds}
}

// req is one destination's cumulative totals; latency puts every request
// in one bucket.
func req(svc, route string, n, errs uint64, bucket int) *telemetryv1.RequestStats {
	b := make([]uint64, len(testBounds)+1)
	b[bucket] = n
	return &telemetryv1.RequestStats{DestinationService: svc, Route: route, Requests: n, Errors: errs, Buckets: b,
		StatusClasses: []uint64{0, 0, n - errs, 0, 0, errs}}
}

func stats(rs ...*telemetryv1.RequestStats) *telemetryv1.Stats {
	return &telemetryv1.Stats{Requests: rs}
}

func TestQuantile(t *testing.T) {
	c := counts{buckets: []uint64{0, 10, 0, 0, 0}}
	// All 10 in (1ms, 10ms]: the median interpolates to the middle.
	if got := c.quantile(0.5, testBounds); math.Abs(got-0.0055) > 1e-9 {
		t.Errorf("p50 = %v; want 0.0055", got)
	}
	c = counts{buckets: []uint64{50, 40, 9, 0, 1}}
	if got := c.quantile(0.5, testBounds); got != 0.001 {
		t.Errorf("p50 = %v; want 0.001", got)
	}
	if got := c.quantile(0.99, testBounds); math.Abs(got-0.1) > 1e-9 {
		t.Errorf("p99 = %v; want 0.1", got)
	}
	if got := c.quantile(0.999, testBounds); got != 1 {
		t.Errorf("p99.9 in +Inf = %v; want the last finite bound 1", got)
	}
	if got := (&counts{}).quantile(0.5, testBounds); !math.IsNaN(got) {
		t.Errorf("quantile of nothing = %v; want NaN", got)
	}
}

func TestAggregatorDeltas(t *testing.T) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	s := newTestStats(t, c)
	s.agg.setBounds(testBounds)
	sum := func() uint64 {
		var n uint64
		for _, v := range s.series.window(0, math.MaxInt64, nil) {
			n += v.requests
		}
		return n
	}

	// A proxy that just started: its first report counts from zero.
	fresh := hello("default", "a", nil, c.now().Add(-2*time.Second))
	s.agg.report(fresh, true, stats(req("b.default", "", 10, 0, 1)))
	if n := sum(); n != 10 {
		t.Fatalf("after a fresh run's first report: %d; want 10", n)
	}
	c.advance(2 * time.Second)
	s.agg.report(fresh, true, stats(req("b.default", "", 15, 1, 1), req("c.default", "default/c/0", 3, 0, 2)))
	if n := sum(); n != 18 {
		t.Fatalf("after the second report: %d; want 18 (5 more to b, 3 to a new destination)", n)
	}

	// An old run seen for the first time (this replica restarted): only a
	// baseline, never its whole past at once.
	old := hello("default", "x", nil, c.now().Add(-time.Hour))
	s.agg.report(old, true, stats(req("b.default", "", 1000, 0, 1)))
	if n := sum(); n != 18 {
		t.Fatalf("an old run's first report counted: %d; want 18", n)
	}
	c.advance(2 * time.Second)
	s.agg.report(old, true, stats(req("b.default", "", 1004, 0, 1)))
	if n := sum(); n != 22 {
		t.Fatalf("after the old run's second report: %d; want 22", n)
	}

	// The same proxy restarted: a new run, fresh.
	again := hello("default", "a", nil, c.now())
	s.agg.report(again, true, stats(req("b.default", "", 2, 0, 1)))
	if n := sum(); n != 24 {
		t.Fatalf("after a restart: %d; want 24", n)
	}

	// Counters that went down in one run are taken as a restart.
	c.advance(2 * time.Second)
	s.agg.report(again, true, stats(req("b.default", "", 1, 0, 1)))
	if n := sum(); n != 25 {
		t.Fatalf("after counters went down: %d; want 25", n)
	}

	// The window forgets: 16 minutes on, nothing is left.
	c.advance(16 * time.Minute)
	sp := s.span(15 * time.Minute)
	var n uint64
	for _, v := range s.series.window(sp.from, sp.to, nil) {
		n += v.requests
	}
	if n != 0 {
		t.Errorf("%d requests 16 minutes on; want 0", n)
	}
}

func meshObjects() []store.Object {
	return []store.Object{
		service("shop", "frontend", `{"app":"frontend"}`),
		service("shop", "backend", `{"app":"backend"}`),
		service("shop", "backend-v2", `{"app":"backend","version":"v2"}`),
		service("other", "idle", `{"app":"idle"}`),
		workload("shop", "backend-1", `{"app":"backend","version":"v1"}`, "10.0.0.1"),
		workload("shop", "backend-2", `{"app":"backend","version":"v2"}`, "10.0.0.2"),
		workload("shop", "frontend-1", `{"app":"frontend"}`, "10.0.0.3"),
	}
}

func TestGraph(t *testing.T) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	s := newTestStats(t, c, meshObjects()...)
	s.agg.setBounds(testBounds)
	fe := hello("shop", "frontend-1", map[string]string{"app": "frontend"}, c.now())
	be := hello("shop", "backend-2", map[string]string{"app": "backend", "version": "v2"}, c.now())
	cli := hello("shop", "loadgen", map[string]string{"app": "loadgen"}, c.now())
	s.agg.report(fe, true, stats(req("backend.shop", "shop/backend/0", 0, 0, 1)))
	c.advance(10 * time.Second)
	s.agg.report(fe, true, stats(req("backend.shop", "shop/backend/0", 100, 5, 1), req("unknown", "", 2, 0, 0)))
	s.agg.report(be, true, stats(req("db.other", "", 20, 0, 2)))
	s.agg.report(cli, true, stats(req("frontend.shop", "", 30, 0, 1)))
	c.advance(2 * time.Second)

	g, err := s.Graph(context.Background(), "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]api.GraphNode{}
	for _, n := range g.Nodes {
		nodes[n.ID] = n
	}
	for id, kind := range map[string]string{
		"shop/frontend": api.NodeService, "shop/backend": api.NodeService, "shop/backend-v2": api.NodeService,
		"other/idle": api.NodeService, "other/db": api.NodeService, "workload:shop/loadgen": api.NodeWorkload, "unknown": api.NodeUnknown,
	} {
		if nodes[id].Kind != kind {
			t.Errorf("node %s: kind %q; want %q (nodes %v)", id, nodes[id].Kind, kind, nodes)
		}
	}
	if n := nodes["shop/backend"]; n.Workloads != 2 || n.Inbound.Requests != 100 || n.Inbound.Errors != 5 {
		t.Errorf("backend node = %+v; want 2 workloads, 100 requests, 5 errors", n)
	}
	edges := map[string]api.GraphEdge{}
	for _, e := range g.Edges {
		edges[e.Source+" -> "+e.Target] = e
	}
	e, ok := edges["shop/frontend -> shop/backend"]
	if !ok {
		t.Fatalf("no frontend -> backend edge: %v", edges)
	}
	// The window is 12 slots of 5 s ending with the current one, of which
	// 2 s have passed: 57 s.
	if e.Requests != 100 || math.Abs(*e.SuccessRate-0.95) > 1e-9 || math.Abs(e.RPS-100.0/57) > 1e-9 || g.WindowSeconds != 57 {
		t.Errorf("edge = %+v (window %vs); want 100 requests, success 0.95, rps 100/57", e, g.WindowSeconds)
	}
	if e.P99 == nil || *e.P99 <= 1 || *e.P99 > 10 {
		t.Errorf("edge p99 = %v; want within the (1ms, 10ms] bucket", e.P99)
	}
	// backend-2 is selected by backend and backend-v2: the broader one
	// names the caller.
	if _, ok := edges["shop/backend -> other/db"]; !ok {
		t.Errorf("no backend -> db edge: %v", edges)
	}
	if _, ok := edges["workload:shop/loadgen -> shop/frontend"]; !ok {
		t.Errorf("no loadgen -> frontend edge: %v", edges)
	}
	if _, ok := edges["shop/frontend -> unknown"]; !ok {
		t.Errorf("no frontend -> unknown edge: %v", edges)
	}

	g, err = s.Graph(context.Background(), "other", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Edges) != 1 || g.Edges[0].Source != "shop/backend" || g.Edges[0].Target != "other/db" {
		t.Errorf("namespace other: edges %+v; want only backend -> db", g.Edges)
	}
}

func TestServiceMetrics(t *testing.T) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	s := newTestStats(t, c, meshObjects()...)
	s.agg.setBounds(testBounds)
	fe := hello("shop", "frontend-1", map[string]string{"app": "frontend"}, c.now())
	var a, b uint64
	for i := 0; i < 6; i++ { // a report every 5 s, 10 requests each to route 0, 5 to route 1
		a += 10
		b += 5
		s.agg.report(fe, true, stats(req("backend.shop", "shop/backend/0", a, 0, 1), req("backend.shop", "shop/backend/1", b, b/5, 2)))
		c.advance(5 * time.Second)
	}
	m, err := s.ServiceMetrics(context.Background(), "shop", "backend", time.Minute, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !m.ServiceExists || len(m.Workloads) != 2 {
		t.Errorf("exists %v, workloads %v", m.ServiceExists, m.Workloads)
	}
	if m.Golden.Requests != 90 || m.Golden.Errors != 6 {
		t.Errorf("golden = %+v; want 90 requests, 6 errors", m.Golden)
	}
	if len(m.Routes) != 2 || m.Routes[0].Route != "shop/backend/0" || m.Routes[0].Golden.Requests != 60 || m.Routes[1].Golden.Requests != 30 {
		t.Errorf("routes = %+v", m.Routes)
	}
	if len(m.Series) != 6 {
		t.Fatalf("%d points for 1m in 10s steps; want 6", len(m.Series))
	}
	var total uint64
	for _, p := range m.Series {
		total += p.Requests
	}
	if total != 90 {
		t.Errorf("series sum to %d; want 90: %+v", total, m.Series)
	}
	if len(m.Callers) != 1 || m.Callers[0].Source != "shop/frontend" {
		t.Errorf("callers = %+v", m.Callers)
	}
	fm, err := s.ServiceMetrics(context.Background(), "shop", "frontend", time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(fm.Calls) != 1 || fm.Calls[0].Target != "shop/backend" || fm.Calls[0].Requests != 90 {
		t.Errorf("frontend calls = %+v", fm.Calls)
	}
	if len(fm.Series) != 12 {
		t.Errorf("%d points for 1m in 5s steps; want 12", len(fm.Series))
	}
}
