package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// httpGateway is a Gateway with one HTTP listener named web.
func httpGateway(port int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: weft
  listeners: [{name: web, port: %d, protocol: HTTP}]
`, port)
}

// issuer signs tokens with its own key and publishes the key as a JWKS.
type issuer struct {
	name string
	key  *ecdsa.PrivateKey
	kid  string
}

func newIssuer(t *testing.T, name, kid string) *issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{name: name, key: key, kid: kid}
}

func (is *issuer) jwks(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: string(jose.ES256), Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// token mints a token from iss (which may differ from the issuer's own
// name, to forge) for audience aud, expiring at exp, with extra claims.
func (is *issuer) token(t *testing.T, iss, aud string, exp time.Time, extra map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: is.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", is.kid))
	if err != nil {
		t.Fatal(err)
	}
	std := jwt.Claims{Issuer: iss, Subject: "alice", Audience: jwt.Audience{aud}, IssuedAt: jwt.NewNumericDate(time.Now().Add(-time.Minute)), Expiry: jwt.NewNumericDate(exp)}
	s, err := jwt.Signed(signer).Claims(std).Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsignedToken is a token with alg "none": valid claims, no signature.
func unsignedToken(iss, aud string) string {
	enc := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(map[string]any{"iss": iss, "sub": "mallory", "aud": aud, "exp": time.Now().Add(time.Hour).Unix()})
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."
}

// TestGatewayJWT: a RequestAuthentication on the Gateway (keys from a JWKS
// URL) and one on a single route (keys from a file). Valid tokens pass with
// their claims as headers and without the token; missing, expired,
// wrong-issuer, wrong-audience, unsigned and forged tokens get 401 with
// WWW-Authenticate.
func TestGatewayJWT(t *testing.T) {
	t.Parallel()
	shop := newIssuer(t, "https://issuer.shop.test", "shop-1")
	files := newIssuer(t, "https://files.shop.test", "files-1")
	other := newIssuer(t, "https://evil.test", "shop-1") // same kid, other key
	var fetches atomic.Int32
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(shop.jwks(t))
	}))
	t.Cleanup(jwksSrv.Close)
	jwksFile := filepath.Join(t.TempDir(), "files.jwks.json")
	if err := os.WriteFile(jwksFile, files.jwks(t), 0o644); err != nil {
		t.Fatal(err)
	}

	a := NewHTTPBackend(t, "api-1")
	port := freePort(t)
	StartGateway(t, docs(httpGateway(port), serviceWith(t, "api", 80, "http", a),
		gatewayRoute("api", "edge", "", "", "- matches: [{path: {value: /api}}]\n  backendRefs: [{name: api, port: 80}]"),
		gatewayRoute("files", "edge", "", "", "- matches: [{path: {value: /files}}]\n  backendRefs: [{name: api, port: 80}]"),
		fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: shop}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: edge}
  jwtRules:
  - issuer: https://issuer.shop.test
    audiences: [shop-api]
    jwksURI: %s/jwks.json
    claimsToHeaders: [{claim: sub, header: X-User}, {claim: groups, header: X-Groups}]
`, jwksSrv.URL),
		fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: files}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: files}
  jwtRules:
  - {issuer: "https://files.shop.test", jwksFile: %s, claimsToHeaders: [{claim: sub, header: X-User}]}
