// Package api is the control plane's HTTP JSON API: apply, get and delete
// resources, and the status of connected proxies. The CLI (`weft apply`,
// `get`, `delete`, `status`) is its client, and the dashboard mounts its
// own handlers on the same server with Handle.
//
// Every call needs "Authorization: Bearer <admin token>". Errors are JSON
// ({"error", "details"}); details name file, document, kind, name, field
// and reason, so the CLI can print them for people.
//
// Data flow: request -> resource.Decode (validation, all or nothing) ->
// store.Put with optimistic concurrency -> the push server's store watch
// carries the change to proxies.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"weft.dev/weft/internal/control/store"
)

// StatusSource tells which proxies are connected. The push server
// implements it (through an adapter in package control); without one the
// API reports no proxies.
type StatusSource interface {
	Proxies(ctx context.Context) ([]ProxyStatus, error)
}

// Options configure a Server.
type Options struct {
	Store store.Store
	// StoreName is shown by status: "bolt" or "etcd".
	StoreName string
	// AdminToken is required on every call; it must not be empty.
	AdminToken string
	// Status is optional.
	Status StatusSource
	// MaxBody bounds request bodies; default 16 MiB.
	MaxBody int64
	Logger  *slog.Logger
}

// DefaultMaxBody is the largest apply accepted by default.
const DefaultMaxBody = 16 << 20

// Server is the API as an http.Handler.
type Server struct {
	opts  Options
	token []byte
	log   *slog.Logger
	mux   *http.ServeMux
}

// New makes the API handler.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("api: no store")
	}
	if opts.AdminToken == "" {
		return nil, errors.New("api: empty admin token")
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, token: []byte(opts.AdminToken), log: opts.Logger.With("component", "api"), mux: http.NewServeMux()}
	s.Handle("POST /api/v1/apply", http.HandlerFunc(s.apply))
	s.Handle("POST /api/v1/delete", http.HandlerFunc(s.deleteFiles))
	s.Handle("GET /api/v1/resources", http.HandlerFunc(s.list))
	s.Handle("GET /api/v1/resources/{kind}", http.HandlerFunc(s.list))
	s.Handle("GET /api/v1/resources/{kind}/{namespace}/{name}", http.HandlerFunc(s.get))
	s.Handle("DELETE /api/v1/resources/{kind}/{namespace}/{name}", http.HandlerFunc(s.deleteOne))
	s.Handle("GET /api/v1/status", http.HandlerFunc(s.status))
	s.Handle("/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API call: "+r.Method+" "+r.URL.Path, nil)
	}))
	// For load balancers in front of replicas: says only that the process
	// answers, so it needs no token.
	s.HandlePublic("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	}))
	return s, nil
}

// Handle mounts h at pattern (http.ServeMux syntax) behind the admin token
// check: how the dashboard adds its pages and JSON.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, s.authenticated(h)) }

// HandlePublic mounts h without the token check. Only for what reveals
// nothing (static assets, health).
func (s *Server) HandlePublic(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.mux.ServeHTTP(rw, r)
	// Never log headers: they carry the token.
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rw.status, "took", time.Since(start))
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) authenticated(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), s.token) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong admin token (Authorization: Bearer <token>; `weft control` writes it to $WEFT_HOME/config)", nil)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// WriteJSON answers with v as JSON: the API's answers, and those of the
// control plane's other HTTP calls mounted on it (CA, tokens, stats).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// WriteError answers with an ErrorBody saying msg.
func WriteError(w http.ResponseWriter, status int, msg string) {
	writeError(w, status, msg, nil)
}

func writeError(w http.ResponseWriter, status int, msg string, details []Detail) {
	WriteJSON(w, status, ErrorBody{Error: msg, Details: details})
}

// storeError answers a failed store call.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		status = http.StatusServiceUnavailable
	}
	s.log.Error("store", "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, status, "store: "+err.Error(), nil)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	resp := StatusResponse{Store: s.opts.StoreName, Proxies: []ProxyStatus{}}
	// The store has no revision call; listing a kind that never exists
	// returns the revision and nothing else.
	_, rev, err := s.opts.Store.List(r.Context(), "_Revision")
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	resp.Revision = rev
	if s.opts.Status != nil {
		ps, err := s.opts.Status.Proxies(r.Context())
		if err != nil {
			resp.ProxiesError = err.Error()
		}
		if ps != nil {
			resp.Proxies = ps
		}
	}
	WriteJSON(w, http.StatusOK, resp)
}
