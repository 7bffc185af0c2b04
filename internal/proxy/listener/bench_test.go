package listener_test

import (
	"bytes"
	"context"
	"io"
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
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := c.Post(url, "application/octet-stream", bytes.NewReader(proxytest.Payload))
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(len(proxytest.Payload)) {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
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
