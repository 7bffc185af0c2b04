package gateway

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Admin serves the gateway's admin endpoints: /ready, /config (the served
// config with certificates redacted, and the engine's clusters), /clusters,
// /status (the Gateway API status of the Gateway, its listeners and the
// routes that name it) and /metrics. It listens on loopback by default:
// the config reveals the mesh's topology.
type Admin struct {
	srv *http.Server
	ln  net.Listener
}

// StartAdmin listens on addr.
func StartAdmin(addr string, g *Gateway, reg prometheus.Gatherer, log *slog.Logger) (*Admin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !g.Ready() {
			http.Error(w, "no config yet", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
		// Never the config itself: it holds the certificates' private keys.
		writeJSON(w, map[string]any{"gateway": g.Config().Redacted(), "proxy": g.p.Config()})
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		gw := g.Config()
		if gw == nil {
			http.Error(w, "no config yet", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, map[string]any{"gateway": gw.Namespace + "/" + gw.Name, "version": gw.Version, "status": gw.Status})
	})
	mux.HandleFunc("GET /clusters", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, g.p.Upstreams().Snapshot())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	a := &Admin{srv: &http.Server{Handler: mux, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}, ln: ln}
	go func() { _ = a.srv.Serve(ln) }()
	return a, nil
}

// Addr is where the admin server listens.
func (a *Admin) Addr() net.Addr { return a.ln.Addr() }

// Close stops it.
func (a *Admin) Close() error { return a.srv.Close() }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
