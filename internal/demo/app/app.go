// Package app is the sample application `weft demo` runs: a small
// storefront of five services that call each other only by service name,
// through their sidecars, over HTTP, gRPC and WebSocket:
//
//	gateway → web ─HTTP→ catalog
//	              ├WebSocket→ cart
//	              └HTTP→ reviews (v1 | v2) ─gRPC→ ratings
//
// Nothing here knows about the mesh: HTTP goes through HTTP_PROXY (set by
// the sidecar that supervises the app) and gRPC to a local port of the
// sidecar (RATINGS_ADDR), exactly as an unmodified app would be deployed.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
)

// Roles the app can play.
var Roles = []string{"web", "catalog", "cart", "reviews-v1", "reviews-v2", "ratings"}

// Run serves role on listen until SIGTERM/SIGINT.
func Run(role, listen string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("app", role)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if role == "ratings" {
		srv := grpc.NewServer()
		registerRatings(srv)
		go func() { <-ctx.Done(); srv.GracefulStop() }()
		log.Info("serving", "listen", listen)
		return srv.Serve(ln)
	}
	var h http.Handler
	switch role {
	case "web":
		h = newWeb()
	case "catalog":
		h = http.HandlerFunc(catalog)
	case "cart":
		h = newCart()
	case "reviews-v1":
		h = newReviews("v1", "")
	case "reviews-v2":
		h = newReviews("v2", os.Getenv("RATINGS_ADDR"))
	default:
		return fmt.Errorf("unknown role %q (want one of %v)", role, Roles)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.Handle("/", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving", "listen", listen)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Product is what the catalog sells.
type Product struct {
	ID    string  `json:"id"`
	Name  string  `json:"name"`
	Price float64 `json:"price"`
}

var products = []Product{
	{"p1", "Loom", 249},
	{"p2", "Shuttle", 19.5},
	{"p3", "Yarn, 1 kg", 32},
}

func catalog(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/products" {
		http.NotFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, products)
}
