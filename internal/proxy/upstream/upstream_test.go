package upstream

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"weft.dev/weft/internal/compile"
)

// fakeClock is a manual clock. It starts well above 0 so "ejected until 0"
// keeps meaning never ejected.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	f := &fakeClock{}
	f.ns.Store(int64(time.Hour))
	return f
}

func (f *fakeClock) Now() int64              { return f.ns.Load() }
func (f *fakeClock) Wall(ns int64) time.Time { return time.Unix(0, ns).UTC() }
func (f *fakeClock) Advance(d time.Duration) { f.ns.Add(int64(d)) }

// seededRand is a deterministic, goroutine-safe rand for tests.
func seededRand(seed uint64) func() uint64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Uint64()
	}
}

// newTestManager returns a Manager with a fake clock and seeded rand.
func newTestManager(t testing.TB, zone string) (*Manager, *fakeClock) {
	m := NewManager(zone)
	fc := newFakeClock()
	m.clock = fc
	m.rand = seededRand(1)
	t.Cleanup(m.Close)
	return m, fc
}

// mkCluster builds a cluster config. Each address may carry a zone as
// "zone/address".
func mkCluster(name, lb string, addrs ...string) *compile.Cluster {
	cc := &compile.Cluster{Name: name, LoadBalancer: compile.LoadBalancer{Type: lb}}
	for _, a := range addrs {
		zone := ""
		if z, rest, ok := strings.Cut(a, "/"); ok {
			zone, a = z, rest
		}
		cc.Endpoints = append(cc.Endpoints, &compile.Endpoint{Address: a, Zone: zone, Workload: "ns/" + a})
	}
	return cc
}

func addrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250+1)
	}
	return out
}

// setup installs cc as the only cluster and returns it.
func setup(t testing.TB, m *Manager, cc *compile.Cluster) *Cluster {
	t.Helper()
	m.Update(map[string]*compile.Cluster{cc.Name: cc})
	c := m.Cluster(cc.Name)
	if c == nil {
		t.Fatalf("cluster %s missing after Update", cc.Name)
	}
	return c
}

// setUnhealthy flips an endpoint's health as a health checker would.
func setUnhealthy(c *Cluster, addr string, unhealthy bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	findEndpoint(c.eps, c.byAddr, addr).unhealthy.Store(unhealthy)
	c.rebuildLocked()
}

// count picks n times and returns how often each address came up.
func count(t testing.TB, c *Cluster, n int, info PickInfo) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		e, err := c.Pick(info)
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		got[e.Address]++
	}
	return got
}

func TestManagerUpdateLifecycle(t *testing.T) {
	m, _ := newTestManager(t, "")
	m.Update(map[string]*compile.Cluster{
		"a": mkCluster("a", "", "10.0.0.1:80"),
		"b": mkCluster("b", "", "10.0.0.2:80"),
	})
	a := m.Cluster("a")
	if a == nil || m.Cluster("b") == nil {
		t.Fatal("clusters missing")
	}
	if m.Cluster("nope") != nil {
		t.Fatal("unknown cluster is not nil")
	}
	m.Update(map[string]*compile.Cluster{"a": mkCluster("a", "", "10.0.0.1:80", "10.0.0.3:80")})
	if m.Cluster("a") != a {
		t.Fatal("cluster a was replaced instead of updated")
	}
	if m.Cluster("b") != nil {
		t.Fatal("cluster b survived its removal")
	}
	if got := len(a.Endpoints()); got != 2 {
		t.Fatalf("endpoints = %d, want 2", got)
	}
	if a.Name() != "a" || a.Config().Name != "a" {
		t.Fatalf("Name/Config = %q/%v", a.Name(), a.Config())
	}
}

