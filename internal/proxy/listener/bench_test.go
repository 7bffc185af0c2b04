package listener_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"testing"

	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/listener"
	"weft.dev/weft/internal/proxy/proxytest"
)

// The sidecar path as traffic takes it: a client's keep-alive connection
// to an upstream port (HTTP/1 served by internal/proxy/h1), routed and sent
// on a pooled upstream connection. BenchmarkDirect is the same client and
// server without the proxy, in the same run, so the ratio is the cost.

func post(b *testing.B, url string) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	proxytest.Run(b, func() (*http.Response, error) {
		return c.Post(url, "application/octet-stream", bytes.NewReader(proxytest.Payload))
	})
}

func BenchmarkDirect(b *testing.B) { post(b, proxytest.Echo(b).URL+"/") }

func BenchmarkSidecarHTTP1(b *testing.B) {
	be := proxytest.Echo(b)
	p := proxy.New(proxy.Options{})
	b.Cleanup(p.Close)
	if err := p.Apply(proxytest.Config(be.Listener.Addr().String(), nil)); err != nil {
		b.Fatal(err)
	}
	set := listener.NewSet(p, slog.New(slog.DiscardHandler))
	b.Cleanup(func() { _ = set.Shutdown(context.Background()) })
	addr, err := set.Upstream("127.0.0.1:0", &proxy.Target{Host: "bench", Port: 8080})
	if err != nil {
		b.Fatal(err)
	}
	post(b, "http://"+addr.String()+"/")
}
