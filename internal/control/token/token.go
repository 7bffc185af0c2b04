// Package token holds the join tokens proxies bootstrap with: their format,
// their records in the store, creation with an expiry and a scope,
// revocation, and the check the CA makes before it signs a certificate for
// a proxy that has none yet.
//
// A join token is weft1.<sha256 of the root CA certificate, hex>.<secret>,
// kubeadm-style: the proxy checks the control plane's certificate against
// the pinned hash before it sends the token, so an impostor never sees it;
// the control plane checks only the secret. Records live in the store under
// the control plane's own kind _Token (beside the admin token), so every
// replica accepts the same tokens.
//
// Data flow: `weft token create` -> API -> Create -> store; a proxy's Sign
// call -> Check -> the CA signs its CSR.
package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	identityv1 "weft.dev/weft/api/identity/v1"
	"weft.dev/weft/internal/control/store"
)

// Where records live and the names that are not join tokens.
const (
	Kind      = "_Token"
	Namespace = "_"
	// AdminName is the API's admin token, kept in the same kind; it is
	// never a join token and never listed.
	AdminName = "admin"
	// DefaultJoinName is the join token `weft control` makes on first
	// start and writes to <data-dir>/join.token: no expiry, no scope.
	DefaultJoinName = "join"
	DefaultTTL      = 24 * time.Hour
)

// Errors of Check, for errors.Is. The CA turns ErrUnknown into
// UNAUTHENTICATED and the others into PERMISSION_DENIED.
var (
	ErrMalformed = identityv1.ErrMalformedToken
	ErrUnknown   = errors.New("unknown join token")
	ErrExpired   = errors.New("join token expired")
	ErrRevoked   = errors.New("join token revoked")
	ErrScope     = errors.New("identity outside the join token's scope")
	ErrExists    = errors.New("a token with this name exists")
)

// Record is one stored token. Its JSON keeps the admin and default join
// tokens' older form ({"token": secret}) readable: no expiry, no scope.
type Record struct {
	Name   string `json:"-"`
	Secret string `json:"token"`
	// Namespace and ServiceAccount, when set, are the only ones the token
	// may mint an identity for.
	Namespace      string     `json:"namespace,omitempty"`
	ServiceAccount string     `json:"serviceAccount,omitempty"`
	Created        *time.Time `json:"created,omitempty"`
	Expires        *time.Time `json:"expires,omitempty"`
	Revoked        *time.Time `json:"revoked,omitempty"`
	version        string
}

// State is "active", "expired" or "revoked" at now.
func (r *Record) State(now time.Time) string {
	switch {
	case r.Revoked != nil:
		return "revoked"
	case r.Expires != nil && !now.Before(*r.Expires):
		return "expired"
	}
	return "active"
}

// Allows checks that the token may mint ns/sa.
func (r *Record) Allows(ns, sa string) error {
	if r.Namespace != "" && r.Namespace != ns {
		return fmt.Errorf("%w: token %q is for namespace %q, not %q", ErrScope, r.Name, r.Namespace, ns)
	}
	if r.ServiceAccount != "" && r.ServiceAccount != sa {
		return fmt.Errorf("%w: token %q is for service account %q, not %q", ErrScope, r.Name, r.ServiceAccount, sa)
	}
	return nil
}

// Format makes the token a proxy is given (identityv1.FormatJoinToken).
func Format(caHash, secret string) string { return identityv1.FormatJoinToken(caHash, secret) }

// CAHash is the pin of a root certificate: SHA-256 of its DER, hex.
func CAHash(root *x509.Certificate) string {
	sum := sha256.Sum256(root.Raw)
	return hex.EncodeToString(sum[:])
}

// Parse splits a join token into its CA pin (32 bytes) and secret.
func Parse(tok string) (caHash []byte, secret string, err error) {
	return identityv1.ParseJoinToken(tok)
}