// TestUpdateKeepsEndpointState: endpoints that stay keep their identity,
// counters and ejection; ones that leave and come back start fresh; an
// address whose workload changed is a new backend.
func TestUpdateKeepsEndpointState(t *testing.T) {
	m, clk := newTestManager(t, "")
	cc := mkCluster("c", "RoundRobin", "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
	cc.Outlier = &compile.Outlier{Consecutive5xx: 3, BaseEjectionTime: compile.Duration(30 * time.Second), MaxEjectionPercent: 50}
	c := setup(t, m, cc)

	e1 := c.Endpoint("10.0.0.1:80")
	e2 := c.Endpoint("10.0.0.2:80")
	c.Begin(e2) // one request in flight across the reload
	for range 3 {
		c.Begin(e1)
		c.End(e1, Status5xx)
	}
	if !c.Snapshot().Endpoints[0].Ejected {
		t.Fatal("e1 not ejected after 3 consecutive 5xx")
	}

	// Reload: e1 and e2 stay, e3 leaves, e4 arrives, LB policy changes.
	cc2 := mkCluster("c", "LeastRequest", "10.0.0.4:80", "10.0.0.2:80", "10.0.0.1:80")
	cc2.Outlier = cc.Outlier
	m.Update(map[string]*compile.Cluster{"c": cc2})

	if c.Endpoint("10.0.0.1:80") != e1 || c.Endpoint("10.0.0.2:80") != e2 {
		t.Fatal("endpoints that stayed were replaced")
	}
	if e2.Active() != 1 {
		t.Fatalf("e2 active = %d, want 1 kept across reload", e2.Active())
	}
	for range 200 {
		e, err := c.Pick(PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if e == e1 {
			t.Fatal("ejected endpoint picked after a reload that kept it")
		}
	}
	if got := c.Snapshot().LoadBalancer; got != "LeastRequest" {
		t.Fatalf("new policy not applied: %s", got)
	}
	clk.Advance(31 * time.Second)
	if got := count(t, c, 300, PickInfo{}); got[e1.Address] == 0 {
		t.Fatalf("e1 not picked after its ejection lapsed: %v", got)
	}

	// e1 leaves and returns: fresh state.
	m.Update(map[string]*compile.Cluster{"c": mkCluster("c", "", "10.0.0.2:80")})
	m.Update(map[string]*compile.Cluster{"c": cc2})
	if c.Endpoint("10.0.0.1:80") == e1 {
		t.Fatal("endpoint that left and returned kept its old object")
	}

	// Same address, different workload: a new backend.
	cc3 := mkCluster("c", "", "10.0.0.2:80")
	cc3.Endpoints[0].Workload = "ns/other"
	m.Update(map[string]*compile.Cluster{"c": cc3})
	if c.Endpoint("10.0.0.2:80") == e2 {
		t.Fatal("endpoint with a new workload kept the old object")
	}
}

func TestUpdateDeduplicatesAndToleratesNil(t *testing.T) {
	m, _ := newTestManager(t, "")
	cc := mkCluster("c", "", "10.0.0.1:80", "10.0.0.1:80", "10.0.0.2:80")
	cc.Endpoints = append(cc.Endpoints, nil)
	c := setup(t, m, cc)
	if got := len(c.Endpoints()); got != 2 {
		t.Fatalf("endpoints = %d, want 2", got)
	}
	m.Update(map[string]*compile.Cluster{"c": nil})
	if _, err := m.Cluster("c").Pick(PickInfo{}); err != ErrNoEndpoint {
		t.Fatalf("Pick on nil config = %v, want ErrNoEndpoint", err)
	}
}

// TestUpdateLargeCluster covers clusters big enough to index their
// endpoints by address, and the moves between searched and indexed.
func TestUpdateLargeCluster(t *testing.T) {
	m, _ := newTestManager(t, "")
	all := addrs(3 * indexEndpointsAbove)
	small := mkCluster("c", "", all[:indexEndpointsAbove]...)
	c := setup(t, m, small)
	kept := c.Endpoint(all[1])

	// Searched to indexed, with a duplicate: endpoints that stay are kept.
	large := mkCluster("c", "", append(all, all[1])...)
	m.Update(map[string]*compile.Cluster{"c": large})
	if got := len(c.Endpoints()); got != len(all) {
		t.Fatalf("endpoints = %d, want %d", got, len(all))
	}
	if c.Endpoint(all[1]) != kept {
		t.Fatal("an endpoint that stayed was replaced (searched to indexed)")
	}
	last := c.Endpoint(all[len(all)-1])
	c.mu.Lock()
	ok := c.byAddr != nil && c.hasLocked(last) && !c.hasLocked(&Endpoint{Address: last.Address})
	c.mu.Unlock()
	if !ok {
		t.Fatal("large cluster: no index, or membership wrong")
	}

	// Indexed to indexed, then back to searched.
	m.Update(map[string]*compile.Cluster{"c": mkCluster("c", "", all[1:]...)})
	if c.Endpoint(all[1]) != kept || c.Endpoint(all[len(all)-1]) != last || c.Endpoint(all[0]) != nil {
		t.Fatal("indexed update lost or kept the wrong endpoints")
	}
	m.Update(map[string]*compile.Cluster{"c": mkCluster("c", "", all[len(all)-1], all[1])})
	if c.Endpoint(all[1]) != kept || c.Endpoint(all[len(all)-1]) != last || len(c.Endpoints()) != 2 {
		t.Fatal("an endpoint that stayed was replaced (indexed to searched)")
	}
	c.mu.Lock()
	ok = c.byAddr == nil && c.hasLocked(kept)
	c.mu.Unlock()
	if !ok {
		t.Fatal("small cluster: still indexed, or membership wrong")
	}
}

// TestClustersMadeOnFirstUse: a cluster's state is made when it is first
// asked for, once; until then the snapshot shows the state it would start
// with; clusters with health checks are made at once.
func TestClustersMadeOnFirstUse(t *testing.T) {
	m, _ := newTestManager(t, "")
	hc := mkCluster("checked", "", "10.0.0.9:80")
	hc.HealthCheck = &compile.HealthCheck{Path: "/", Interval: compile.Duration(time.Hour), Timeout: compile.Duration(time.Second), HealthyThreshold: 1, UnhealthyThreshold: 1}
	m.Update(map[string]*compile.Cluster{
		"a":       mkCluster("a", "LeastRequest", "10.0.0.1:80", "10.0.0.2:80"),
		"b":       mkCluster("b", "", "10.0.0.3:80"),
		"checked": hc,
	})
	if made := *m.clusters.Load(); len(made) != 1 || made["checked"] == nil {
		t.Fatalf("made before use: %v, want only the health-checked cluster", made)
	}
	s := m.Snapshot()
	if len(s) != 3 || s[0].Name != "a" || s[0].LoadBalancer != "LeastRequest" || len(s[0].Endpoints) != 2 || !s[0].Endpoints[1].Healthy {
		t.Fatalf("snapshot of clusters not used yet: %+v", s)
	}
	if len(*m.clusters.Load()) != 1 {
		t.Fatal("the snapshot made clusters")
	}

	var wg sync.WaitGroup
	got := make([]*Cluster, 8)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i] = m.Cluster("a") }()
	}
	wg.Wait()
	for _, c := range got {
		if c == nil || c != got[0] {
			t.Fatal("concurrent first uses made different clusters")
		}
	}
	a := got[0]
	e := a.Endpoint("10.0.0.1:80")
	a.Begin(e)
	if m.Cluster("nope") != nil {
		t.Fatal("a cluster the config does not have was made")
	}

	// A reload keeps what was made, and makes nothing more.
	m.Update(map[string]*compile.Cluster{
		"a": mkCluster("a", "", "10.0.0.1:80"),
		"b": mkCluster("b", "", "10.0.0.3:80"),
	})
	if made := *m.clusters.Load(); len(made) != 1 || made["a"] != a {
		t.Fatalf("after reload: %v, want only a, kept", made)
	}
	if m.Cluster("a") != a || a.Endpoint("10.0.0.1:80") != e || e.Active() != 1 {
		t.Fatal("a reload lost a cluster's state")
	}
	if m.Cluster("checked") != nil {
		t.Fatal("a removed cluster is still there")
	}
}

