package gateway

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"weft.dev/weft/internal/compile"
)

// FuzzAuthenticate feeds arbitrary bearer tokens to the JWT stage: it must
// never panic nor accept a token the test's key did not sign.
func FuzzAuthenticate(f *testing.F) {
	k := newECKey(&testing.T{}, "k1")
	now := time.Now()
	f.Add(mint(&testing.T{}, k, map[string]any{"iss": "i", "exp": now.Add(time.Hour).Unix()}))
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJpIn0.")
	f.Add("a.b.c")
	f.Add("")
	src, err := newInlineJWKS(jwksOf(&testing.T{}, k))
	if err != nil {
		f.Fatal(err)
	}
	a := &authenticator{providers: []*jwtProvider{{cfg: &compile.JWTProvider{Issuer: "i",
		FromHeaders: []compile.JWTHeader{{Name: "Authorization", Prefix: "Bearer "}}, ClaimsToHeaders: []compile.ClaimToHeader{{Claim: "sub", Header: "x-user"}}}, keys: src}}}
	f.Fuzz(func(t *testing.T, tok string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{"Bearer " + tok}
		_ = a.authenticate(context.Background(), r, now)
	})
}

// FuzzPeekSNI feeds arbitrary first bytes to the ClientHello reader.
func FuzzPeekSNI(f *testing.F) {
	f.Add([]byte("\x16\x03\x01\x00\x05hello"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, s := net.Pipe()
		go func() { c.Write(data); c.Close() }()
		s.SetDeadline(time.Now().Add(time.Second))
		_, replay, err := peekSNI(s)
		if err == nil && replay == nil {
			t.Fatal("no error and no connection")
		}
		s.Close()
	})
}
