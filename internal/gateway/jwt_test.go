package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"weft.dev/weft/internal/compile"
)

type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv any
	pub  any
}

func newECKey(t *testing.T, kid string) testKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.ES256, priv: k, pub: &k.PublicKey}
}

func newRSAKey(t *testing.T, kid string) testKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.RS256, priv: k, pub: &k.PublicKey}
}

func jwksOf(t *testing.T, keys ...testKey) string {
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.pub, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mint(t *testing.T, k testKey, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if k.kid != "" {
		opts = opts.WithHeader("kid", k.kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rawToken builds a token by hand, for algorithms no library will sign
// with: "none", and HS256 keyed with the public JWKS (key confusion).
func rawToken(header string, claims map[string]any, sign func(string) []byte) string {
	enc := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(claims)
	input := enc([]byte(header)) + "." + enc(payload)
	var sig []byte
	if sign != nil {
		sig = sign(input)
	}
	return input + "." + enc(sig)
}

func inlineProvider(t *testing.T, cfg compile.JWTProvider, jwks string) *jwtProvider {
	t.Helper()
	src, err := newInlineJWKS(jwks)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.FromHeaders == nil {
		cfg.FromHeaders = []compile.JWTHeader{{Name: "Authorization", Prefix: "Bearer "}}
	}
	return &jwtProvider{cfg: &cfg, keys: src}
}

func TestAuthenticate(t *testing.T) {
	ec, rsaKey, stranger := newECKey(t, "ec-1"), newRSAKey(t, "rsa-1"), newECKey(t, "ec-1")
	jwks := jwksOf(t, ec, rsaKey)
	now := time.Now()
	a := &authenticator{providers: []*jwtProvider{
		inlineProvider(t, compile.JWTProvider{Issuer: "https://iss.test", Audiences: []string{"api", "web"},
			ClaimsToHeaders: []compile.ClaimToHeader{{Claim: "sub", Header: "x-user"}, {Claim: "org.id", Header: "x-org"}, {Claim: "admin", Header: "x-admin"}}}, jwks),
		inlineProvider(t, compile.JWTProvider{Issuer: "other", FromHeaders: []compile.JWTHeader{{Name: "x-token"}}, FromParams: []string{"access_token"}, ForwardOriginalToken: true}, jwksOf(t, newECKey(t, "o"))),
	}}
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": "https://iss.test", "sub": "alice", "aud": []string{"web"}, "exp": now.Add(time.Hour).Unix(),
			"org": map[string]any{"id": "acme"}, "admin": true}
		if mod != nil {
			mod(c)
		}
		return c
	}
	hmacWithJWKS := rawToken(`{"alg":"HS256","typ":"JWT","kid":"ec-1"}`, claims(nil), func(in string) []byte {
		m := hmac.New(sha256.New, []byte(jwks))
		m.Write([]byte(in))
		return m.Sum(nil)
	})
	for _, c := range []struct {
		name  string
		token string
		want  string // "" accepted; "missing"; else error_description
	}{
		{"ES256", mint(t, ec, claims(nil)), ""},
		{"RS256", mint(t, rsaKey, claims(nil)), ""},
		{"no kid", mint(t, testKey{alg: jose.ES256, priv: ec.priv}, claims(nil)), ""},
		{"audience string", mint(t, ec, claims(func(c map[string]any) { c["aud"] = "api" })), ""},
		{"expired", mint(t, ec, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), "token expired"},
		{"within skew", mint(t, ec, claims(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() })), ""},
		{"not yet", mint(t, ec, claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() })), "token not valid yet"},
		{"wrong audience", mint(t, ec, claims(func(c map[string]any) { c["aud"] = "billing" })), "audience not allowed"},
		{"wrong issuer", mint(t, ec, claims(func(c map[string]any) { c["iss"] = "https://evil.test" })), "issuer not trusted"},
		{"no issuer", mint(t, ec, claims(func(c map[string]any) { delete(c, "iss") })), "issuer not trusted"},
		{"other key same kid", mint(t, stranger, claims(nil)), "signature not verified"},
		{"unknown kid", mint(t, newECKey(t, "ec-9"), claims(nil)), "signature not verified"},
		{"alg none", rawToken(`{"alg":"none","typ":"JWT"}`, claims(nil), nil), "signing algorithm not accepted"},
		{"HS256 keyed by the JWKS", hmacWithJWKS, "signing algorithm not accepted"},
		{"truncated", strings.Join(strings.Split(mint(t, ec, claims(nil)), ".")[:2], "."), "malformed token"},
		{"tampered", func() string {
			p := strings.Split(mint(t, ec, claims(nil)), ".")
			p[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://iss.test","sub":"root","aud":"web","exp":9999999999}`))
			return strings.Join(p, ".")
		}(), "signature not verified"},
		{"missing", "", "missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if c.token != "" {
				r.Header.Set("Authorization", "Bearer "+c.token)
			}
			r.Header.Set("X-User", "spoofed")
			err := a.authenticate(context.Background(), r, now)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want == "":
				if r.Header.Get("x-user") != "alice" || r.Header.Get("x-org") != "acme" || r.Header.Get("x-admin") != "true" {
					t.Errorf("claim headers: %v", r.Header)
				}
				if r.Header.Get("Authorization") != "" {
					t.Error("token kept on the request")
				}
			case err == nil:
				t.Fatalf("accepted, want %q", c.want)
			case c.want == "missing":
				if !err.missing || err.challenge() != `Bearer realm="weft"` {
					t.Errorf("got %q / %q", err.Error(), err.challenge())
				}
			default:
				if err.desc != c.want || !strings.Contains(err.challenge(), `error="invalid_token"`) {
					t.Errorf("got %q (%s), want %q", err.desc, err.challenge(), c.want)
				}
			}
			if c.want != "" && r.Header.Get("X-User") != "" {
				t.Error("a refused request kept the client's X-User")
			}
		})
	}

	// The second provider reads x-token or ?access_token and keeps it.
	o := newECKey(t, "o")
	a2 := &authenticator{providers: []*jwtProvider{inlineProvider(t, compile.JWTProvider{Issuer: "other", FromParams: []string{"access_token"}, ForwardOriginalToken: true}, jwksOf(t, o))}}
	tok := mint(t, o, map[string]any{"iss": "other", "exp": now.Add(time.Hour).Unix()})
	r := httptest.NewRequest("GET", "/?access_token="+tok, nil)
	if err := a2.authenticate(context.Background(), r, now); err != nil || r.URL.Query().Get("access_token") != tok {
		t.Errorf("token from a query parameter: %v (query %q)", err, r.URL.RawQuery)
	}
	// allowMissing lets a request without a token through, not a bad one.
	a3 := &authenticator{providers: a.providers, allowMissing: true}
	if err := a3.authenticate(context.Background(), httptest.NewRequest("GET", "/", nil), now); err != nil {
		t.Errorf("allowMissing refused a request without a token: %v", err)
	}
	bad := httptest.NewRequest("GET", "/", nil)
	bad.Header.Set("Authorization", "Bearer x.y.z")
	if err := a3.authenticate(context.Background(), bad, now); err == nil {
		t.Error("allowMissing accepted a malformed token")
	}
}