func TestSnapshotJSON(t *testing.T) {
	m, clk := newTestManager(t, "zone-a")
	cc := mkCluster("c", "RingHash", "zone-a/10.0.0.1:80", "zone-b/10.0.0.2:80")
	cc.Outlier = &compile.Outlier{ConsecutiveConnectErrors: 1, BaseEjectionTime: compile.Duration(10 * time.Second)}
	c := setup(t, m, cc)
	e := c.Endpoint("10.0.0.1:80")
	c.Begin(e)
	c.End(e, ConnectFailure)
	c.Begin(e)

	s := m.Snapshot()
	if len(s) != 1 {
		t.Fatalf("snapshot has %d clusters", len(s))
	}
	b, err := json.Marshal(s[0])
	if err != nil {
		t.Fatal(err)
	}
	until := clk.Wall(clk.Now() + int64(10*time.Second)).Format(time.RFC3339Nano)
	want := `{"name":"c","loadBalancer":"RingHash","requests":0,"pending":0,"connections":0,"endpoints":[` +
		`{"address":"10.0.0.1:80","zone":"zone-a","workload":"ns/10.0.0.1:80","active":1,"healthy":true,"ejected":true,"ejectedUntil":"` + until + `","ejections":1},` +
		`{"address":"10.0.0.2:80","zone":"zone-b","workload":"ns/10.0.0.2:80","active":0,"healthy":true,"ejected":false}]}`
	if string(b) != want {
		t.Fatalf("snapshot JSON\n got %s\nwant %s", b, want)
	}
}

// TestConcurrentUse runs the request path against reloads, ejections and
// lapses at once; it is for -race.
func TestConcurrentUse(t *testing.T) {
	m := NewManager("zone-a")
	defer m.Close()
	mk := func(lb string, n int) map[string]*compile.Cluster {
		as := addrs(n)
		for i := range as {
			as[i] = []string{"zone-a/", "zone-b/"}[i%2] + as[i]
		}
		cc := mkCluster("c", lb, as...)
		cc.Outlier = &compile.Outlier{Consecutive5xx: 2, BaseEjectionTime: compile.Duration(time.Millisecond), MaxEjectionPercent: 50}
		cc.Limits = compile.Limits{MaxRequests: 64, MaxConnections: 8, MaxPendingRequests: 64}
		cc.ZoneAware = &compile.ZoneAware{MinHealthyPercent: 50}
		return map[string]*compile.Cluster{"c": cc}
	}
	m.Update(mk("RoundRobin", 6))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			outcomes := []Outcome{Success, Status5xx, GatewayError, ConnectFailure, Reset, Cancelled}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := m.Cluster("c")
				release, err := c.Admit(stop)
				if err != nil {
					continue
				}
				e, err := c.Pick(PickInfo{HashKey: fmt.Sprint(i % 17)})
				if err == nil {
					c.Begin(e)
					c.End(e, outcomes[(i+w)%len(outcomes)])
				}
				release()
				_ = c.Snapshot()
			}
		})
	}
	for i := range 50 {
		m.Update(mk([]string{"RoundRobin", "Random", "LeastRequest", "RingHash"}[i%4], 4+i%5))
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	s := m.Cluster("c").Snapshot()
	if s.Requests != 0 || s.Pending != 0 || s.Connections != 0 {
		t.Fatalf("circuit counters leaked: %+v", s)
	}
}
