package upstream

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"weft.dev/weft/internal/compile"
)

// backend is a real HTTP server whose health endpoint answers with a
// status the test sets, counting the probes it gets.
type backend struct {
	*httptest.Server
	status atomic.Int32
	probes atomic.Int32
	path   atomic.Value // last path probed
}

func newBackend(t *testing.T) *backend {
	b := &backend{}
	b.status.Store(http.StatusOK)
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.probes.Add(1)
		b.path.Store(r.URL.Path)
		w.WriteHeader(int(b.status.Load()))
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func healthy(c *Cluster, addr string) bool {
	for _, e := range c.Snapshot().Endpoints {
		if e.Address == addr {
			return e.Healthy
		}
	}
	return false
}

func healthCluster(hc *compile.HealthCheck, addrs ...string) *compile.Cluster {
	cc := mkCluster("c", "RoundRobin", addrs...)
	cc.HealthCheck = hc
	return cc
}

func fastCheck() *compile.HealthCheck {
	return &compile.HealthCheck{
		Path:               "/healthz",
		Interval:           dur(10 * time.Millisecond),
		Timeout:            dur(time.Second),
		HealthyThreshold:   2,
		UnhealthyThreshold: 2,
	}
}

func TestHealthCheckMarksUnhealthyAndBack(t *testing.T) {
	good, flaky := newBackend(t), newBackend(t)
	m := NewManager("")
	defer m.Close()
	c := setup(t, m, healthCluster(fastCheck(), good.addr(), flaky.addr()))

	eventually(t, "first probes", func() bool { return good.probes.Load() >= 2 && flaky.probes.Load() >= 2 })
	if !healthy(c, flaky.addr()) {
		t.Fatal("endpoint serving 200 is unhealthy")
	}
	if p := good.path.Load(); p != "/healthz" {
		t.Fatalf("probed path %v, want /healthz", p)
	}

	flaky.status.Store(http.StatusServiceUnavailable)
	eventually(t, "unhealthy", func() bool { return !healthy(c, flaky.addr()) })
	for range 100 {
		if e, _ := c.Pick(PickInfo{}); e.Address == flaky.addr() {
			t.Fatal("unhealthy endpoint picked")
		}
	}

	flaky.status.Store(http.StatusNoContent)
	eventually(t, "healthy again", func() bool { return healthy(c, flaky.addr()) })
}

func TestHealthCheckThresholds(t *testing.T) {
	b := newBackend(t)
	m := NewManager("")
	defer m.Close()
	hc := fastCheck()
	hc.UnhealthyThreshold = 5
	c := setup(t, m, healthCluster(hc, b.addr()))
	eventually(t, "a probe", func() bool { return b.probes.Load() >= 1 })

	b.status.Store(http.StatusInternalServerError)
	start := b.probes.Load()
	eventually(t, "unhealthy", func() bool { return !healthy(c, b.addr()) })
	if n := b.probes.Load() - start; n < 5 {
		t.Fatalf("marked unhealthy after %d failing probes, want at least 5", n)
	}
}

func TestHealthCheckExpectedStatuses(t *testing.T) {
	tests := []struct {
		expected []int
		status   int
		healthy  bool
	}{
		{nil, 200, true},
		{nil, 302, true},
		{nil, 399, true},
		{nil, 404, false},
		{nil, 500, false},
		{[]int{200}, 204, false},
		{[]int{200, 418}, 418, true},
	}
	for _, tt := range tests {
		p := newHealthPolicy(&compile.HealthCheck{ExpectedStatuses: tt.expected})
		if got := p.expect(tt.status); got != tt.healthy {
			t.Errorf("expected=%v status=%d: healthy=%v, want %v", tt.expected, tt.status, got, tt.healthy)
		}
	}

	// Redirects are answers, not followed.
	b := newBackend(t)
	b.status.Store(http.StatusFound)
	m := NewManager("")
	defer m.Close()
	hc := fastCheck()
	hc.ExpectedStatuses = []int{302}
	hc.UnhealthyThreshold = 1
	c := setup(t, m, healthCluster(hc, b.addr()))
	eventually(t, "probes", func() bool { return b.probes.Load() >= 3 })
	if !healthy(c, b.addr()) {
		t.Fatal("302 expected but endpoint marked unhealthy")
	}
}

func TestHealthCheckUnreachable(t *testing.T) {
	b := newBackend(t)
	dead := newBackend(t)
	deadAddr := dead.addr()
	dead.Close() // connection refused from now on
	m := NewManager("")
	defer m.Close()
	hc := fastCheck()
	hc.Timeout = dur(200 * time.Millisecond)
	c := setup(t, m, healthCluster(hc, b.addr(), deadAddr))
	eventually(t, "unhealthy", func() bool { return !healthy(c, deadAddr) })
	if !healthy(c, b.addr()) {
		t.Fatal("live endpoint marked unhealthy")
	}
}

func TestHealthCheckTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	m := NewManager("")
	defer m.Close()
	hc := fastCheck()
	hc.Timeout = dur(20 * time.Millisecond)
	addr := strings.TrimPrefix(slow.URL, "http://")
	c := setup(t, m, healthCluster(hc, addr, "127.0.0.1:1"))
	eventually(t, "timed-out endpoint unhealthy", func() bool { return !healthy(c, addr) })
}

