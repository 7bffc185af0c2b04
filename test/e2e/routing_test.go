package e2e

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// twoVersions is Service web over workloads a and b, plus Services web-a and
// web-b that each select one of them: the shape of a canary.
func twoVersions(t testing.TB, a, b *HTTPBackend, extra ...string) string {
	return docs(append([]string{
		service("web", 80, "http", ""),
		service("web-a", 80, "http", "app: web, version: a"),
		service("web-b", 80, "http", "app: web, version: b"),
		workload(t, "web-a", a.Addr, "app: web, version: a", a.Zone),
		workload(t, "web-b", b.Addr, "app: web, version: b", b.Zone),
	}, extra...)...)
}

func TestRouteMatch(t *testing.T) {
	t.Parallel()
	a, b := NewHTTPBackend(t, "a"), NewHTTPBackend(t, "b")
	p := StartProxy(t, twoVersions(t, a, b, httpRoute("web", "web", `
- matches: [{path: {type: Exact, value: /exact}}]
  backendRefs: [{name: web-b, port: 80}]
- matches: [{path: {type: PathPrefix, value: /prefix}}]
  backendRefs: [{name: web-b, port: 80}]
- matches: [{method: DELETE}]
  backendRefs: [{name: web-b, port: 80}]
- matches: [{headers: [{name: x-version, value: b}]}]
  backendRefs: [{name: web-b, port: 80}]
- matches: [{headers: [{type: RegularExpression, name: x-user, value: "vip-.*"}]}]
  backendRefs: [{name: web-b, port: 80}]
- matches: [{queryParams: [{name: version, value: b}]}]
  backendRefs: [{name: web-b, port: 80}]
- backendRefs: [{name: web-a, port: 80}]
`),
		// Where a regex ranks against prefixes is left to implementations,
		// so the regex rule gets a service of its own, with no catch-all.
		service("re", 80, "http", "app: web, version: a"),
		httpRoute("re", "re", `
- matches: [{path: {type: RegularExpression, value: "/re/[0-9]+"}}]
  backendRefs: [{name: web-b, port: 80}]
`)), ProxyOptions{})
	c := proxyClient(t, p)

	if r := get(t, c, "http://re:80/re/123"); r.Status != http.StatusOK || r.Backend() != "b" {
		t.Errorf("regex /re/[0-9]+ on /re/123: want backend b, got %s", r)
	}
	if r := get(t, c, "http://re:80/re/abc"); r.Backend() == "b" {
		t.Errorf("regex /re/[0-9]+ on /re/abc: must not match, got %s", r)
	}
	for _, tc := range []struct {
		method, path string
		hdr          []string
		want         string
	}{
		{"GET", "/exact", nil, "b"},
		{"GET", "/exact/more", nil, "a"},
		{"GET", "/exactly", nil, "a"},
		{"GET", "/prefix", nil, "b"},
		{"GET", "/prefix/", nil, "b"},
		{"GET", "/prefix/deeper/path", nil, "b"},
		{"GET", "/prefixed", nil, "a"}, // prefixes match whole path segments
		{"DELETE", "/thing", nil, "b"},
		{"GET", "/thing", nil, "a"},
		{"GET", "/h", []string{"x-version", "b"}, "b"},
		{"GET", "/h", []string{"X-Version", "b"}, "b"}, // header names are case-insensitive
		{"GET", "/h", []string{"x-version", "c"}, "a"},
		{"GET", "/h", []string{"x-user", "vip-17"}, "b"},
		{"GET", "/h", []string{"x-user", "regular"}, "a"},
		{"GET", "/q?version=b", nil, "b"},
		{"GET", "/q?version=c", nil, "a"},
		{"GET", "/q?other=b", nil, "a"},
	} {
		r, err := send(c, tc.method, "http://web:80"+tc.path, nil, tc.hdr...)
		if err != nil {
			t.Errorf("%s %s %v: %v", tc.method, tc.path, tc.hdr, err)
			continue
		}
		if r.Status != http.StatusOK || r.Backend() != tc.want {
			t.Errorf("%s %s %v: want backend %s, got %s", tc.method, tc.path, tc.hdr, tc.want, r)
		}
	}
}

