package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/control/store/etcdtest"
	"weft.dev/weft/internal/control/token"
	"weft.dev/weft/internal/identity"
)

func openBolt(t *testing.T, dir string) store.Store {
	t.Helper()
	st, err := store.OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func mustOpen(t *testing.T, st store.Store, o Options) *Authority {
	t.Helper()
	a, err := Open(context.Background(), st, o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Replicas starting at once on one store converge on one CA.
func TestOpenConverges(t *testing.T) {
	stores := map[string]func(t *testing.T) []store.Store{
		"bolt": func(t *testing.T) []store.Store {
			st := openBolt(t, t.TempDir())
			t.Cleanup(func() { st.Close() })
			return []store.Store{st, st, st, st, st, st}
		},
		"etcd": func(t *testing.T) []store.Store {
			if _, ok := etcdtest.Binary(); !ok {
				t.Skip("no etcd binary")
			}
			e := etcdtest.Start(t)
			var out []store.Store
			for i := 0; i < 4; i++ { // one client per replica
				st, err := store.OpenEtcd(context.Background(), store.EtcdOptions{Endpoints: []string{e.Endpoint}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				out = append(out, st)
			}
			return out
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			sts := mk(t)
			hashes := make([]string, len(sts))
			var wg sync.WaitGroup
			for i, st := range sts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a, err := Open(context.Background(), st, Options{})
					if err != nil {
						t.Error(err)
						return
					}
					hashes[i] = a.RootHash()
				}()
			}
			wg.Wait()
			for _, h := range hashes[1:] {
				if h != hashes[0] {
					t.Fatalf("replicas made different CAs: %v", hashes)
				}
			}
		})
	}
}

// The CA outlives a restart, and a restart with contradicting flags is
// refused with a reason.
func TestCAPersists(t *testing.T) {
	dir := t.TempDir()
	st := openBolt(t, dir)
	a := mustOpen(t, st, Options{TrustDomain: "mesh.test"})
	first := a.RootHash()
	st.Close()

	st = openBolt(t, dir)
	defer st.Close()
	if b := mustOpen(t, st, Options{TrustDomain: "mesh.test"}); b.RootHash() != first {
		t.Fatal("a restart made a new CA")
	}
	if _, err := Open(context.Background(), st, Options{TrustDomain: "other.test"}); err == nil || !strings.Contains(err.Error(), `for trust domain "mesh.test"`) {
		t.Errorf("other trust domain: %v", err)
	}
	org, _ := identity.NewCA(spiffeid.RequireTrustDomainFromString("org.example"))
	c, k, _, _, _ := org.Marshal()
	if _, err := Open(context.Background(), st, Options{TrustDomain: "mesh.test", RootCertPEM: c, RootKeyPEM: k}); err == nil || !strings.Contains(err.Error(), "--ca-cert") {
		t.Errorf("--ca-cert of another root: %v", err)
	}
	if _, err := Open(context.Background(), openBolt(t, t.TempDir()), Options{TrustDomain: "Not A Domain"}); err == nil {
		t.Error("accepted a bad trust domain")
	}
}

// With --ca-cert/--ca-key the CA is an intermediate: SVIDs chain to the
// organisation's root, and weft refuses to rotate a root it does not own.
func TestIntermediate(t *testing.T) {
	org, _ := identity.NewCA(spiffeid.RequireTrustDomainFromString("org.example"))
	c, k, _, _, _ := org.Marshal()
	st := openBolt(t, t.TempDir())
	defer st.Close()
	a := mustOpen(t, st, Options{RootCertPEM: c, RootKeyPEM: k})
	if !a.Status().Intermediate || a.Roots()[0].Equal(org.Signer) == false {
		t.Fatalf("status %+v", a.Status())
	}
	chain := sign(t, a, "shop", "web")
	if _, _, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(a.TrustDomain(), []*x509.Certificate{org.Signer})); err != nil {
		t.Fatalf("SVID does not chain to the organisation's root: %v", err)
	}
	if _, err := a.Rotate(context.Background(), 0); !errors.Is(err, ErrIntermediate) {
		t.Errorf("rotate of an intermediate: %v", err)
	}
	// Restarting with the same root is fine.
	mustOpen(t, st, Options{RootCertPEM: c, RootKeyPEM: k})
}

func sign(t *testing.T, a *Authority, ns, sa string) []*x509.Certificate {
	t.Helper()
	id, _ := identity.ID(a.TrustDomain(), ns, sa)
	key, _ := identity.NewKey()
	csr, _ := identity.NewCSR(key, id)
	der, err := a.Sign(csr, id)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for _, d := range der {
		c, _ := x509.ParseCertificate(d)
		out = append(out, c)
	}
	return out
}

// Rotation: both roots trusted, new certificates from the new root, which
// the old root vouches for (cross certificate) so that tokens pinning it
// still find the control plane; another replica sees it; drop-old ends it.
func TestRotateAndDrop(t *testing.T) {
	ctx := context.Background()
	st := openBolt(t, t.TempDir())
	defer st.Close()
	a := mustOpen(t, st, Options{})
	b := mustOpen(t, st, Options{}) // another replica
	oldRoot := a.Roots()[0]
	oldChain := sign(t, a, "a", "old")

	stat, err := a.Rotate(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(stat.Roots) != 2 || !stat.Roots[0].Signing || stat.Roots[1].SHA256 != token.CAHash(oldRoot) {
		t.Fatalf("after rotate: %+v", stat)
	}
	newChain := sign(t, a, "a", "new")
	bundle := x509bundle.FromX509Authorities(a.TrustDomain(), a.Roots())
	for name, ch := range map[string][]*x509.Certificate{"old": oldChain, "new": newChain} {
		if _, _, err := x509svid.Verify(ch, bundle); err != nil {
			t.Errorf("%s SVID during the overlap: %v", name, err)
		}
	}
	if _, _, err := x509svid.Verify(newChain, x509bundle.FromX509Authorities(a.TrustDomain(), []*x509.Certificate{oldRoot})); err == nil {
		t.Error("the new SVID verifies against the old root alone (without the cross certificate)")
	}
	// The serving certificate, as a bootstrapping proxy pinned to the old
	// root sees it.
	served := a.server.Load()
	leaf, _ := x509.ParseCertificate(served.Certificate[0])
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(oldRoot)
	for _, der := range served.Certificate[1:] {
		c, _ := x509.ParseCertificate(der)
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("the serving certificate does not chain to the old root: %v", err)
	}

	if err := b.refresh(ctx); err != nil || b.RootHash() != a.RootHash() || len(b.Roots()) != 2 {
		t.Fatalf("the other replica did not pick up the rotation: %v", err)
	}

	if _, err := a.DropOld(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DropOld(ctx); !errors.Is(err, ErrNoOverlap) {
		t.Errorf("second drop-old: %v", err)
	}
	bundle = x509bundle.FromX509Authorities(a.TrustDomain(), a.Roots())
	if _, _, err := x509svid.Verify(oldChain, bundle); err == nil {
		t.Error("an SVID of the dropped root still verifies")
	}
	if _, _, err := x509svid.Verify(newChain, bundle); err != nil {
		t.Errorf("the new SVID after drop-old: %v", err)
	}
}

// An overlap with a duration ends on its own.
func TestOverlapEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := openBolt(t, t.TempDir())
	defer st.Close()
	a := mustOpen(t, st, Options{})
	go a.Run(ctx)
	if _, err := a.Rotate(ctx, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(a.Roots()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the overlap did not end")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The proxies' port refuses a client certificate of another trust domain
// during the handshake, and takes one of ours or none.
func TestServerTLS(t *testing.T) {
	st := openBolt(t, t.TempDir())
	defer st.Close()
	a := mustOpen(t, st, Options{})
	evil, _ := identity.NewCA(spiffeid.RequireTrustDomainFromString("evil.test"))
	for name, tc := range map[string]struct {
		ca   *identity.CA
		want bool
	}{"ours": {nil, true}, "none": {nil, true}, "other trust domain": {evil, false}} {
		t.Run(name, func(t *testing.T) {
			cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
			if name != "none" {
				var src *identity.Source
				if tc.ca != nil {
					src = source(t, tc.ca, "default", "web")
				} else {
					src = sourceFrom(t, a, "default", "web")
				}
				v, _ := src.GetX509SVID()
				cfg.Certificates = []tls.Certificate{{Certificate: raw(v.Certificates), PrivateKey: v.PrivateKey}}
			}
			err := handshake(t, a.ServerTLS(), cfg)
			if (err == nil) != tc.want {
				t.Fatalf("handshake: %v, want ok=%v", err, tc.want)
			}
		})
	}
}

func raw(cs []*x509.Certificate) [][]byte {
	var out [][]byte
	for _, c := range cs {
		out = append(out, c.Raw)
	}
	return out
}

func source(t *testing.T, ca *identity.CA, ns, sa string) *identity.Source {
	t.Helper()
	id, _ := identity.ID(ca.TrustDomain, ns, sa)
	key, _ := identity.NewKey()
	csr, _ := identity.NewCSR(key, id)
	chain, err := ca.Sign(csr, id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	src, err := identity.NewSource(chain, key, ca.BundlePEM())
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func sourceFrom(t *testing.T, a *Authority, ns, sa string) *identity.Source {
	t.Helper()
	id, _ := identity.ID(a.TrustDomain(), ns, sa)
	key, _ := identity.NewKey()
	csr, _ := identity.NewCSR(key, id)
	chain, err := a.Sign(csr, id)
	if err != nil {
		t.Fatal(err)
	}
	src, err := identity.NewSource(chain, key, identity.EncodeCertificates(a.Roots()...))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// handshake runs a TLS handshake and a one-byte exchange, so that a
// client certificate refused by the server surfaces on the client.
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	errc := make(chan error, 1)
	go func() {
		s := tls.Server(c2, server)
		if err := s.Handshake(); err != nil {
			errc <- err
			c2.Close()
			return
		}
		s.Write([]byte("x"))
		errc <- nil
	}()
	c := tls.Client(c1, client)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		<-errc
		return err
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		<-errc
		return err
	}
	return <-errc
}
