package dashboard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/control/store"
)

func TestMount(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := api.New(api.Options{Store: st, AdminToken: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	Mount(a)
	srv := httptest.NewServer(a)
	defer srv.Close()

	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("/")
	if resp.StatusCode != 200 || !strings.Contains(body, `<script src="ui/app.js"`) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %q", resp.Status, body[:min(len(body), 200)])
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	for path, ctype := range map[string]string{"/ui/app.js": "javascript", "/ui/app.css": "text/css"} {
		resp, body := get(path)
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), ctype) || len(body) < 100 {
			t.Errorf("GET %s: %s %s (%d bytes)", path, resp.Status, resp.Header.Get("Content-Type"), len(body))
		}
	}
	// Nothing leaks through the public part: no CDN in the page, and the
	// API still wants the token.
	for _, path := range []string{"/", "/ui/app.js", "/ui/app.css"} {
		_, body := get(path)
		if strings.Contains(body, "https://") || strings.Contains(body, "http://") && !strings.Contains(body, "http://www.w3.org/2000/svg") {
			t.Errorf("%s refers to another site", path)
		}
	}
	if resp, _ := get("/api/v1/resources"); resp.StatusCode != 401 {
		t.Errorf("API without token: %s", resp.Status)
	}
	if resp, _ := get("/nope"); resp.StatusCode != 404 {
		t.Errorf("GET /nope: %s", resp.Status)
	}
	if resp, _ := get("/healthz"); resp.StatusCode != 200 {
		t.Errorf("GET /healthz: %s", resp.Status)
	}
}

// TestSize keeps the page small: it loads at once on any link.
func TestSize(t *testing.T) {
	var total int
	for _, f := range []string{"index.html", "app.js", "app.css"} {
		b, err := Files().(interface{ ReadFile(string) ([]byte, error) }).ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		total += len(b)
	}
	if total > 100<<10 {
		t.Errorf("the dashboard is %d bytes; keep it under 100 KiB", total)
	}
}
