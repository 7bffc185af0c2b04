package telemetry

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The telemetry work of one request, without the network: Begin, the
// routing hooks and End, as the proxy calls them. Compare with the
// proxy's per-request time (BenchmarkProxyHTTP1 in internal/proxy).

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

func benchExchange(b *testing.B, rec *Recorder) {
	req := httptest.NewRequest("GET", "http://reviews:9080/reviews/1?u=2", nil)
	req.Header.Set("User-Agent", "bench")
	w := &nopWriter{h: http.Header{}}
	body := []byte("0123456789")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A fresh header map per request, as net/http gives.
		req.Header = http.Header{"User-Agent": {"bench"}}
		x := rec.Begin(w, req, Client)
		var rw http.ResponseWriter = w
		if x != nil {
			rw = x
		}
		x.Service("reviews", "default")
		x.Route("default/reviews/0")
		x.Cluster("reviews-v1.default:9080")
		x.Upstream("default/reviews-v1-1", "10.0.0.1:9080")
		x.UpstreamResponse(nil)
		rw.WriteHeader(200)
		rw.Write(body)
		x.End()
	}
}

func benchRig(b *testing.B, metrics, log bool) *Recorder {
	opts := Options{TraceSampling: 1, AccessLogSampling: 1}
	if metrics {
		opts.Registerer = prometheus.NewRegistry()
	}
	if log {
		f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		opts.AccessLog = f
	}
	tel, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tel.Close(b.Context()) })
	return tel.For(Peer{Workload: "productpage-1", Namespace: "default"}, nil)
}

func BenchmarkExchangeOff(b *testing.B)         { benchExchange(b, nil) }
func BenchmarkExchangePropagation(b *testing.B) { benchExchange(b, benchRig(b, false, false)) }
func BenchmarkExchangeMetrics(b *testing.B)     { benchExchange(b, benchRig(b, true, false)) }
func BenchmarkExchangeMetricsLog(b *testing.B)  { benchExchange(b, benchRig(b, true, true)) }

func BenchmarkExchangeMetricsLogParallel(b *testing.B) {
	rec := benchRig(b, true, true)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &nopWriter{h: http.Header{}}
		for pb.Next() {
			req := httptest.NewRequest("GET", "http://reviews:9080/reviews/1", nil)
			x := rec.Begin(w, req, Client)
			x.Route("default/reviews/0")
			x.Cluster("reviews-v1.default:9080")
			x.Upstream("default/reviews-v1-1", "10.0.0.1:9080")
			x.WriteHeader(200)
			x.End()
		}
	})
}
