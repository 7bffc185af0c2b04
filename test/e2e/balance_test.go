package e2e

import (
	"fmt"
	"testing"
	"time"
)

// Load balancing over the endpoints of one service, set by TrafficPolicy.

// balanced starts a proxy in front of Service web over the backends, with
// the TrafficPolicy spec given (empty: none).
func balanced(t *testing.T, policy string, bs ...*HTTPBackend) *Proxy {
	t.Helper()
	eps := make([]endpoint, len(bs))
	for i, b := range bs {
		eps[i] = b
	}
	cfg := serviceWith(t, "web", 80, "http", eps...)
	if policy != "" {
		cfg = docs(cfg, trafficPolicy("web", policy))
	}
	return StartProxy(t, cfg, ProxyOptions{})
}

func threeBackends(t *testing.T) (*HTTPBackend, *HTTPBackend, *HTTPBackend) {
	return NewHTTPBackend(t, "a"), NewHTTPBackend(t, "b"), NewHTTPBackend(t, "c")
}

func TestLBRoundRobin(t *testing.T) {
	t.Parallel()
	a, b, c := threeBackends(t)
	p := balanced(t, "loadBalancer: {type: RoundRobin}", a, b, c)
	client := proxyClient(t, p)
	const n = 300
	counts := map[string]int{}
	var seq []string
	for i := 0; i < n; i++ {
		r := mustOK(t, client, "http://web:80/rr")
		counts[r.Backend()]++
		seq = append(seq, r.Backend())
	}
	for _, name := range []string{"a", "b", "c"} {
		if got := counts[name]; got < 95 || got > 105 {
			t.Errorf("round robin over 3 endpoints, %d requests: %v; want 100 ± 5 each", n, counts)
			break
		}
	}
	// One caller in sequence: every 3 consecutive picks are 3 endpoints.
	cyclic := 0
	for i := 0; i+3 <= n; i++ {
		if seq[i] != seq[i+1] && seq[i+1] != seq[i+2] && seq[i] != seq[i+2] {
			cyclic++
		}
	}
	if cyclic < (n-2)*95/100 {
		t.Errorf("only %d of %d windows of 3 consecutive picks hit 3 endpoints; round robin cycles (first picks: %v)", cyclic, n-2, seq[:12])
	}
}

func TestLBLeastRequest(t *testing.T) {
	t.Parallel()
	a, b, slow := threeBackends(t)
	slow.SetDelay(250 * time.Millisecond)
	p := balanced(t, "loadBalancer: {type: LeastRequest}", a, b, slow)
	const n = 300
	counts := countBackendsParallel(t, proxyClient(t, p), "http://web:80/lr", n, 8)
	if counts["a"]+counts["b"]+counts["c"] != n {
		t.Fatalf("answers: %v", counts)
	}
	// Round robin would give the slow endpoint a third; two random choices,
	// about a ninth; least request, almost none.
	if share := float64(counts["c"]) / n; share > 0.2 {
		t.Errorf("slow endpoint c got %.0f%% of requests (%v); want < 20%% with LeastRequest", share*100, counts)
	}
}

func TestLBRingHash(t *testing.T) {
	t.Parallel()
	a, b, c := threeBackends(t)
	p := balanced(t, "loadBalancer: {type: RingHash, hashOn: {header: x-user}}", a, b, c)
	client := proxyClient(t, p)
	const users = 40
	perBackend := map[string]int{}
	for u := 0; u < users; u++ {
		user := fmt.Sprintf("user-%d", u)
		counts := countBackends(t, client, "http://web:80/rh", 5, "x-user", user)
		if len(counts) != 1 {
			t.Errorf("%s went to %v; want one endpoint for one key", user, counts)
		}
		for name := range counts {
			perBackend[name]++
		}
	}
	if len(perBackend) != 3 {
		t.Errorf("%d keys spread over %v; want all 3 endpoints used", users, perBackend)
	}
	for name, n := range perBackend {
		if n > users*3/4 {
			t.Errorf("endpoint %s got %d of %d keys; want a spread", name, n, users)
		}
	}
}

func TestLBRandom(t *testing.T) {
	t.Parallel()
	a, b, c := threeBackends(t)
	p := balanced(t, "loadBalancer: {type: Random}", a, b, c)
	client := proxyClient(t, p)
	const n = 600
	counts := map[string]int{}
	repeats := 0
	prev := ""
	for i := 0; i < n; i++ {
		r := mustOK(t, client, "http://web:80/random")
		counts[r.Backend()]++
		if r.Backend() == prev {
			repeats++
		}
		prev = r.Backend()
	}
	for _, name := range []string{"a", "b", "c"} {
		if got := counts[name]; got < 120 || got > 280 {
			t.Errorf("random over 3 endpoints, %d requests: %v; want about 200 each", n, counts)
			break
		}
	}
	// Round robin never picks the same endpoint twice in a row; random does
	// about a third of the time.
	if repeats < n/6 {
		t.Errorf("same endpoint twice in a row %d times in %d requests; want about %d for random picks", repeats, n, n/3)
	}
}
