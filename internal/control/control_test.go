package control

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/control/token"
)

func start(t *testing.T, home string, logs *bytes.Buffer) *Plane {
	t.Helper()
	p, err := Start(context.Background(), Options{
		WeftHome: home, HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		// As the dashboard will: mount a handler behind the admin token.
		OnStart: func(p *Plane) error {
			if p.Store == nil || p.Push == nil {
				t.Error("OnStart without store or push server")
			}
			p.API.Handle("GET /ui/hello", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartWritesContextAndTokens(t *testing.T) {
	home := t.TempDir()
	var logs bytes.Buffer
	p := start(t, home, &logs)

	cfg, err := api.ReadClientConfig(filepath.Join(home, "config"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server != p.ServerURL || !strings.HasPrefix(cfg.Server, "http://127.0.0.1:") || len(cfg.Token) != 43 {
		t.Errorf("CLI context %+v (server %s)", cfg, p.ServerURL)
	}
	join, err := os.ReadFile(filepath.Join(home, "data", JoinTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	joinTok := strings.TrimSpace(string(join))
	// weft1.<sha256 of the root CA certificate>.<secret>
	pin, joinSecret, perr := token.Parse(joinTok)
	if perr != nil || len(joinSecret) != 43 || joinSecret == cfg.Token || fmt.Sprintf("%x", pin) != p.CA.RootHash() {
		t.Errorf("join token %q (admin %q)", joinTok, cfg.Token)
	}
	for _, f := range []string{filepath.Join(home, "config"), filepath.Join(home, "data", JoinTokenFile), filepath.Join(home, "data", store.BoltFile)} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	// Logs say where the files are, never what the tokens are.
	out := logs.String()
	for _, want := range []string{p.ConfigPath, p.JoinTokenPath, p.ServerURL} {
		if !strings.Contains(out, want) {
			t.Errorf("logs do not mention %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, cfg.Token) || strings.Contains(out, joinSecret) {
		t.Errorf("logs contain a token:\n%s", out)
	}

	// The API answers with the token from the context file.
	req, _ := http.NewRequest("GET", cfg.Server+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"proxies":[]`) {
		t.Errorf("status: %d %s", resp.StatusCode, body)
	}
	for tok, want := range map[string]int{"": 401, cfg.Token: 200} {
		req, _ := http.NewRequest("GET", cfg.Server+"/ui/hello", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("mounted handler with token %v: %d, want %d", tok != "", resp.StatusCode, want)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart keeps the tokens (they live in the store).
	logs.Reset()
	p = start(t, home, &logs)
	defer p.Close()
	cfg2, err := api.ReadClientConfig(filepath.Join(home, "config"))
	if err != nil {
		t.Fatal(err)
	}
	join2, _ := os.ReadFile(filepath.Join(home, "data", JoinTokenFile))
	if cfg2.Token != cfg.Token || strings.TrimSpace(string(join2)) != joinTok {
		t.Error("tokens changed across a restart")
	}
	if strings.Contains(logs.String(), "first start") {
		t.Error("second start says first start")
	}
}

func TestEnsureTokenRace(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	toks := make(chan string, 8)
	for i := 0; i < 8; i++ {
		go func() {
			tok, _, err := EnsureToken(ctx, st, "admin")
			if err != nil {
				t.Error(err)
			}
			toks <- tok
		}()
	}
	first := <-toks
	for i := 1; i < 8; i++ {
		if tok := <-toks; tok != first {
			t.Fatalf("replicas disagree on the token")
		}
	}
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:15080": "127.0.0.1:15080", "[::]:1": "127.0.0.1:1", ":80": "127.0.0.1:80",
		"10.1.2.3:80": "10.1.2.3:80", "[::1]:5": "[::1]:5",
	} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}