`, jwksFile)))
	c := gatewayClient(fmt.Sprintf("127.0.0.1:%d", port), nil)
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	hour := time.Now().Add(time.Hour)

	valid := shop.token(t, shop.name, "shop-api", hour, map[string]any{"groups": []string{"admin", "dev"}})
	r := get(t, c, "http://shop.test/api/orders", append(bearer(valid), "X-User", "spoofed")...)
	if r.Status != http.StatusOK {
		t.Fatalf("valid token: %s", r)
	}
	if u, g := r.Echo.Header.Get("X-User"), r.Echo.Header.Get("X-Groups"); u != "alice" || g != "admin,dev" {
		t.Errorf("claims to headers: X-User %q X-Groups %q, want alice and admin,dev", u, g)
	}
	if vs := r.Echo.Header.Values("X-User"); len(vs) != 1 {
		t.Errorf("the client's own X-User reached the backend: %q", vs)
	}
	if auth := r.Echo.Header.Get("Authorization"); auth != "" {
		t.Errorf("the token was forwarded: %q", auth)
	}

	for _, c2 := range []struct {
		name, path string
		hdr        []string
		desc       string // error_description; "" for a missing token
	}{
		{"missing", "/api/x", nil, ""},
		{"not bearer", "/api/x", []string{"Authorization", "Basic YWxpY2U6c2VjcmV0"}, ""},
		{"expired", "/api/x", bearer(shop.token(t, shop.name, "shop-api", time.Now().Add(-time.Hour), nil)), "token expired"},
		{"wrong issuer", "/api/x", bearer(other.token(t, other.name, "shop-api", hour, nil)), "issuer not trusted"},
		{"forged issuer", "/api/x", bearer(other.token(t, shop.name, "shop-api", hour, nil)), "signature not verified"},
		{"wrong audience", "/api/x", bearer(shop.token(t, shop.name, "billing", hour, nil)), "audience not allowed"},
		{"unsigned", "/api/x", bearer(unsignedToken(shop.name, "shop-api")), "signing algorithm not accepted"},
		{"garbage", "/api/x", bearer("not.a.token"), "malformed token"},
		{"route issuer elsewhere", "/api/x", bearer(files.token(t, files.name, "any", hour, nil)), "issuer not trusted"},
	} {
		r := get(t, c, "http://shop.test"+c2.path, c2.hdr...)
		want := `Bearer realm="weft"`
		if c2.desc != "" {
			want += `, error="invalid_token", error_description="` + c2.desc + `"`
		}
		if r.Status != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") != want || r.WeftError() != "unauthenticated" {
			t.Errorf("%s: %s WWW-Authenticate %q; want 401 %q", c2.name, r, r.Header.Get("WWW-Authenticate"), want)
		}
	}
	if n := a.Requests.Load(); n != 1 {
		t.Errorf("backend got %d requests, want only the valid one", n)
	}

	// The files route trusts both issuers: its own policy and the Gateway's.
	for name, tok := range map[string]string{"file keys": files.token(t, files.name, "any", hour, nil), "gateway keys": valid} {
		if r := get(t, c, "http://shop.test/files/report", bearer(tok)...); r.Status != http.StatusOK || r.Echo.Header.Get("X-User") != "alice" {
			t.Errorf("files route with %s: %s X-User %q", name, r, r.Echo.Header.Get("X-User"))
		}
	}
	if n := fetches.Load(); n < 1 || n > 3 {
		t.Errorf("the JWKS URL was fetched %d times; want it cached", n)
	}
}

// TestGatewayRateLimit: 20 requests per second per client address. A
// client sending as fast as it can for 3 s gets the burst plus 20 per
// second (within 10 %), and 429 with Retry-After for the rest. A limit
// keyed on a header gives each key its own bucket.
func TestGatewayRateLimit(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "api-1")
	port := freePort(t)
	StartGateway(t, docs(httpGateway(port), serviceWith(t, "api", 80, "http", a),
		gatewayRoute("api", "edge", "", "", "- matches: [{path: {value: /api}}]\n  backendRefs: [{name: api, port: 80}]"),
		gatewayRoute("keyed", "edge", "", "", "- matches: [{path: {value: /keyed}}]\n  backendRefs: [{name: api, port: 80}]"),
		`apiVersion: weft.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: api}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}
  limits: [{requests: 20, period: 1s, key: ClientAddress}]
---
apiVersion: weft.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: keyed}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: keyed}
  limits: [{requests: 2, period: 1m, key: Header, header: X-Api-Key}]
