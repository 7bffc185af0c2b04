// Package proxytest has what the proxy's benchmarks share: a service whose
// one endpoint echoes 1 KiB, its config, and a config of many services.
package proxytest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

// Run is a benchmark's loop: b.N requests made by send, each checked for
// a 200 carrying Payload, with allocations reported.
func Run(b *testing.B, send func() (*http.Response, error)) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := send()
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(len(Payload)) {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
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

// ManyServices is a config file of n Services, each with an HTTP and a
// gRPC port and one Workload: the benchmark's idle proxy "holding config
// for 1,000 services", and the memory tests' input.
func ManyServices(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString("---\n")
		}
		name := fmt.Sprintf("svc-%04d", i)
		fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata: {name: %s}
spec:
  selector: {app: %s}
  ports:
  - {name: http, port: 80, targetPort: http, appProtocol: http}
  - {name: grpc, port: 50051, targetPort: grpc, appProtocol: grpc}
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata:
  name: %s-1
  labels: {app: %s}
spec:
  address: 10.%d.%d.%d
  ports: [{name: http, port: 8080}, {name: grpc, port: 9090}]
`, name, name, name, name, 1+i/65536, (i/256)%256, i%256)
	}
	return b.String()
}
