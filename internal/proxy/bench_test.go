package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/proxytest"
)

// The request-path benchmarks send 1 KiB responses over loopback, direct
// and through the proxy's forward-proxy handler, in the same run so the
// ratio (not the absolute time) is what to compare.

func client(proxyURL string) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	if proxyURL != "" {
		u, _ := url.Parse(proxyURL)
		tr.Proxy = http.ProxyURL(u)
	}
	return &http.Client{Transport: tr}
}

func run(b *testing.B, c *http.Client, target string) {
	proxytest.Run(b, func() (*http.Response, error) { return c.Get(target) })
}

func BenchmarkDirectHTTP1(b *testing.B) {
	be := proxytest.Echo(b)
	run(b, client(""), be.URL+"/")
}

func benchProxy(b *testing.B, retry *compile.Retry) {
	be := proxytest.Echo(b)
	p := proxy.New(proxy.Options{})
	b.Cleanup(p.Close)
	if err := p.Apply(proxytest.Config(be.Listener.Addr().String(), retry)); err != nil {
		b.Fatal(err)
	}
	ps := httptest.NewServer(p.Handler(nil))
	b.Cleanup(ps.Close)
	run(b, client(ps.URL), "http://bench:8080/")
}

func BenchmarkProxyHTTP1(b *testing.B) { benchProxy(b, nil) }

func BenchmarkProxyHTTP1Retries(b *testing.B) {
	benchProxy(b, &compile.Retry{Attempts: 2, RetryOn: []string{"5xx"}, BudgetPercent: 20, BudgetMinConcurrency: 3})
}