func TestRouteHost(t *testing.T) {
	t.Parallel()
	a, b := NewHTTPBackend(t, "a"), NewHTTPBackend(t, "b")
	p := StartProxy(t, twoVersions(t, a, b,
		`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-canary}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  hostnames: [canary.example.com]
  rules:
  - backendRefs: [{name: web-b, port: 80}]
`,
		httpRoute("web-main", "web", `
- backendRefs: [{name: web-a, port: 80}]
`)), ProxyOptions{Upstreams: []string{"web"}})

	t.Run("service by host", func(t *testing.T) {
		c := proxyClient(t, p)
		for host, want := range map[string]string{
			"web-a":                           "a",
			"web-b":                           "b",
			"web-b.default":                   "b",
			"web-b.default.svc":               "b",
			"web-b.default.svc.cluster.local": "b",
		} {
			if r := get(t, c, "http://"+host+":80/"); r.Status != http.StatusOK || r.Backend() != want {
				t.Errorf("http://%s:80/: want backend %s, got %s", host, want, r)
			}
		}
		for _, host := range []string{"nosuch", "web.otherns", "web-a:81"} {
			u := "http://" + host + "/"
			if !strings.Contains(host, ":") {
				u = "http://" + host + ":80/"
			}
			if r := get(t, c, u); r.Status != http.StatusNotFound || r.WeftError() != "unknown-service" {
				t.Errorf("%s: want 404 x-weft-error unknown-service, got %s", u, r)
			}
		}
	})
	t.Run("route hostnames", func(t *testing.T) {
		c := directClient(t)
		u := "http://" + p.Upstream["web"] + "/"
		if r := get(t, c, u, "Host", "canary.example.com"); r.Backend() != "b" {
			t.Errorf("Host canary.example.com: want b, got %s", r)
		}
		if r := get(t, c, u, "Host", "web"); r.Backend() != "a" {
			t.Errorf("Host web: want a, got %s", r)
		}
	})
}

func TestWeightedSplit(t *testing.T) {
	t.Parallel()
	a, b := NewHTTPBackend(t, "a"), NewHTTPBackend(t, "b")
	p := StartProxy(t, twoVersions(t, a, b, httpRoute("web", "web", `
- backendRefs:
  - {name: web-a, port: 80, weight: 90}
  - {name: web-b, port: 80, weight: 10}
`)), ProxyOptions{})
	const n = 2000
	counts := countBackendsParallel(t, proxyClient(t, p), "http://web:80/split", n, 4)
	if counts["a"]+counts["b"] != n {
		t.Fatalf("answers: %v; want %d from a or b", counts, n)
	}
	if share := float64(counts["a"]) / n; math.Abs(share-0.9) > 0.03 {
		t.Errorf("a got %.1f%% of %d requests (%v); want 90%% ± 3%%", share*100, n, counts)
	}
}

func TestHeaderModifiers(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a")
	p := StartProxy(t, docs(serviceWith(t, "web", 80, "http", a), httpRoute("web", "web", `
- filters:
  - type: RequestHeaderModifier
    requestHeaderModifier:
      set: [{name: x-set, value: set-by-proxy}]
      add: [{name: x-add, value: added-by-proxy}]
      remove: [x-remove]
  - type: ResponseHeaderModifier
    responseHeaderModifier:
      set: [{name: x-resp-set, value: resp-set}]
      add: [{name: x-resp-add, value: resp-add}]
      remove: [x-extra]
  backendRefs: [{name: web, port: 80}]
`)), ProxyOptions{})
	r := mustOK(t, proxyClient(t, p), "http://web:80/hdr",
		"x-set", "from-client", "x-add", "from-client", "x-remove", "gone", "x-keep", "kept")
	h := http.Header(r.Echo.Header)
	if got := h.Values("x-set"); len(got) != 1 || got[0] != "set-by-proxy" {
		t.Errorf("request x-set = %v, want [set-by-proxy]", got)
	}
	if got := strings.Join(h.Values("x-add"), ","); !strings.Contains(got, "from-client") || !strings.Contains(got, "added-by-proxy") {
		t.Errorf("request x-add = %q, want both from-client and added-by-proxy", got)
	}
	if got := h.Values("x-remove"); len(got) != 0 {
		t.Errorf("request x-remove = %v, want removed", got)
	}
	if got := h.Get("x-keep"); got != "kept" {
		t.Errorf("request x-keep = %q, want untouched", got)
	}
	if got := r.Header.Get("x-resp-set"); got != "resp-set" {
		t.Errorf("response x-resp-set = %q", got)
	}
	if got := r.Header.Get("x-resp-add"); got != "resp-add" {
		t.Errorf("response x-resp-add = %q", got)
	}
	if got := r.Header.Values("x-extra"); len(got) != 0 {
		t.Errorf("response x-extra = %v, want removed", got)
	}
}

