package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Config reload: the file is re-read on change or SIGHUP; a bad file is
// refused and the old config keeps serving.

func weights(wa, wb int) string {
	return httpRoute("web", "web", fmt.Sprintf(`
- backendRefs:
  - {name: web-a, port: 80, weight: %d}
  - {name: web-b, port: 80, weight: %d}
`, wa, wb))
}

func TestReloadWeights(t *testing.T) {
	t.Parallel()
	a, b := NewHTTPBackend(t, "a"), NewHTTPBackend(t, "b")
	p := StartProxy(t, twoVersions(t, a, b, weights(100, 0)), ProxyOptions{})
	t.Cleanup(a.Release)

	// A long request in flight on its own connection.
	long := make(chan Result, 1)
	longErr := make(chan error, 1)
	go func() {
		r, err := send(proxyClient(t, p), http.MethodGet, "http://web:80/hold", nil)
		if err != nil {
			longErr <- err
			return
		}
		long <- r
	}()
	eventually(t, 5*time.Second, func() string {
		if a.Held.Load() != 1 {
			return "long request not yet at backend a"
		}
		return ""
	})

	// An idle keep-alive connection.
	c := proxyClient(t, p)
	if r := mustOK(t, c, "http://web:80/before"); r.Backend() != "a" {
		t.Fatalf("before reload: %s", r)
	}

	p.Reload(twoVersions(t, a, b, weights(0, 100)))

	reused := false
	req, _ := http.NewRequest(http.MethodGet, "http://web:80/after", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	}))
	r, err := doReq(c, req)
	if err != nil {
		t.Fatalf("request on the idle connection after reload: %v", err)
	}
	if r.Status != http.StatusOK || r.Backend() != "b" {
		t.Errorf("after reload: want b, got %s", r)
	}
	if !reused {
		t.Errorf("the idle keep-alive connection was closed by the reload")
	}
	if counts := countBackends(t, c, "http://web:80/after", 20); counts["b"] != 20 {
		t.Errorf("after reload to 0/100: %v", counts)
	}

	a.Release()
	select {
	case r := <-long:
		if r.Status != http.StatusOK || r.Backend() != "a" || r.Echo.Path != "/hold" {
			t.Errorf("in-flight request across the reload: %s", r)
		}
	case err := <-longErr:
		t.Errorf("in-flight request dropped by the reload: %v", err)
	case <-time.After(10 * time.Second):
		t.Errorf("in-flight request did not finish after release")
	}
}

func TestReloadOnFileChange(t *testing.T) {
	t.Parallel()
	a, b := NewHTTPBackend(t, "a"), NewHTTPBackend(t, "b")
	p := StartProxy(t, twoVersions(t, a, b, weights(100, 0)), ProxyOptions{})
	c := proxyClient(t, p)
	mustOK(t, c, "http://web:80/")

	// Replaced by rename, as config tools and Kubernetes volumes do.
	before := p.ConfigDump()
	p.WriteConfig(twoVersions(t, a, b, weights(0, 100)))
	p.WaitConfigChange(before, 10*time.Second)
	if r := mustOK(t, c, "http://web:80/"); r.Backend() != "b" {
		t.Errorf("after rename: %s", r)
	}

	// Rewritten in place, as an editor may do.
	before = p.ConfigDump()
	if err := os.WriteFile(p.ConfigPath, []byte(twoVersions(t, a, b, weights(100, 0))), 0o644); err != nil {
		t.Fatal(err)
	}
	p.WaitConfigChange(before, 10*time.Second)
	if r := mustOK(t, c, "http://web:80/"); r.Backend() != "a" {
		t.Errorf("after in-place write: %s", r)
	}
}

func TestReloadBadConfig(t *testing.T) {
	t.Parallel()
	a, b := NewHTTPBackend(t, "a"), NewHTTPBackend(t, "b")
	good := twoVersions(t, a, b, weights(100, 0))
	p := StartProxy(t, good, ProxyOptions{})
	c := proxyClient(t, p)
	mustOK(t, c, "http://web:80/")
	before := p.ConfigDump()

	// Document 7: five from twoVersions, the route, then this policy.
	bad := twoVersions(t, a, b, weights(0, 100), trafficPolicy("web", "loadBalancer: {type: Bogus}"))
	if n := strings.Count(bad, "---\n"); n != 7 {
		t.Fatalf("test bug: bad config has %d documents, want 7", n)
	}
	p.WriteConfig(bad)
	p.Signal(syscall.SIGHUP)
	out := p.WaitOutput(10*time.Second, p.ConfigPath, "document 7", "loadBalancer.type")
	t.Logf("proxy output:\n%s", out)

	if p.Exited() {
		t.Fatal("proxy exited on a bad config")
	}
	if got := p.ConfigDump(); got != before {
		t.Errorf("/config changed after a refused file")
	}
	if counts := countBackends(t, c, "http://web:80/", 10); counts["a"] != 10 {
		t.Errorf("after a refused reload the old config (all to a) must keep serving: %v", counts)
	}

	// Once fixed, the file is taken again.
	p.Reload(twoVersions(t, a, b, weights(0, 100)))
	if r := mustOK(t, c, "http://web:80/"); r.Backend() != "b" {
		t.Errorf("after fixing the file: %s", r)
	}
}