// TestHealthCheckStops: removing the cluster, removing its HealthCheck and
// closing the Manager all stop probing; removing the HealthCheck also
// marks every endpoint healthy, as nothing else would.
func TestHealthCheckStops(t *testing.T) {
	quiet := func(t *testing.T, b *backend) {
		t.Helper()
		n := b.probes.Load()
		time.Sleep(100 * time.Millisecond)
		if got := b.probes.Load(); got != n {
			t.Fatalf("%d probes after the checker stopped", got-n)
		}
	}

	t.Run("cluster removed", func(t *testing.T) {
		b := newBackend(t)
		m := NewManager("")
		defer m.Close()
		setup(t, m, healthCluster(fastCheck(), b.addr()))
		eventually(t, "probes", func() bool { return b.probes.Load() >= 2 })
		m.Update(nil)
		quiet(t, b)
	})
	t.Run("manager closed", func(t *testing.T) {
		b := newBackend(t)
		m := NewManager("")
		setup(t, m, healthCluster(fastCheck(), b.addr()))
		eventually(t, "probes", func() bool { return b.probes.Load() >= 2 })
		m.Close()
		quiet(t, b)
	})
	t.Run("health check removed", func(t *testing.T) {
		b := newBackend(t)
		b.status.Store(http.StatusInternalServerError)
		m := NewManager("")
		defer m.Close()
		c := setup(t, m, healthCluster(fastCheck(), b.addr()))
		eventually(t, "unhealthy", func() bool { return !healthy(c, b.addr()) })
		m.Update(map[string]*compile.Cluster{"c": healthCluster(nil, b.addr())})
		if !healthy(c, b.addr()) {
			t.Fatal("endpoint still unhealthy with no health check left to clear it")
		}
		quiet(t, b)
	})
}

// TestHealthCheckReload: a reload with the same HealthCheck keeps the
// checker; a changed one restarts it and keeps endpoint health.
func TestHealthCheckReload(t *testing.T) {
	b := newBackend(t)
	b.status.Store(http.StatusInternalServerError)
	m := NewManager("")
	defer m.Close()
	c := setup(t, m, healthCluster(fastCheck(), b.addr()))
	eventually(t, "unhealthy", func() bool { return !healthy(c, b.addr()) })
	h := c.health

	m.Update(map[string]*compile.Cluster{"c": healthCluster(fastCheck(), b.addr())})
	if c.health != h {
		t.Fatal("checker restarted on a reload with the same HealthCheck")
	}

	hc := fastCheck()
	hc.Path = "/ready"
	m.Update(map[string]*compile.Cluster{"c": healthCluster(hc, b.addr())})
	if c.health == h {
		t.Fatal("checker not restarted for a new HealthCheck")
	}
	if healthy(c, b.addr()) {
		t.Fatal("endpoint health lost across checker restart")
	}
	eventually(t, "new path", func() bool { return b.path.Load() == "/ready" })
}
