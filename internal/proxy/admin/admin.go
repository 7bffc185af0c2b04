// Package admin serves a proxy's admin endpoints: readiness, the active
// config, upstream state and Prometheus metrics. It listens on loopback by
// default because the config reveals the mesh's topology.
package admin

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"weft.dev/weft/internal/proxy"
)

// Server is the admin HTTP server.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Metrics the proxy core reports about its config.
type Metrics struct {
	Registry      *prometheus.Registry
	ConfigApplied prometheus.Counter
	ConfigErrors  prometheus.Counter
}

// NewMetrics makes a registry with Go and process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		ConfigApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_config_applied_total", Help: "Configs the proxy applied.",
		}),
		ConfigErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_config_rejected_total", Help: "Configs the proxy refused, keeping the previous one.",
		}),
	}
	reg.MustRegister(m.ConfigApplied, m.ConfigErrors)
	return m
}

// Start listens on addr and serves the admin endpoints for p.
func Start(addr string, p *proxy.Proxy, m *Metrics, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !p.Ready() {
			http.Error(w, "no config yet", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, p.Config())
	})
	mux.HandleFunc("GET /clusters", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, p.Upstreams().Snapshot())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	s := &Server{srv: &http.Server{Handler: mux, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}, ln: ln}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is where the server listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