func TestRedirect(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a")
	p := StartProxy(t, docs(serviceWith(t, "web", 80, "http", a), httpRoute("web", "web", `
- matches: [{path: {type: PathPrefix, value: /old}}]
  filters:
  - type: RequestRedirect
    requestRedirect:
      scheme: https
      hostname: example.com
      port: 8443
      statusCode: 301
      path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
- matches: [{path: {type: PathPrefix, value: /moved}}]
  filters:
  - type: RequestRedirect
    requestRedirect:
      statusCode: 302
      path: {type: ReplaceFullPath, replaceFullPath: /elsewhere}
- backendRefs: [{name: web, port: 80}]
`)), ProxyOptions{})
	c := proxyClient(t, p)

	r := get(t, c, "http://web:80/old/page")
	if r.Status != http.StatusMovedPermanently || r.Header.Get("Location") != "https://example.com:8443/new/page" {
		t.Errorf("/old/page: want 301 to https://example.com:8443/new/page, got %d Location %q", r.Status, r.Header.Get("Location"))
	}
	r = get(t, c, "http://web:80/moved/x")
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.Status != http.StatusFound || loc == nil || loc.Path != "/elsewhere" || (loc.Host != "" && loc.Hostname() != "web") {
		t.Errorf("/moved/x: want 302 to //web/elsewhere, got %d Location %q", r.Status, r.Header.Get("Location"))
	}
	if got := a.Requests.Load(); got != 0 {
		t.Errorf("backend saw %d requests; redirects are answered by the proxy", got)
	}
	if r := mustOK(t, c, "http://web:80/other"); r.Backend() != "a" {
		t.Errorf("/other: %s", r)
	}
}

func TestURLRewrite(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a")
	p := StartProxy(t, docs(serviceWith(t, "web", 80, "http", a), httpRoute("web", "web", `
- matches: [{path: {type: PathPrefix, value: /api}}]
  filters:
  - type: URLRewrite
    urlRewrite:
      hostname: rewritten.example
      path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}
  backendRefs: [{name: web, port: 80}]
- matches: [{path: {type: PathPrefix, value: /full}}]
  filters:
  - type: URLRewrite
    urlRewrite:
      path: {type: ReplaceFullPath, replaceFullPath: /replaced}
  backendRefs: [{name: web, port: 80}]
- backendRefs: [{name: web, port: 80}]
`)), ProxyOptions{})
	c := proxyClient(t, p)
	for _, tc := range []struct{ in, path, query, host string }{
		{"/api/users?page=2", "/v2/users", "page=2", "rewritten.example"},
		{"/api", "/v2", "", "rewritten.example"},
		{"/full/any/thing?x=1", "/replaced", "x=1", ""},
		{"/untouched", "/untouched", "", ""},
	} {
		r := mustOK(t, c, "http://web:80"+tc.in)
		if r.Echo.Path != tc.path || r.Echo.RawQuery != tc.query {
			t.Errorf("%s: backend got path %q query %q; want %q %q", tc.in, r.Echo.Path, r.Echo.RawQuery, tc.path, tc.query)
		}
		if tc.host != "" && r.Echo.Host != tc.host {
			t.Errorf("%s: backend got Host %q, want %q", tc.in, r.Echo.Host, tc.host)
		}
	}
}

