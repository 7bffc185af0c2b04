package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Circuit breaking, outlier ejection and active health checks: how the
// proxy stops sending to endpoints that cannot take more, or are broken.

func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	const backendDelay = 600 * time.Millisecond
	a := NewHTTPBackend(t, "a")
	a.SetDelay(backendDelay)
	p := balanced(t, `
connectionPool: {maxConnections: 1, maxPendingRequests: 1, maxRequests: 1}
`, a)
	c := proxyClient(t, p)

	const n = 10
	type outcome struct {
		r       Result
		err     error
		elapsed time.Duration
	}
	out := make([]outcome, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			r, err := send(c, http.MethodGet, "http://web:80/slow", nil)
			out[i] = outcome{r, err, time.Since(t0)}
		}()
	}
	close(start)
	wg.Wait()

	served, rejected := 0, 0
	for i, o := range out {
		switch {
		case o.err != nil:
			t.Errorf("request %d: %v", i, o.err)
		case o.r.Status == http.StatusOK:
			served++
		case o.r.Status == http.StatusServiceUnavailable && o.r.WeftError() == "circuit-open":
			rejected++
			if o.elapsed > backendDelay/3 {
				t.Errorf("request %d rejected after %v; want a fast rejection, well under the backend's %v", i, o.elapsed, backendDelay)
			}
		default:
			t.Errorf("request %d: unexpected %s", i, o.r)
		}
	}
	t.Logf("%d served, %d rejected", served, rejected)
	if served < 1 || rejected < n-3 {
		t.Errorf("%d concurrent requests with maxConnections 1, maxPendingRequests 1: %d served, %d rejected with circuit-open; want 1-2 served, the rest rejected", n, served, rejected)
	}
}

func TestOutlierDetection(t *testing.T) {
	t.Parallel()
	bad, good := NewHTTPBackend(t, "bad"), NewHTTPBackend(t, "good")
	bad.SetStatus(http.StatusInternalServerError)
	p := balanced(t, `
outlierDetection:
  consecutive5xx: 3
  interval: 100ms
  baseEjectionTime: 1s
  maxEjectionTime: 2s
  maxEjectionPercent: 50
`, bad, good)
	c := proxyClient(t, p)

	eventually(t, 5*time.Second, func() string {
		counts := countBackends(t, c, "http://web:80/od", 20)
		if counts["good"] != 20 {
			return fmt.Sprintf("an endpoint answering 500 still gets traffic: %v", counts)
		}
		return ""
	})
	ejected := time.Now()
	bad.SetStatus(0)
	eventually(t, 5*time.Second, func() string {
		counts := countBackends(t, c, "http://web:80/od", 10)
		if counts["bad"] == 0 {
			return fmt.Sprintf("ejected endpoint, healthy again, not back: %v", counts)
		}
		return ""
	})
	t.Logf("ejected endpoint back after %v (baseEjectionTime 1s)", time.Since(ejected))
}

func TestActiveHealthCheck(t *testing.T) {
	t.Parallel()
	a, b := NewHTTPBackend(t, "a"), NewHTTPBackend(t, "b")
	p := balanced(t, `
healthCheck: {path: /healthz, interval: 100ms, timeout: 500ms, healthyThreshold: 2, unhealthyThreshold: 2}
`, a, b)
	c := proxyClient(t, p)

	both := func() string {
		counts := countBackends(t, c, "http://web:80/hc", 10)
		if counts["a"] == 0 || counts["b"] == 0 {
			return fmt.Sprintf("want traffic on both endpoints: %v", counts)
		}
		return ""
	}
	eventually(t, 5*time.Second, both)
	// a keeps answering real requests: only its health check says it is down.
	a.SetHealthy(false)
	eventually(t, 5*time.Second, func() string {
		counts := countBackends(t, c, "http://web:80/hc", 20)
		if counts["b"] != 20 {
			return fmt.Sprintf("endpoint failing its health check still gets traffic: %v", counts)
		}
		return ""
	})
	a.SetHealthy(true)
	eventually(t, 5*time.Second, both)
	if a.HealthChecks.Load() == 0 {
		t.Errorf("no GET /healthz reached a")
	}
}