// TestJWKSSources: keys from a URL are cached for the cache duration,
// refreshed once for an unknown kid (key rotation) but not more often than
// minRefresh, and kept when a refresh fails; keys from a file are re-read
// when stale.
func TestJWKSSources(t *testing.T) {
	k1, k2 := newECKey(t, "k1"), newECKey(t, "k2")
	var serve atomic.Value
	serve.Store(jwksOf(t, k1))
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		s := serve.Load().(string)
		if s == "" {
			http.Error(w, "down", 500)
			return
		}
		w.Write([]byte(s))
	}))
	defer srv.Close()
	src := &jwksSource{uri: srv.URL, ttl: time.Hour, client: srv.Client()}
	pr := &jwtProvider{cfg: &compile.JWTProvider{Issuer: "i", FromHeaders: []compile.JWTHeader{{Name: "Authorization", Prefix: "Bearer "}}}, keys: src}
	a := &authenticator{providers: []*jwtProvider{pr}}
	check := func(k testKey, want bool) {
		t.Helper()
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+mint(t, k, map[string]any{"iss": "i", "exp": time.Now().Add(time.Hour).Unix()}))
		if err := a.authenticate(context.Background(), r, time.Now()); (err == nil) != want {
			t.Errorf("token of %s: err %v, want accepted=%v", k.kid, err, want)
		}
	}
	check(k1, true)
	check(k1, true)
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches for two tokens, want 1 (cached)", n)
	}
	// Rotation: k2 appears at the URL; a token with kid k2 triggers one
	// refresh. Refreshes are spaced by minRefresh, so pretend it passed.
	serve.Store(jwksOf(t, k1, k2))
	src.mu.Lock()
	src.tried = time.Now().Add(-minRefresh)
	src.mu.Unlock()
	check(k2, true)
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches after an unknown kid, want 2", n)
	}
	// A flood of unknown kids does not make a flood of fetches.
	for i := 0; i < 5; i++ {
		check(newECKey(t, "k9"), false)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches after unknown kids within minRefresh, want 2", n)
	}
	// The issuer is down and the keys are stale: the old keys stay.
	serve.Store("")
	src.mu.Lock()
	src.fetched, src.tried = time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour)
	src.mu.Unlock()
	check(k1, true)
	if n := fetches.Load(); n != 3 {
		t.Errorf("%d fetches, want 3 (a failed refresh)", n)
	}

	// A file, re-read when stale.
	path := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(path, []byte(jwksOf(t, k1)), 0o644)
	fsrc := &jwksSource{file: path, ttl: time.Hour}
	pr.keys = fsrc
	check(k1, true)
	check(k2, false)
	os.WriteFile(path, []byte(jwksOf(t, k2)), 0o644)
	fsrc.mu.Lock()
	fsrc.fetched, fsrc.tried = time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour)
	fsrc.mu.Unlock()
	check(k2, true)
}
