// Package ca is the control plane's certificate authority. One CA serves a
// mesh: it is made on the first start and kept in the store (kind _CA), so
// every replica signs with the same key and every proxy trusts one bundle.
// The package also holds what is built on it: the Identity gRPC service
// proxies bootstrap and renew with (service.go), the control plane's own
// certificate on the proxies' port and the mTLS checks there (tls.go), root
// rotation with an overlap, and its HTTP API (api.go).
//
// Data flow: store (_CA) -> Authority (the current CA, reloaded when any
// replica changes it) -> Sign for proxies, the serving certificate, and the
// bundle streamed to proxies.
package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/identity"
)

// Where the CA lives in the store.
const (
	Kind      = "_CA"
	namespace = "_"
	name      = "ca"
)

// Defaults of Options.
const (
	DefaultTrustDomain = "weft.local"
)

// Errors the API maps to 409.
var (
	ErrIntermediate = errors.New("the CA is an intermediate under the root given with --ca-cert: weft does not hold that root's key, so it cannot make a new root; restart the control plane with a new --ca-cert/--ca-key (after `weft ca drop-old`, or with a fresh store) to change it")
	ErrNoOverlap    = errors.New("no root rotation in progress: the bundle holds only the signing root")
)

// doc is the stored CA. Keys are PEM: the store is the control plane's
// trust root, like the admin token it also holds.
type doc struct {
	TrustDomain string `json:"trustDomain"`
	Cert        string `json:"cert"` // the signer
	Key         string `json:"key"`
	Chain       string `json:"chain,omitempty"` // sent with leaves (the intermediate)
	Roots       string `json:"roots"`
	// Cross holds the signing root certified by each older root still in
	// the bundle, so a proxy whose join token pins an older root can still
	// verify the control plane during an overlap.
	Cross        string     `json:"cross,omitempty"`
	Intermediate bool       `json:"intermediate,omitempty"`
	RotatedAt    *time.Time `json:"rotatedAt,omitempty"`
	// DropAfter ends the overlap on its own: any replica drops the older
	// roots then.
	DropAfter *time.Time `json:"dropAfter,omitempty"`
}

// state is one version of the stored CA, parsed. Immutable.
type state struct {
	version string
	doc     doc
	ca      *identity.CA
	cross   []*x509.Certificate
}

func encode(ca *identity.CA, cross []*x509.Certificate, d doc) (doc, error) {
	cert, key, chain, roots, err := ca.Marshal()
	if err != nil {
		return doc{}, err
	}
	d.TrustDomain = ca.TrustDomain.Name()
	d.Cert, d.Key, d.Chain, d.Roots = string(cert), string(key), string(chain), string(roots)
	d.Cross = string(identity.EncodeCertificates(cross...))
	return d, nil
}

func decode(o *store.Object) (*state, error) {
	var d doc
	if err := json.Unmarshal(o.Data, &d); err != nil {
		return nil, fmt.Errorf("stored CA is unreadable: %w", err)
	}
	td, err := spiffeid.TrustDomainFromString(d.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("stored CA: trust domain %q: %w", d.TrustDomain, err)
	}
	ca, err := identity.UnmarshalCA(td, []byte(d.Cert), []byte(d.Key), []byte(d.Chain), []byte(d.Roots))
	if err != nil {
		return nil, fmt.Errorf("stored CA: %w", err)
	}
	s := &state{version: o.ResourceVersion, doc: d, ca: ca}
	if d.Cross != "" {
		if s.cross, err = identity.ParseCertificates([]byte(d.Cross)); err != nil {
			return nil, fmt.Errorf("stored CA: cross certificates: %w", err)
		}
	}
	return s, nil
}

func write(ctx context.Context, st store.Store, d doc, expect string) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = st.Put(ctx, []store.Write{{Object: store.Object{Kind: Kind, Namespace: namespace, Name: name, Data: data}, ExpectVersion: expect}})
	return err
}

func read(ctx context.Context, st store.Store) (*state, error) {
	o, err := st.Get(ctx, Kind, namespace, name)
	if err != nil {
		return nil, err
	}
	return decode(o)
}

// ensure returns the stored CA, making it first if the store has none.
// Replicas starting together converge on one CA: the create is
// conditional ("must not exist yet"), and a loser reads the winner's.
func ensure(ctx context.Context, st store.Store, o *Options) (s *state, created bool, err error) {
	for attempt := 0; attempt < 5; attempt++ {
		s, err := read(ctx, st)
		if err == nil {
			return s, false, check(s, o)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, false, fmt.Errorf("reading the CA: %w", err)
		}
		ca, err := o.newCA()
		if err != nil {
			return nil, false, err
		}
		d, err := encode(ca, nil, doc{Intermediate: len(ca.Chain) > 0})
		if err != nil {
			return nil, false, err
		}
		err = write(ctx, st, d, "0")
		if err == nil {
			s, err := read(ctx, st)
			return s, err == nil, err
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, false, fmt.Errorf("storing the CA: %w", err)
		}
		// Another replica made one first: use theirs.
	}
	return nil, false, errors.New("CA: the store kept changing")
}

// check refuses to run with a stored CA that contradicts the flags.
func check(s *state, o *Options) error {
	if s.ca.TrustDomain != o.td {
		return fmt.Errorf("the store's CA is for trust domain %q, but --trust-domain is %q: give --trust-domain %s (a trust domain cannot change without new identities for every proxy)", s.ca.TrustDomain.Name(), o.td.Name(), s.ca.TrustDomain.Name())
	}
	if len(o.RootCertPEM) > 0 {
		root, err := identity.ParseCertificate(o.RootCertPEM)
		if err != nil {
			return fmt.Errorf("--ca-cert: %w", err)
		}
		for _, r := range s.ca.Roots {
			if r.Equal(root) {
				return nil
			}
		}
		return errors.New("--ca-cert is not a root of the CA this control plane already holds in its store; the CA is made once, on the first start")
	}
	return nil
}

// crossSign certifies newRoot's key with an older root, so chains to the
// new root also verify from the old one.
func crossSign(newRoot, oldRoot *x509.Certificate, oldKeyPEM []byte) (*x509.Certificate, error) {
	oldKey, err := identity.ParseKey(oldKeyPEM)
	if err != nil {
		return nil, err
	}
	tmpl := *newRoot
	tmpl.Raw, tmpl.RawTBSCertificate, tmpl.Signature = nil, nil, nil
	tmpl.AuthorityKeyId = nil
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	if tmpl.NotAfter.After(oldRoot.NotAfter) {
		tmpl.NotAfter = oldRoot.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, oldRoot, newRoot.PublicKey, oldKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
