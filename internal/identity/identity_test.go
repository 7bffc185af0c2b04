package identity

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

var td = spiffeid.RequireTrustDomainFromString("mesh.test")

// issue makes a Source for ns/sa signed by ca.
func issue(t *testing.T, ca *CA, ns, sa string, ttl time.Duration) *Source {
	t.Helper()
	id, err := ID(ca.TrustDomain, ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ca.Sign(csr, id, ttl)
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewSource(chain, key, ca.BundlePEM())
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func parseChain(t *testing.T, chain [][]byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// TestSVIDVerifiesWithGoSpiffe checks our SVIDs with the SPIFFE project's
// own verifier, against the trust bundle alone.
func TestSVIDVerifiesWithGoSpiffe(t *testing.T) {
	for _, mode := range []string{"root", "intermediate"} {
		t.Run(mode, func(t *testing.T) {
			var ca *CA
			var err error
			if mode == "root" {
				ca, err = NewCA(td)
			} else {
				org, _ := NewCA(spiffeid.RequireTrustDomainFromString("org.example"))
				certPEM, keyPEM, _, _, _ := org.Marshal()
				ca, err = NewIntermediateCA(td, certPEM, keyPEM)
			}
			if err != nil {
				t.Fatal(err)
			}
			id, _ := ID(td, "shop", "reviews")
			key, _ := NewKey()
			csr, _ := NewCSR(key, id)
			chain, err := ca.Sign(csr, id, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			roots, err := ParseCertificates(ca.BundlePEM())
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := x509svid.Verify(parseChain(t, chain), x509bundle.FromX509Authorities(td, roots))
			if err != nil {
				t.Fatalf("go-spiffe rejects the SVID: %v", err)
			}
			if got.String() != "spiffe://mesh.test/ns/shop/sa/reviews" {
				t.Fatalf("SVID names %s", got)
			}
			leaf := parseChain(t, chain)[0]
			if d := leaf.NotAfter.Sub(leaf.NotBefore); d > time.Hour+2*time.Minute {
				t.Errorf("lifetime %s, asked for 1h", d)
			}
		})
	}
}

func TestSignRefusesOtherTrustDomainAndBadCSR(t *testing.T) {
	ca, _ := NewCA(td)
	key, _ := NewKey()
	other, _ := ID(spiffeid.RequireTrustDomainFromString("evil.test"), "x", "y")
	csr, _ := NewCSR(key, other)
	if _, err := ca.Sign(csr, other, time.Hour); err == nil {
		t.Fatal("signed an identity of another trust domain")
	}
	if _, err := ca.Sign([]byte("not a csr"), spiffeid.RequireFromString("spiffe://mesh.test/ns/a/sa/b"), time.Hour); err == nil {
		t.Fatal("signed garbage")
	}
}

func TestCAMarshalRoundTrip(t *testing.T) {
	ca, _ := NewCA(td)
	c, k, ch, r, err := ca.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalCA(td, c, k, ch, r)
	if err != nil {
		t.Fatal(err)
	}
	// A certificate from the restored CA verifies against the old bundle.
	src := issue(t, back, "a", "b", time.Hour)
	if src.ID().String() != "spiffe://mesh.test/ns/a/sa/b" {
		t.Fatal(src.ID())
	}
	if _, err := NewSource(nil, nil, ca.BundlePEM()); err == nil {
		t.Fatal("empty chain accepted")
	}
}

// handshake runs an mTLS handshake between a client and server config and
// returns what the server saw of the client and the client's error.
func handshake(t *testing.T, client, server *tls.Config) (spiffeid.ID, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan spiffeid.ID, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		if tc.Handshake() != nil {
			peer <- spiffeid.ID{}
			return
		}
		cs := tc.ConnectionState()
		id, _ := PeerID(&cs)
		tc.Write([]byte("ok"))
		peer <- id
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		<-peer
		return spiffeid.ID{}, err
	}
	defer c.Close()
	if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
		<-peer
		return spiffeid.ID{}, err
	}
	return <-peer, nil
}

func TestMutualTLS(t *testing.T) {
	ca, _ := NewCA(td)
	client := NewMeshTLS(issue(t, ca, "shop", "web", time.Hour))
	server := NewMeshTLS(issue(t, ca, "shop", "reviews", time.Hour))
	want, _ := ID(td, "shop", "reviews")

	got, err := handshake(t, client.Client(want), server.Server())
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if got.String() != "spiffe://mesh.test/ns/shop/sa/web" {
		t.Fatalf("server saw client %q", got)
	}

	wrong, _ := ID(td, "shop", "ratings")
	if _, err := handshake(t, client.Client(wrong), server.Server()); err == nil {
		t.Fatal("client accepted a server with the wrong identity")
	}

	// A proxy with a certificate from another trust domain is refused.
	evilCA, _ := NewCA(spiffeid.RequireTrustDomainFromString("evil.test"))
	evil := NewMeshTLS(issue(t, evilCA, "shop", "web", time.Hour))
	if _, err := handshake(t, evil.Client(want), server.Server()); err == nil {
		t.Fatal("server accepted a client from another trust domain")
	}

	// A client without a certificate is refused.
	noCert := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPNSidecar}, MinVersion: tls.VersionTLS13}
	if _, err := handshake(t, noCert, server.Server()); err == nil {
		t.Fatal("server accepted a client without a certificate")
	}
}

// TestRootRotationOverlap: after Rotate, certificates of the old and the
// new root both verify until the old root is dropped.
func TestRootRotationOverlap(t *testing.T) {
	ca, _ := NewCA(td)
	oldSrc := issue(t, ca, "a", "old", time.Hour)
	oldRoot := ca.Roots[0]
	if err := ca.Rotate(); err != nil {
		t.Fatal(err)
	}
	newSrc := issue(t, ca, "a", "new", time.Hour)
	// Both hold the two-root bundle now.
	for _, s := range []*Source{oldSrc, newSrc} {
		v, _ := s.GetX509SVID()
		key := v.PrivateKey
		var chain [][]byte
		for _, c := range v.Certificates {
			chain = append(chain, c.Raw)
		}
		if err := s.Update(chain, key, ca.BundlePEM()); err != nil {
			t.Fatalf("%s with the overlap bundle: %v", s.ID(), err)
		}
	}
	if _, err := handshake(t, NewMeshTLS(oldSrc).Client(), NewMeshTLS(newSrc).Server()); err != nil {
		t.Fatalf("old and new roots do not interoperate during the overlap: %v", err)
	}
	if err := ca.DropRoot(oldRoot.SerialNumber); err != nil {
		t.Fatal(err)
	}
	v, _ := oldSrc.GetX509SVID()
	var chain [][]byte
	for _, c := range v.Certificates {
		chain = append(chain, c.Raw)
	}
	if err := oldSrc.Update(chain, v.PrivateKey, ca.BundlePEM()); err == nil {
		t.Fatal("a certificate of the dropped root still verifies")
	}
	if err := ca.DropRoot(ca.Signer.SerialNumber); err == nil {
		t.Fatal("dropped the signing root")
	}
}

func TestRenewAtHalfLife(t *testing.T) {
	ca, _ := NewCA(td)
	s := issue(t, ca, "a", "b", 2*time.Hour)
	half := s.RenewAt()
	if d := time.Until(half); d < 55*time.Minute-time.Minute || d > 61*time.Minute {
		t.Fatalf("renew in %s, want about 1h", d)
	}
}
