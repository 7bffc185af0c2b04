package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/proxytest"
)

// TestEdgeRoutes routes and forwards through a gateway route table: the
// match honours hostnames, the backend gets the request, the backend's
// retry policy applies, and a redirect rule is answered by the proxy.
func TestEdgeRoutes(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // retried
			return
		}
		w.Header().Set("x-host", r.Host)
		io.WriteString(w, "hello "+r.URL.Path)
	}))
	defer srv.Close()
	cfg := proxytest.Config(srv.Listener.Addr().String(), nil)
	p := proxy.New(proxy.Options{})
	defer p.Close()
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	cluster := compile.ClusterName("default", "bench", 8080)
	routing := &compile.HTTPRouting{Rules: []*compile.HTTPRule{
		{Route: "default/redirect/0", Hostnames: []string{"plain.example.com"}, Redirect: &compile.Redirect{Scheme: "https", StatusCode: 301}},
		{Route: "default/web/0", Hostnames: []string{"*.example.com"}, Backends: []*compile.Backend{{Cluster: cluster, Weight: 1}}},
	}}
	retries := map[string]*compile.Retry{cluster: {Attempts: 1, RetryOn: []string{compile.RetryOnGatewayError}, BudgetMinConcurrency: 3}}
	e, err := proxy.NewEdgeRoutes("default", "edge", "http", routing, retries)
	if err != nil {
		t.Fatal(err)
	}
	h := p.WithTelemetry(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ru := e.Route(r)
		if ru == nil {
			proxy.Answer(w, r, http.StatusNotFound, proxy.ReasonNoRoute, "no route")
			return
		}
		p.ServeEdge(w, r, e, ru)
	}))

	do := func(host string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "http://"+host+"/a", nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("www.example.com"); rec.Code != 200 || rec.Body.String() != "hello /a" || rec.Header().Get("x-host") != "www.example.com" {
		t.Errorf("www.example.com: %d %q host %q", rec.Code, rec.Body.String(), rec.Header().Get("x-host"))
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("backend called %d times, want 2 (one retry)", n)
	}
	if rec := do("plain.example.com"); rec.Code != 301 || rec.Header().Get("Location") != "https://plain.example.com/a" {
		t.Errorf("redirect: %d Location %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec := do("example.org"); rec.Code != 404 || rec.Header().Get(proxy.HeaderError) != proxy.ReasonNoRoute {
		t.Errorf("unmatched host: %d %q", rec.Code, rec.Header().Get(proxy.HeaderError))
	}
}
