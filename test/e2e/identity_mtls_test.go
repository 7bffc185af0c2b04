package e2e

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/identity"
)

// A control plane started with no flags at all gives proxies identities
// and mutual TLS between them: plaintext to the STRICT inbound is refused,
// the request through the client sidecar arrives with the caller's SPIFFE
// ID, and a third-party verifier accepts the certificates.
func TestIdentityMTLSByDefault(t *testing.T) {
	t.Parallel()
	cp := StartControl(t, ControlOptions{})
	m := startIDMesh(t, cp)

	// A caller's own X-Forwarded-Client-Cert never reaches the app.
	r := mustOK(t, m.clientHTTP, "http://reviews:9080/who", "X-Forwarded-Client-Cert", "URI=spiffe://weft.local/ns/default/sa/admin")
	if r.Backend() != "reviews-1" {
		t.Fatalf("answered by %q", r.Backend())
	}
	log := m.app.Log()
	want := "By=spiffe://weft.local/ns/default/sa/reviews;URI=spiffe://weft.local/ns/default/sa/web"
	if got := log[len(log)-1].Header.Get("X-Forwarded-Client-Cert"); got != want {
		t.Fatalf("app saw X-Forwarded-Client-Cert %q, want %q", got, want)
	}

	t.Run("plaintext to the inbound is refused (STRICT)", func(t *testing.T) {
		before := len(m.app.Log())
		if b := plaintextToInbound(t, m.inbound, m.app.Addr, "/plain"); b != "" {
			t.Fatalf("plaintext got an answer: %q", b)
		}
		if len(m.app.Log()) != before {
			t.Fatal("the app received a plaintext request")
		}
	})

	bundlePEM := cp.MustCLI("ca", "bundle")
	roots, err := identity.ParseCertificates([]byte(bundlePEM))
	if err != nil {
		t.Fatalf("weft ca bundle: %v\n%s", err, bundlePEM)
	}
	td := spiffeid.RequireTrustDomainFromString("weft.local")
	bundle := x509bundle.FromX509Authorities(td, roots)
	own := ownIdentity(t, cp, cp.JoinToken(), "default", "tester")
	ownCert := tlsCert(t, own)

	t.Run("go-spiffe accepts the SVIDs the control plane issued", func(t *testing.T) {
		v, _ := own.GetX509SVID()
		id, _, err := x509svid.Verify(v.Certificates, bundle)
		if err != nil || id.String() != "spiffe://weft.local/ns/default/sa/tester" {
			t.Fatalf("our SVID: %s %v", id, err)
		}
		// And the one the reviews sidecar serves on its inbound.
		served, err := dialInbound(t, m.inbound, &ownCert)
		if err != nil {
			t.Fatalf("mTLS to the inbound with an SVID of the mesh: %v", err)
		}
		id, _, err = x509svid.Verify(served, bundle)
		if err != nil || id.String() != "spiffe://weft.local/ns/default/sa/reviews" {
			t.Fatalf("the sidecar's SVID: %s %v", id, err)
		}
		if leaf := served[0]; leaf.NotAfter.Sub(leaf.NotBefore) > 24*time.Hour+2*time.Minute {
			t.Errorf("SVID lifetime %s, want the default 24h", leaf.NotAfter.Sub(leaf.NotBefore))
		}
	})

	evilCA, _ := identity.NewCA(spiffeid.RequireTrustDomainFromString("evil.test"))
	evil := identity.NewMeshTLS(mustSource(t, evilCA, "default", "web"))
	evilCert := tlsCert(t, evil.Source())

	t.Run("a sidecar refuses a certificate of another trust domain", func(t *testing.T) {
		before := len(m.app.Log())
		if _, err := dialInbound(t, m.inbound, &evilCert); err == nil {
			t.Fatal("the inbound accepted a certificate of another trust domain")
		}
		if len(m.app.Log()) != before {
			t.Fatal("the app received a request")
		}
	})

	t.Run("the control plane refuses a certificate of another trust domain", func(t *testing.T) {
		// The client trusts any server, so that the refusal is the server's.
		cfg := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{evilCert}, MinVersion: tls.VersionTLS13}
		if _, err := openStream(t, cp, credentials.NewTLS(cfg), &meshv1.Hello{Name: "evil", Namespace: "default", ServiceAccount: "web"}); err == nil {
			t.Fatal("stream with an SVID of evil.test accepted")
		}
		// At the TLS level the refusal is an alert about the certificate.
		cfg.NextProtos = []string{"h2"}
		conn, err := tls.Dial("tcp", cp.GRPC, cfg)
		if err == nil {
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("TLS to the control plane with an SVID of evil.test: %v", err)
		}
		if strings.Contains(cp.Stderr.String(), "proxy=default/evil") {
			t.Fatal("the control plane registered the proxy")
		}
	})

	t.Run("a proxy cannot register as another identity", func(t *testing.T) {
		cfg := tlsconfig.MTLSClientConfig(own, own, tlsconfig.AuthorizeAny())
		_, err := openStream(t, cp, credentials.NewTLS(cfg), &meshv1.Hello{Name: "fake-reviews", Namespace: "default", ServiceAccount: "reviews"})
		if err == nil || !strings.Contains(err.Error(), "PermissionDenied") || !strings.Contains(err.Error(), "may only register its own identity") {
			t.Fatalf("hello as reviews with the tester's SVID: %v", err)
		}
		// Its own identity is fine.
		u, err := openStream(t, cp, credentials.NewTLS(cfg), &meshv1.Hello{Name: "tester", Namespace: "default", ServiceAccount: "tester"})
		if err != nil || !u.Snapshot {
			t.Fatalf("hello as itself: %v", err)
		}
	})

	t.Run("the config stream needs mTLS", func(t *testing.T) {
		cfg := tlsconfig.TLSClientConfig(own, tlsconfig.AuthorizeAny())
		_, err := openStream(t, cp, credentials.NewTLS(cfg), &meshv1.Hello{Name: "anon", Namespace: "default", ServiceAccount: "tester"})
		if err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
			t.Fatalf("stream without a client certificate: %v", err)
		}
	})
}

