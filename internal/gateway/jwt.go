package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"weft.dev/weft/internal/compile"
)

// JWT validation (RequestAuthentication). A token is accepted when the
// provider trusting its issuer verifies its signature with a key of its
// JWKS, its audience fits, and it is within exp/nbf (with clockSkew). Only
// asymmetric algorithms are accepted: "none" and HMAC (whose "key" would
// have to be the public JWKS) are refused before any key is looked at.

// clockSkew tolerates clocks that differ between issuer and gateway.
const clockSkew = 30 * time.Second

var allowedAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// authError is why a request is refused, for WWW-Authenticate (RFC 6750).
type authError struct {
	missing bool // no token at all: the challenge carries no error
	desc    string
}

func (e *authError) Error() string {
	if e.missing {
		return "no token"
	}
	return e.desc
}

// challenge is the WWW-Authenticate value for e.
func (e *authError) challenge() string {
	if e.missing {
		return `Bearer realm="weft"`
	}
	return `Bearer realm="weft", error="invalid_token", error_description=` + strconv.Quote(e.desc)
}

// jwtProvider verifies the tokens of one issuer.
type jwtProvider struct {
	cfg  *compile.JWTProvider
	keys *jwksSource
}

// token finds the token of a request per the provider's fromHeaders and
// fromParams; "" when there is none.
func (pr *jwtProvider) token(r *http.Request) string {
	for _, h := range pr.cfg.FromHeaders {
		v := r.Header.Get(h.Name)
		if v == "" {
			continue
		}
		if h.Prefix != "" {
			if len(v) < len(h.Prefix) || !strings.EqualFold(v[:len(h.Prefix)], h.Prefix) {
				continue
			}
			v = v[len(h.Prefix):]
		}
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	if len(pr.cfg.FromParams) > 0 {
		q := r.URL.Query()
		for _, p := range pr.cfg.FromParams {
			if v := q.Get(p); v != "" {
				return v
			}
		}
	}
	return ""
}

// removeToken strips the token from a request that is forwarded.
func (pr *jwtProvider) removeToken(r *http.Request) {
	for _, h := range pr.cfg.FromHeaders {
		r.Header.Del(h.Name)
	}
	if len(pr.cfg.FromParams) > 0 {
		q := r.URL.Query()
		for _, p := range pr.cfg.FromParams {
			q.Del(p)
		}
		r.URL.RawQuery = q.Encode()
	}
}

// authenticator applies a rule's providers to a request.
type authenticator struct {
	providers    []*jwtProvider
	allowMissing bool
}

// authenticate checks r's token and, when it is accepted, copies its claims
// to headers. Claim headers a client sent are always removed: only the
// gateway may set them.
func (a *authenticator) authenticate(ctx context.Context, r *http.Request, now time.Time) *authError {
	for _, pr := range a.providers {
		for _, c := range pr.cfg.ClaimsToHeaders {
			r.Header.Del(c.Header)
		}
	}
	raw, found := "", false
	for _, pr := range a.providers {
		if raw = pr.token(r); raw != "" {
			found = true
			break
		}
	}
	if !found {
		if a.allowMissing {
			return nil
		}
		return &authError{missing: true}
	}
	tok, err := jwt.ParseSigned(raw, allowedAlgorithms)
	if err != nil {
		if strings.Contains(err.Error(), "unexpected signature algorithm") {
			return &authError{desc: "signing algorithm not accepted"}
		}
		return &authError{desc: "malformed token"}
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return &authError{desc: "malformed claims"}
	}
	var pr *jwtProvider
	for _, p := range a.providers {
		if p.cfg.Issuer == unverified.Issuer {
			pr = p
			break
		}
	}
	if pr == nil {
		return &authError{desc: "issuer not trusted"}
	}
	all, aerr := pr.verify(ctx, tok, now)
	if aerr != nil {
		return aerr
	}
	for _, c := range pr.cfg.ClaimsToHeaders {
		if v, ok := claimString(all, c.Claim); ok {
			r.Header.Set(c.Header, v)
		}
	}
	if !pr.cfg.ForwardOriginalToken {
		pr.removeToken(r)
	}
	return nil
}

// verify checks the signature with the provider's keys (refreshing them
// once for an unknown key id) and then the claims.
func (pr *jwtProvider) verify(ctx context.Context, tok *jwt.JSONWebToken, now time.Time) (map[string]any, *authError) {
	kid := ""
	if len(tok.Headers) > 0 {
		kid = tok.Headers[0].KeyID
	}
	var std jwt.Claims
	var all map[string]any
	verified := false
	for attempt := 0; attempt < 2 && !verified; attempt++ {
		set, err := pr.keys.get(ctx, attempt > 0)
		if err != nil {
			return nil, &authError{desc: "signing keys unavailable"}
		}
		keys := set.Keys
		if kid != "" {
			keys = set.Key(kid)
		}
		for _, k := range keys {
			if k.Use == "enc" {
				continue
			}
			if err := tok.Claims(k.Public().Key, &std, &all); err == nil {
				verified = true
				break
			}
		}
		if verified || kid == "" || len(set.Key(kid)) > 0 {
			break // a known key failed, or no kid to look for: refreshing will not help
		}
	}
	if !verified {
		return nil, &authError{desc: "signature not verified"}
	}
	err := std.ValidateWithLeeway(jwt.Expected{Issuer: pr.cfg.Issuer, AnyAudience: pr.cfg.Audiences, Time: now}, clockSkew)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrExpired):
		return nil, &authError{desc: "token expired"}
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		return nil, &authError{desc: "token not valid yet"}
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, &authError{desc: "audience not allowed"}
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return nil, &authError{desc: "issuer not trusted"}
	default:
		return nil, &authError{desc: "invalid claims"}
	}
	return all, nil
}

// claimString reads a claim by name, or by a dotted path into nested
// objects, as a header value: strings as they are, other values as JSON
// (arrays of strings joined with commas).
func claimString(all map[string]any, name string) (string, bool) {
	var v any = all
	if x, ok := all[name]; ok {
		v = x
	} else {
		for _, part := range strings.Split(name, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				return "", false
			}
			if v, ok = m[part]; !ok {
				return "", false
			}
		}
	}
	switch x := v.(type) {
	case string:
		return x, true
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				b, _ := json.Marshal(x)
				return string(b), true
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), true
	case nil:
		return "", false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", false
	}
	return string(b), true
}
