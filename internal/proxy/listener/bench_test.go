package listener_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/listener"
)

// The sidecar path as traffic takes it: a client's keep-alive connection
// to an upstream port (HTTP/1 served by internal/proxy/h1), routed and sent
// on a pooled upstream connection. BenchmarkDirect is the same client and
// server without the proxy, in the same run, so the ratio is the cost.

var payload = bytes.Repeat([]byte("x"), 1024)

func echo(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Write(payload)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func post(b *testing.B, url string) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := c.Post(url, "application/octet-stream", bytes.NewReader(payload))
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(len(payload)) {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
}

func BenchmarkDirect(b *testing.B) { post(b, echo(b).URL+"/") }

func BenchmarkSidecarHTTP1(b *testing.B) {
	be := echo(b)
	cluster := compile.ClusterName("default", "echo", 80)
	p := proxy.New(proxy.Options{})
	b.Cleanup(p.Close)
	err := p.Apply(&compile.Config{
		Version: "bench",
		Services: []*compile.Service{{
			Name: "echo", Namespace: "default", Hosts: []string{"echo", "echo.default"},
			Ports: []*compile.ServicePort{{Port: 80, Protocol: compile.ProtocolHTTP,
				HTTP: &compile.HTTPRouting{Rules: []*compile.HTTPRule{{
					Route: "default", Backends: []*compile.Backend{{Cluster: cluster, Weight: 1}}}}}}},
		}},
		Clusters: map[string]*compile.Cluster{cluster: {
			Name: cluster, Service: "default/echo", Port: 80, Protocol: compile.ProtocolHTTP,
			Endpoints:    []*compile.Endpoint{{Address: be.Listener.Addr().String(), Workload: "default/echo-1"}},
			LoadBalancer: compile.LoadBalancer{Type: "RoundRobin"},
		}},
	})
	if err != nil {
		b.Fatal(err)
	}
	set := listener.NewSet(p, slog.New(slog.DiscardHandler))
	b.Cleanup(func() { _ = set.Shutdown(context.Background()) })
	addr, err := set.Upstream("127.0.0.1:0", &proxy.Target{Host: "echo", Port: 80})
	if err != nil {
		b.Fatal(err)
	}
	post(b, "http://"+addr.String()+"/")
}