func TestMirror(t *testing.T) {
	t.Parallel()
	a, m := NewHTTPBackend(t, "a"), NewHTTPBackend(t, "mirror")
	m.SetDelay(time.Second) // a slow mirror must not slow the caller
	m.SetStatus(http.StatusInternalServerError)
	p := StartProxy(t, docs(
		serviceWith(t, "web", 80, "http", a),
		serviceWith(t, "shadow", 80, "http", m),
		httpRoute("web", "web", `
- filters:
  - type: RequestMirror
    requestMirror:
      backendRef: {name: shadow, port: 80}
  backendRefs: [{name: web, port: 80}]
`)), ProxyOptions{})
	c := proxyClient(t, p)
	const n = 10
	for i := 0; i < n; i++ {
		start := time.Now()
		r, err := send(c, http.MethodPost, fmt.Sprintf("http://web:80/m/%d", i), strings.NewReader(strings.Repeat("m", 1000)), "x-id", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusOK || r.Backend() != "a" {
			t.Fatalf("request %d: want the primary's 200, got %s", i, r)
		}
		if d := time.Since(start); d > 700*time.Millisecond {
			t.Errorf("request %d took %v: the caller waited for the mirror", i, d)
		}
	}
	eventually(t, 5*time.Second, func() string {
		if got := m.Log(); len(got) < n {
			return fmt.Sprintf("mirror received %d of %d requests", len(got), n)
		}
		return ""
	})
	seen := map[string]bool{}
	for _, e := range m.Log() {
		seen[e.Path] = true
		if e.Method != http.MethodPost || e.BodyLen != 1000 || e.Header.Get("x-id") == "" {
			t.Errorf("mirror copy %s: method %s, body %d bytes, x-id %q; want POST with the 1000-byte body and headers", e.Path, e.Method, e.BodyLen, e.Header.Get("x-id"))
		}
	}
	for i := 0; i < n; i++ {
		if !seen[fmt.Sprintf("/m/%d", i)] {
			t.Errorf("mirror never received /m/%d", i)
		}
	}
}

func TestRouteTimeout(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a")
	p := StartProxy(t, docs(serviceWith(t, "web", 80, "http", a), httpRoute("web", "web", `
- timeouts: {request: 300ms}
  backendRefs: [{name: web, port: 80}]
`)), ProxyOptions{})
	c := proxyClient(t, p)
	mustOK(t, c, "http://web:80/fast")
	start := time.Now()
	r := get(t, c, "http://web:80/slow?delay=5s")
	d := time.Since(start)
	if r.Status != http.StatusGatewayTimeout || r.WeftError() != "timeout" {
		t.Errorf("slow backend: want 504 x-weft-error timeout, got %s", r)
	}
	if d < 250*time.Millisecond || d > 2*time.Second {
		t.Errorf("answered after %v; want about the 300ms route timeout", d)
	}
}

// TestProxyErrors checks the answers the proxy gives itself.
func TestProxyErrors(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a")
	dead := NewHTTPBackend(t, "dead")
	dead.Kill()
	p := StartProxy(t, docs(
		serviceWith(t, "web", 80, "http", a),
		service("empty", 80, "http", ""),
		serviceWith(t, "down", 80, "http", dead),
	), ProxyOptions{})
	c := proxyClient(t, p)
	for _, tc := range []struct {
		url    string
		status int
		reason string
	}{
		{"http://nosuch:80/", http.StatusNotFound, "unknown-service"},
		{"http://empty:80/", http.StatusServiceUnavailable, "no-healthy-upstream"},
		{"http://down:80/", http.StatusBadGateway, "upstream-error"},
	} {
		r := get(t, c, tc.url)
		if r.WeftError() != tc.reason || r.Status != tc.status {
			t.Errorf("%s: want %d x-weft-error %s, got %s", tc.url, tc.status, tc.reason, r)
		}
	}
	if r := mustOK(t, c, "http://web:80/"); r.Backend() != "a" {
		t.Errorf("web: %s", r)
	}
}

// TestNoRoute: once routes are attached to a service, a request that no
// rule matches is answered 404 no-route, as the Gateway API asks of
// HTTPRoute ("a 404 status code MUST be returned" when no rule matches).
func TestNoRoute(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a")
	p := StartProxy(t, docs(
		serviceWith(t, "web", 80, "http", a),
		httpRoute("web", "web", `
- matches: [{path: {type: PathPrefix, value: /only}}]
  backendRefs: [{name: web, port: 80}]
`)), ProxyOptions{})
	c := proxyClient(t, p)
	if r := mustOK(t, c, "http://web:80/only/here"); r.Backend() != "a" {
		t.Errorf("/only/here: %s", r)
	}
	if r := get(t, c, "http://web:80/elsewhere"); r.Status != http.StatusNotFound || r.WeftError() != "no-route" {
		t.Errorf("/elsewhere matches no rule: want 404 x-weft-error no-route, got %s", r)
	}
}