// NewSecret is 32 random bytes, base64url without padding (no '.').
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// CreateOptions describe a new token.
type CreateOptions struct {
	// Name identifies the token for list and revoke; default "t-" and
	// random hex.
	Name string
	// TTL is its lifetime; default 24h.
	TTL            time.Duration
	Namespace      string
	ServiceAccount string
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Create stores a new join token.
func Create(ctx context.Context, st store.Store, o CreateOptions, now time.Time) (*Record, error) {
	if o.Name == "" {
		b := make([]byte, 4)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		o.Name = "t-" + hex.EncodeToString(b)
	}
	if !nameRE.MatchString(o.Name) {
		return nil, fmt.Errorf("token name %q: want lower-case letters, digits and '-' (at most 63)", o.Name)
	}
	if o.Name == AdminName {
		return nil, fmt.Errorf("token name %q is reserved", o.Name)
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.TTL < 0 {
		return nil, fmt.Errorf("token ttl %s: must be positive", o.TTL)
	}
	secret, err := NewSecret()
	if err != nil {
		return nil, err
	}
	created, expires := now.UTC(), now.Add(o.TTL).UTC()
	r := &Record{Name: o.Name, Secret: secret, Namespace: o.Namespace, ServiceAccount: o.ServiceAccount, Created: &created, Expires: &expires}
	if err := put(ctx, st, r, "0"); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("%w: %q", ErrExists, o.Name)
		}
		return nil, err
	}
	return r, nil
}

func put(ctx context.Context, st store.Store, r *Record, expect string) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = st.Put(ctx, []store.Write{{
		Object:        store.Object{Kind: Kind, Namespace: Namespace, Name: r.Name, Data: data},
		ExpectVersion: expect,
	}})
	return err
}

func decode(o *store.Object) (*Record, error) {
	r := &Record{Name: o.Name, version: o.ResourceVersion}
	if err := json.Unmarshal(o.Data, r); err != nil || r.Secret == "" {
		return nil, fmt.Errorf("stored token %q is unreadable", o.Name)
	}
	return r, nil
}

// Get returns one join token's record.
func Get(ctx context.Context, st store.Store, name string) (*Record, error) {
	if name == AdminName {
		return nil, fmt.Errorf("token %q: %w", name, store.ErrNotFound)
	}
	o, err := st.Get(ctx, Kind, Namespace, name)
	if err != nil {
		return nil, fmt.Errorf("token %q: %w", name, err)
	}
	return decode(o)
}

// List returns every join token (never the admin token), by name.
func List(ctx context.Context, st store.Store) ([]*Record, error) {
	objs, _, err := st.List(ctx, Kind)
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, o := range objs {
		if o.Namespace != Namespace || o.Name == AdminName {
			continue
		}
		r, err := decode(o)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Revoke marks a token revoked: it is kept, so a proxy that presents it
// later is told it was revoked rather than that it is unknown.
func Revoke(ctx context.Context, st store.Store, name string, now time.Time) (*Record, error) {
	for attempt := 0; attempt < 5; attempt++ {
		r, err := Get(ctx, st, name)
		if err != nil {
			return nil, err
		}
		if r.Revoked != nil {
			return r, nil
		}
		t := now.UTC()
		r.Revoked = &t
		err = put(ctx, st, r, r.version)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("token %q: the store kept changing", name)
}

// Check finds the join token whose secret this is and checks that it may
// mint ns/sa at now. Every stored secret is compared in constant time.
func Check(ctx context.Context, st store.Store, secret, ns, sa string, now time.Time) (*Record, error) {
	recs, err := List(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("reading join tokens: %w", err)
	}
	var found *Record
	for _, r := range recs {
		if subtle.ConstantTimeCompare([]byte(secret), []byte(r.Secret)) == 1 {
			found = r
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w (never issued, or from another control plane)", ErrUnknown)
	}
	switch found.State(now) {
	case "revoked":
		return found, fmt.Errorf("%w: token %q was revoked at %s", ErrRevoked, found.Name, found.Revoked.Format(time.RFC3339))
	case "expired":
		return found, fmt.Errorf("%w: token %q expired at %s", ErrExpired, found.Name, found.Expires.Format(time.RFC3339))
	}
	return found, found.Allows(ns, sa)
}