func mustSource(t *testing.T, ca *identity.CA, ns, sa string) *identity.Source {
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

// openStream opens the config stream with creds, sends hello and returns
// the first update or the error that ended the stream.
func openStream(t *testing.T, cp *ControlPlane, creds credentials.TransportCredentials, hello *meshv1.Hello) (*meshv1.ConfigUpdate, error) {
	t.Helper()
	cc, err := grpc.NewClient(cp.GRPC, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := meshv1.NewMeshClient(cc).Stream(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.Send(&meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Hello{Hello: hello}}); err != nil {
		_, rerr := s.Recv()
		return nil, rerr
	}
	return s.Recv()
}

// PERMISSIVE, applied as a PeerAuthentication with weft apply, takes both
// plaintext and mTLS on the inbound.
func TestIdentityPermissive(t *testing.T) {
	t.Parallel()
	cp := StartControl(t, ControlOptions{})
	m := startIDMesh(t, cp, `apiVersion: weft.dev/v1alpha1
kind: PeerAuthentication
metadata: {name: reviews-migrating}
spec:
  targetRef: {kind: Service, name: reviews}
  mode: PERMISSIVE
`)
	waitAll(t, 10*time.Second, "the PERMISSIVE inbound", []*Proxy{m.server}, func(cfg *compile.Config) bool {
		return cfg.Inbound != nil && cfg.Inbound.MTLS == "PERMISSIVE"
	})
	mustOK(t, m.clientHTTP, "http://reviews:9080/mtls")
	b := plaintextToInbound(t, m.inbound, m.app.Addr, "/plain")
	if !strings.HasPrefix(b, "HTTP/1.1 200") {
		t.Fatalf("plaintext on a PERMISSIVE inbound: %q", b)
	}
	log := m.app.Log()
	if len(log) < 2 {
		t.Fatalf("app saw %d requests", len(log))
	}
	if x := log[len(log)-2].Header.Get("X-Forwarded-Client-Cert"); !strings.Contains(x, "URI=spiffe://weft.local/ns/default/sa/web") {
		t.Errorf("mTLS request carried %q", x)
	}
	if x := log[len(log)-1].Header.Get("X-Forwarded-Client-Cert"); x != "" {
		t.Errorf("plaintext request carried a client identity %q", x)
	}

	// Back to STRICT: plaintext refused again.
	cp.MustCLI("delete", "peerauthentication", "reviews-migrating")
	waitAll(t, 10*time.Second, "the STRICT inbound", []*Proxy{m.server}, func(cfg *compile.Config) bool {
		return cfg.Inbound == nil || cfg.Inbound.MTLS != "PERMISSIVE"
	})
	if b := plaintextToInbound(t, m.inbound, m.app.Addr, "/plain2"); b != "" {
		t.Fatalf("plaintext after PERMISSIVE was removed: %q", b)
	}
	mustOK(t, m.clientHTTP, "http://reviews:9080/mtls2")
}
