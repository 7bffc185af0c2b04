package stats

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	telemetryv1 "weft.dev/weft/api/telemetry/v1"
	"weft.dev/weft/internal/control/api"
)

// DefaultGraphWindow is the graph's and top's window unless asked.
const DefaultGraphWindow = time.Minute

// Mount adds the telemetry calls to the API, behind its admin token.
func (s *Stats) Mount(a *api.Server) {
	a.Handle("GET /api/v1/graph", http.HandlerFunc(s.serveGraph))
	a.Handle("GET /api/v1/services/{namespace}/{name}/metrics", http.HandlerFunc(s.serveServiceMetrics))
	a.Handle("GET /api/v1/proxies", http.HandlerFunc(s.serveProxies))
	a.Handle("GET /api/v1/tap", http.HandlerFunc(s.serveTap))
}

// duration reads a query duration, clamped to [Resolution, Window].
func (s *Stats) duration(r *http.Request, name string, def time.Duration) (time.Duration, error) {
	v := r.URL.Query().Get(name)
	d := def
	if v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			return 0, &queryError{name + "=" + v + ": want a positive duration such as 1m"}
		}
	}
	return min(max(d, s.opts.Resolution), s.opts.Window), nil
}

type queryError struct{ msg string }

func (e *queryError) Error() string { return e.msg }

func (s *Stats) serveGraph(w http.ResponseWriter, r *http.Request) {
	window, err := s.duration(r, "window", DefaultGraphWindow)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	g, err := s.Graph(r.Context(), r.URL.Query().Get("namespace"), window)
	if err != nil {
		s.log.Error("graph", "error", err)
		api.WriteError(w, http.StatusInternalServerError, "store: "+err.Error())
		return
	}
	api.WriteJSON(w, http.StatusOK, g)
}

func (s *Stats) serveServiceMetrics(w http.ResponseWriter, r *http.Request) {
	window, err := s.duration(r, "window", s.opts.Window)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	step, err := s.duration(r, "step", s.opts.Resolution)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	m, err := s.ServiceMetrics(r.Context(), r.PathValue("namespace"), r.PathValue("name"), window, step)
	if err != nil {
		s.log.Error("service metrics", "error", err)
		api.WriteError(w, http.StatusInternalServerError, "store: "+err.Error())
		return
	}
	api.WriteJSON(w, http.StatusOK, m)
}

func (s *Stats) serveProxies(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusOK, s.Proxies(r.Context()))
}

// serveTap streams tapped requests as NDJSON until the client goes away
// or limit requests were sent.
func (s *Stats) serveTap(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := &telemetryv1.TapFilter{
		Namespace: q.Get("namespace"), Service: q.Get("service"),
		PathPrefix: q.Get("path"), Method: strings.ToUpper(q.Get("method")),
	}
	if f.PathPrefix != "" && !strings.HasPrefix(f.PathPrefix, "/") {
		api.WriteError(w, http.StatusBadRequest, "path="+f.PathPrefix+": want a prefix starting with /")
		return
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			api.WriteError(w, http.StatusBadRequest, "limit="+v+": want a number of requests, 0 for no limit")
			return
		}
		limit = n
	}
	rc := http.NewResponseController(w)
	t, n := s.openTap(f)
	defer s.closeTap(t)
	s.log.Info("tap opened", "tap", t.id, "proxies", n, "namespace", f.Namespace, "service", f.Service, "path_prefix", f.PathPrefix, "method", f.Method)
	defer s.log.Info("tap closed", "tap", t.id)

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(l *api.TapLine) bool {
		if enc.Encode(l) != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(&api.TapLine{Kind: api.TapLineOpened, Proxies: n}) {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	sent := 0
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if d := t.dropped.Swap(0); d > 0 && !send(&api.TapLine{Kind: api.TapLineDropped, Dropped: d}) {
				return
			}
		case ev := <-t.events:
			if !send(&api.TapLine{Kind: api.TapLineRequest, Request: ev}) {
				return
			}
			sent++
			if limit > 0 && sent >= limit {
				return
			}
		}
	}
}