`))
	c := gatewayClient(fmt.Sprintf("127.0.0.1:%d", port), nil)
	const (
		rate   = 20.0
		burst  = 20
		period = 3 * time.Second
	)
	var ok, limited atomic.Int64
	var badRetryAfter atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < period {
				r, err := send(c, http.MethodGet, "http://shop.test/api/x", nil)
				if err != nil {
					t.Error(err)
					return
				}
				switch r.Status {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
					if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 || r.WeftError() != "rate-limited" {
						badRetryAfter.Store(r.String() + " Retry-After " + r.Header.Get("Retry-After"))
					}
				default:
					t.Errorf("unexpected answer %s", r)
					return
				}
				time.Sleep(time.Millisecond) // far above the limit, without flooding CI
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	got := (float64(ok.Load()) - burst) / elapsed
	t.Logf("%d allowed, %d limited in %.2fs: %.1f/s beyond the burst of %d", ok.Load(), limited.Load(), elapsed, got, burst)
	if got < rate*0.9 || got > rate*1.1 {
		t.Errorf("allowed rate %.1f/s, want %.0f/s ±10%%", got, rate)
	}
	if limited.Load() < 100 {
		t.Errorf("only %d requests limited; the client was not faster than the limit", limited.Load())
	}
	if v := badRetryAfter.Load(); v != nil {
		t.Errorf("a 429 without a proper Retry-After: %v", v)
	}

	// Per header value: two each, then 429 with a wait of up to a period.
	for _, key := range []string{"k1", "k2"} {
		for i := 0; i < 2; i++ {
			if r := get(t, c, "http://shop.test/keyed", "X-Api-Key", key); r.Status != http.StatusOK {
				t.Fatalf("key %s request %d: %s", key, i, r)
			}
		}
		r := get(t, c, "http://shop.test/keyed", "X-Api-Key", key)
		if n, _ := strconv.Atoi(r.Header.Get("Retry-After")); r.Status != http.StatusTooManyRequests || n < 20 || n > 60 {
			t.Errorf("key %s third request: %s Retry-After %q, want 429 and 20-60", key, r, r.Header.Get("Retry-After"))
		}
	}
}

// TestGatewayCORSAndBodyLimit: a route's CORS filter answers preflights
// itself and decorates responses to allowed origins; the max-request-body
// annotation refuses larger bodies with 413, declared or chunked.
func TestGatewayCORSAndBodyLimit(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "api-1")
	port := freePort(t)
	StartGateway(t, docs(httpGateway(port), serviceWith(t, "api", 80, "http", a), `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: api
  annotations: {weft.dev/max-request-body: 1Ki}
spec:
  parentRefs: [{name: edge}]
  rules:
  - filters:
    - type: CORS
      cors:
        allowOrigins: ["https://app.shop.test", "https://*.partner.test"]
        allowMethods: [GET, POST]
        allowHeaders: [authorization, content-type]
        exposeHeaders: [x-backend]
        allowCredentials: true
        maxAge: 600
    backendRefs: [{name: api, port: 80}]
`))
	c := gatewayClient(fmt.Sprintf("127.0.0.1:%d", port), nil)
	preflight := func(origin string) Result {
		r, err := send(c, http.MethodOptions, "http://shop.test/api/cart", nil,
			"Origin", origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, origin := range []string{"https://app.shop.test", "https://eu.partner.test"} {
		r := preflight(origin)
		h := r.Header
		if r.Status != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != origin || h.Get("Access-Control-Allow-Methods") != "GET, POST" ||
			h.Get("Access-Control-Allow-Headers") != "authorization, content-type" || h.Get("Access-Control-Max-Age") != "600" ||
			h.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("preflight from %s: %d %v", origin, r.Status, h)
		}
	}
	if r := preflight("https://evil.test"); r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from a foreign origin: %d Allow-Origin %q, want 204 without CORS headers", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
	}
	if n := a.Requests.Load(); n != 0 {
		t.Errorf("preflights reached the backend (%d requests)", n)
	}
	r := mustOK(t, c, "http://shop.test/api/cart", "Origin", "https://app.shop.test")
	if r.Header.Get("Access-Control-Allow-Origin") != "https://app.shop.test" || r.Header.Get("Access-Control-Expose-Headers") != "x-backend" {
		t.Errorf("CORS response headers: %v", r.Header)
	}
	if r := mustOK(t, c, "http://shop.test/api/cart", "Origin", "https://evil.test"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a foreign origin got Allow-Origin %q", r.Header.Get("Access-Control-Allow-Origin"))
	}

	// Body limit, 1 KiB.
	small := bytes.Repeat([]byte("a"), 1024)
	big := bytes.Repeat([]byte("b"), 1025)
	if r, err := send(c, http.MethodPost, "http://shop.test/api/upload", bytes.NewReader(small)); err != nil || r.Status != http.StatusOK || r.Echo.BodyLen != 1024 {
		t.Errorf("1 KiB body: %v %v", r, err)
	}
	if r, err := send(c, http.MethodPost, "http://shop.test/api/upload", bytes.NewReader(big)); err != nil || r.Status != http.StatusRequestEntityTooLarge || r.WeftError() != "body-too-large" {
		t.Errorf("declared 1025-byte body: %v %v, want 413", r, err)
	}
	// No Content-Length: a reader the client cannot measure is sent chunked.
	chunked := func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) }
	if r, err := send(c, http.MethodPost, "http://shop.test/api/upload", chunked(big)); err != nil || r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked 1025-byte body: %v %v, want 413", r, err)
	}
	if r, err := send(c, http.MethodPost, "http://shop.test/api/upload", chunked(small)); err != nil || r.Status != http.StatusOK || r.Echo.BodyLen != 1024 {
		t.Errorf("chunked 1 KiB body: %v %v", r, err)
	}
}
