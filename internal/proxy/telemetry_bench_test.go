package proxy_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/proxytest"
	"weft.dev/weft/internal/telemetry"
)

// Telemetry's cost on the request path: compare with BenchmarkProxyHTTP1
// in the same run. The access log goes to a real file, so its batched
// writes are in the measurement.

func benchTelemetry(b *testing.B, opts telemetry.Options) {
	be := proxytest.Echo(b)
	tel, err := telemetry.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tel.Close(b.Context()) })
	p := proxy.New(proxy.Options{Workload: "bench-client", Namespace: "default", Telemetry: tel})
	b.Cleanup(p.Close)
	if err := p.Apply(proxytest.Config(be.Listener.Addr().String(), nil)); err != nil {
		b.Fatal(err)
	}
	ps := httptest.NewServer(p.Handler(nil))
	b.Cleanup(ps.Close)
	run(b, client(ps.URL), "http://bench:8080/")
}

func accessLogFile(b *testing.B) *os.File {
	f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// BenchmarkProxyHTTP1Telemetry: metrics, an access log line per request and
// trace propagation (no exporter), as `weft proxy` runs by default.
func BenchmarkProxyHTTP1Telemetry(b *testing.B) {
	benchTelemetry(b, telemetry.Options{
		Registerer: prometheus.NewRegistry(), AccessLog: accessLogFile(b), AccessLogSampling: 1, TraceSampling: 1,
	})
}

// BenchmarkProxyHTTP1TelemetryMetrics: metrics and propagation, no log.
func BenchmarkProxyHTTP1TelemetryMetrics(b *testing.B) {
	benchTelemetry(b, telemetry.Options{Registerer: prometheus.NewRegistry(), TraceSampling: 1})
}
