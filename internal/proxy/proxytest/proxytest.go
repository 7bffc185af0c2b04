// Package proxytest has what the proxy's benchmarks share: a service whose
// one endpoint echoes 1 KiB, and its config.
package proxytest

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"weft.dev/weft/internal/compile"
)

// Payload is the body the echo server answers with.
var Payload = bytes.Repeat([]byte("x"), 1024)

// Echo starts a server that reads the request body and answers Payload.
func Echo(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Write(Payload)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// Config is a proxy config with one HTTP service, "bench" port 8080, whose
// one endpoint is addr, retried per retry (nil: no retries).
func Config(addr string, retry *compile.Retry) *compile.Config {
	cluster := compile.ClusterName("default", "bench", 8080)
	return &compile.Config{
		Version: "bench",
		Services: []*compile.Service{{
			Name: "bench", Namespace: "default", Hosts: []string{"bench", "bench.default"},
			Ports: []*compile.ServicePort{{Port: 8080, Protocol: compile.ProtocolHTTP,
				HTTP: &compile.HTTPRouting{Retry: retry, Rules: []*compile.HTTPRule{{
					Route: "default", Backends: []*compile.Backend{{Cluster: cluster, Weight: 1}}}}}}},
		}},
		Clusters: map[string]*compile.Cluster{cluster: {
			Name: cluster, Service: "default/bench", Port: 8080, Protocol: compile.ProtocolHTTP,
			Endpoints:    []*compile.Endpoint{{Address: addr, Workload: "default/bench-1"}},
			LoadBalancer: compile.LoadBalancer{Type: "RoundRobin"},
		}},
	}
}
