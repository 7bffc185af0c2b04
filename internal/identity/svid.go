package identity

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ID builds a workload's SPIFFE ID.
func ID(td spiffeid.TrustDomain, namespace, serviceAccount string) (spiffeid.ID, error) {
	if namespace == "" {
		namespace = "default"
	}
	if serviceAccount == "" {
		serviceAccount = "default"
	}
	return spiffeid.FromSegments(td, "ns", namespace, "sa", serviceAccount)
}

// NewCSR makes a certificate request for id, signed with key.
func NewCSR(key crypto.Signer, id spiffeid.ID) ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		URIs: []*url.URL{id.URL()},
	}, key)
}

// Source holds a proxy's current SVID and trust bundle, swapped atomically
// on rotation: connections made after a swap use the new certificate,
// connections already open keep theirs. It implements go-spiffe's
// x509svid.Source and x509bundle.Source, so its TLS configs are go-spiffe's.
type Source struct {
	svid   atomic.Pointer[x509svid.SVID]
	bundle atomic.Pointer[x509bundle.Bundle]
}

var (
	_ x509svid.Source   = (*Source)(nil)
	_ x509bundle.Source = (*Source)(nil)
)

// NewSource makes a Source from a signed chain (DER, leaf first), the key
// the CSR was made with, and the trust bundle (PEM).
func NewSource(chain [][]byte, key crypto.Signer, bundlePEM []byte) (*Source, error) {
	s := &Source{}
	if err := s.Update(chain, key, bundlePEM); err != nil {
		return nil, err
	}
	return s, nil
}

// Update installs a new SVID and bundle after checking that the SVID
// verifies against the bundle.
func (s *Source) Update(chain [][]byte, key crypto.Signer, bundlePEM []byte) error {
	if len(chain) == 0 {
		return errors.New("empty certificate chain")
	}
	certs := make([]*x509.Certificate, 0, len(chain))
	for _, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		certs = append(certs, c)
	}
	if !publicKeysEqual(certs[0].PublicKey, key.Public()) {
		return errors.New("certificate does not match the private key")
	}
	id, err := x509svid.IDFromCert(certs[0])
	if err != nil {
		return fmt.Errorf("certificate is not an SVID: %w", err)
	}
	roots, err := ParseCertificates(bundlePEM)
	if err != nil {
		return fmt.Errorf("trust bundle: %w", err)
	}
	b := x509bundle.FromX509Authorities(id.TrustDomain(), roots)
	if _, _, err := x509svid.Verify(certs, b); err != nil {
		return fmt.Errorf("certificate does not verify against the trust bundle: %w", err)
	}
	s.svid.Store(&x509svid.SVID{ID: id, Certificates: certs, PrivateKey: key})
	s.bundle.Store(b)
	return nil
}

// GetX509SVID returns the current SVID.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	v := s.svid.Load()
	if v == nil {
		return nil, errors.New("no SVID yet")
	}
	return v, nil
}

// GetX509BundleForTrustDomain returns the bundle for td (only our own).
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	b := s.bundle.Load()
	if b == nil || b.TrustDomain() != td {
		return nil, fmt.Errorf("no trust bundle for trust domain %q", td)
	}
	return b, nil
}

// ID is the current SVID's SPIFFE ID.
func (s *Source) ID() spiffeid.ID {
	if v := s.svid.Load(); v != nil {
		return v.ID
	}
	return spiffeid.ID{}
}

// TrustDomain is the SVID's trust domain.
func (s *Source) TrustDomain() spiffeid.TrustDomain { return s.ID().TrustDomain() }

// Expiry is when the current SVID stops being valid.
func (s *Source) Expiry() time.Time {
	if v := s.svid.Load(); v != nil {
		return v.Certificates[0].NotAfter
	}
	return time.Time{}
}

// RenewAt is the SVID's half life: when the proxy asks for a new one, so an
// outage of the control plane up to half the lifetime costs nothing.
func (s *Source) RenewAt() time.Time {
	v := s.svid.Load()
	if v == nil {
		return time.Now()
	}
	c := v.Certificates[0]
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 2)
}

// LoadSourceFiles makes a Source from PEM files: a certificate chain (leaf
// first), its private key and the trust bundle.
func LoadSourceFiles(certFile, keyFile, bundleFile string) (*Source, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	bundlePEM, err := os.ReadFile(bundleFile)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	chain := make([][]byte, len(certs))
	for i, c := range certs {
		chain[i] = c.Raw
	}
	src, err := NewSource(chain, key, bundlePEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	return src, nil
}
