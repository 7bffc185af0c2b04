// Package dashboard is the web UI of the control plane: a page of
// hand-written HTML, CSS and JavaScript embedded in the binary (no CDN, no
// build step, about 32 KB), served by `weft control --http` at /. The page
// and its assets are public; everything they show comes from the JSON API
// (internal/control/api and internal/control/stats) with the admin token,
// which the page takes from the URL fragment (`weft dashboard` prints such
// a link; a fragment is never sent to a server, so never logged) or from a
// login form, and keeps in the tab's sessionStorage.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"

	"weft.dev/weft/internal/control/api"
)

//go:embed static
var static embed.FS

// Files are the page and its assets (index.html, app.js, app.css).
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// Mount serves the dashboard on the API server: the page at / and its
// assets under /ui/.
func Mount(a *api.Server) {
	files := Files()
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		panic(err)
	}
	a.HandlePublic("GET /{$}", secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(index)
	})))
	a.HandlePublic("GET /ui/", secure(http.StripPrefix("/ui/", http.FileServerFS(files))))
}

// secure sets headers that keep the page to itself: only its own scripts
// and styles, no framing, no referrer.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}
