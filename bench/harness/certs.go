package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Names the throwaway PKI uses. Every middle hop is addressed as
// ServerName (SNI and Host), whatever port it listens on.
const (
	TrustDomain = "bench.local"
	ServerName  = "b.bench.local"
	ClientName  = "a.bench.local"
	// ServerSA and ClientSA are the service accounts in the SPIFFE IDs
	// of the server-side and client-side certificates; weft checks the
	// server's against its Workload's serviceAccount.
	ServerSA = "b"
	ClientSA = "a"
)

// Certs are the files of a throwaway CA and two leaf certificates, one for
// each side of the middle hop. Both leaves carry a DNS name and a SPIFFE ID
// (so that weft accepts them as SVIDs) and may act as client and server.
type Certs struct {
	CA string // CA certificate (PEM): the trust bundle of every proxy

	ServerCert, ServerKey, ServerPEM string // b.bench.local; PEM = cert+key (HAProxy)
	ClientCert, ClientKey, ClientPEM string // a.bench.local

	// Client and Server are the same pairs loaded for Go (the proofs).
	Client, Server tls.Certificate
	Pool           *x509.CertPool
}

// MakeCerts writes a fresh CA and leaves under dir. ECDSA P-256, valid for
// a day: nothing outlives a run.
func MakeCerts(dir string) (*Certs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "weft bench throwaway CA"},
		NotBefore:             now,
		NotAfter:              now.Add(25 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: TrustDomain}},
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	c := &Certs{CA: filepath.Join(dir, "ca.crt"), Pool: x509.NewCertPool()}
	c.Pool.AddCert(caCert)
	if err := writePEM(c.CA, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(name, sa string, ips []net.IP) (certPath, keyPath, pemPath string, pair tls.Certificate, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now,
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			DNSNames:     []string{name},
			IPAddresses:  ips,
			URIs:         []*url.URL{{Scheme: "spiffe", Host: TrustDomain, Path: "/ns/default/sa/" + sa}},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return
		}
		base := filepath.Join(dir, name)
		certPath, keyPath, pemPath = base+".crt", base+".key", base+".pem"
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
		for path, b := range map[string][]byte{certPath: certPEM, keyPath: keyPEM, pemPath: append(append([]byte{}, certPEM...), keyPEM...)} {
			if err = os.WriteFile(path, b, 0o600); err != nil {
				return
			}
		}
		pair, err = tls.X509KeyPair(certPEM, keyPEM)
		return
	}
	if c.ServerCert, c.ServerKey, c.ServerPEM, c.Server, err = leaf(ServerName, ServerSA, []net.IP{net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	if c.ClientCert, c.ClientKey, c.ClientPEM, c.Client, err = leaf(ClientName, ClientSA, nil); err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return c, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
