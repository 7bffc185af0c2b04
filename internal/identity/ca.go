// Package identity issues and holds workload identities: SPIFFE X.509 SVIDs
// (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>). The
// control plane runs the CA (ca.go); every proxy holds its own key and SVID
// (svid.go) and builds its mTLS configs from them (tls.go). Private keys of
// workloads never leave the proxy: the CA signs CSRs.
package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Defaults for certificate lifetimes.
const (
	DefaultRootTTL = 10 * 365 * 24 * time.Hour
	DefaultSVIDTTL = 24 * time.Hour
	// clockSkew backdates certificates so a peer whose clock is a little
	// behind still accepts them.
	clockSkew = time.Minute
)

// CA signs workload certificates for one trust domain. Signer is either a
// self-made root, or an intermediate signed by a root the user supplies;
// Roots is the trust bundle proxies verify with (several during a root
// rotation's overlap).
type CA struct {
	TrustDomain spiffeid.TrustDomain
	Signer      *x509.Certificate
	key         crypto.Signer
	// Chain is what leaves are sent with: the intermediate, when Signer is
	// one (empty when Signer is itself the root).
	Chain []*x509.Certificate
	Roots []*x509.Certificate
}

// NewCA makes a fresh self-signed root for td.
func NewCA(td spiffeid.TrustDomain) (*CA, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	root, err := selfSign(td, key, DefaultRootTTL)
	if err != nil {
		return nil, err
	}
	return &CA{TrustDomain: td, Signer: root, key: key, Roots: []*x509.Certificate{root}}, nil
}

// NewIntermediateCA makes a signing CA under a root the user supplies
// (PEM cert and key), so weft's identities chain to the organisation's PKI.
func NewIntermediateCA(td spiffeid.TrustDomain, rootCertPEM, rootKeyPEM []byte) (*CA, error) {
	root, err := ParseCertificate(rootCertPEM)
	if err != nil {
		return nil, fmt.Errorf("--ca-cert: %w", err)
	}
	rootKey, err := ParseKey(rootKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("--ca-key: %w", err)
	}
	if !root.IsCA {
		return nil, errors.New("--ca-cert: not a CA certificate (basicConstraints CA:FALSE)")
	}
	if !publicKeysEqual(root.PublicKey, rootKey.Public()) {
		return nil, errors.New("--ca-key does not match --ca-cert")
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	tmpl, err := caTemplate(td, DefaultRootTTL/2)
	if err != nil {
		return nil, err
	}
	if tmpl.NotAfter.After(root.NotAfter) {
		tmpl.NotAfter = root.NotAfter
	}
	tmpl.MaxPathLenZero = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	inter, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{TrustDomain: td, Signer: inter, key: key, Chain: []*x509.Certificate{inter}, Roots: []*x509.Certificate{root}}, nil
}

// Rotate replaces the signing root with a new one, keeping the old root
// trusted so certificates it signed stay valid until they are renewed.
// Callers drop the old root with DropRoot once the overlap is over.
func (ca *CA) Rotate() error {
	key, err := NewKey()
	if err != nil {
		return err
	}
	root, err := selfSign(ca.TrustDomain, key, DefaultRootTTL)
	if err != nil {
		return err
	}
	ca.Signer, ca.key, ca.Chain = root, key, nil
	ca.Roots = append([]*x509.Certificate{root}, ca.Roots...)
	return nil
}

// DropRoot removes a root from the bundle (the end of a rotation overlap).
// The signing root cannot be dropped.
func (ca *CA) DropRoot(serial *big.Int) error {
	var keep []*x509.Certificate
	for _, r := range ca.Roots {
		if r.SerialNumber.Cmp(serial) == 0 {
			if r.Equal(ca.Signer) || (len(ca.Chain) > 0 && len(ca.Roots) == 1) {
				return errors.New("cannot drop the root that signs certificates")
			}
			continue
		}
		keep = append(keep, r)
	}
	ca.Roots = keep
	return nil
}

// Sign issues an SVID for id from a CSR. Only the CSR's public key is used:
// the identity comes from the caller's authorisation, never from the CSR.
func (ca *CA) Sign(csrDER []byte, id spiffeid.ID, ttl time.Duration) ([][]byte, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr signature: %w", err)
	}
	if id.TrustDomain() != ca.TrustDomain {
		return nil, fmt.Errorf("identity %s is outside trust domain %s", id, ca.TrustDomain)
	}
	if ttl <= 0 {
		ttl = DefaultSVIDTTL
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(ttl)
	if notAfter.After(ca.Signer.NotAfter) {
		notAfter = ca.Signer.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"weft"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Signer, csr.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	chain := [][]byte{der}
	for _, c := range ca.Chain {
		chain = append(chain, c.Raw)
	}
	return chain, nil
}

// BundlePEM is the trust bundle as PEM.
func (ca *CA) BundlePEM() []byte { return EncodeCertificates(ca.Roots...) }

func selfSign(td spiffeid.TrustDomain, key crypto.Signer, ttl time.Duration) (*x509.Certificate, error) {
	tmpl, err := caTemplate(td, ttl)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func caTemplate(td spiffeid.TrustDomain, ttl time.Duration) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"weft"}, CommonName: "weft CA " + td.Name()},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*url.URL{td.ID().URL()},
	}, nil
}

// NewKey makes a P-256 key: fast handshakes and universally supported.
func NewKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// EncodeCertificates PEM-encodes certificates.
func EncodeCertificates(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// ParseCertificate reads the first certificate of a PEM input.
func ParseCertificate(p []byte) (*x509.Certificate, error) {
	certs, err := ParseCertificates(p)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseCertificates reads every certificate of a PEM input.
func ParseCertificates(p []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, p = pem.Decode(p)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE found")
	}
	return out, nil
}

// EncodeKey PEM-encodes a private key (PKCS#8).
func EncodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey reads a PEM private key (PKCS#8, PKCS#1 or SEC 1).
func ParseKey(p []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("no PEM private key found")
	}
	if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, errors.New("private key cannot sign")
	}
	if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	return nil, errors.New("unsupported private key format")
}

// MarshalCA serialises the CA (signer, key, chain, roots) as PEM for the
// store, so HA replicas share one CA.
func (ca *CA) Marshal() (certPEM, keyPEM, chainPEM, rootsPEM []byte, err error) {
	keyPEM, err = EncodeKey(ca.key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return EncodeCertificates(ca.Signer), keyPEM, EncodeCertificates(ca.Chain...), EncodeCertificates(ca.Roots...), nil
}

// UnmarshalCA is Marshal's inverse.
func UnmarshalCA(td spiffeid.TrustDomain, certPEM, keyPEM, chainPEM, rootsPEM []byte) (*CA, error) {
	signer, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("ca cert: %w", err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	var chain []*x509.Certificate
	if len(chainPEM) > 0 {
		if chain, err = ParseCertificates(chainPEM); err != nil {
			return nil, fmt.Errorf("ca chain: %w", err)
		}
	}
	roots, err := ParseCertificates(rootsPEM)
	if err != nil {
		return nil, fmt.Errorf("ca roots: %w", err)
	}
	return &CA{TrustDomain: td, Signer: signer, key: key, Chain: chain, Roots: roots}, nil
}
