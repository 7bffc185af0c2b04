package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	identityv1 "weft.dev/weft/api/identity/v1"
	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/control/token"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/proxy/bootstrap"
)

type fixture struct {
	st  store.Store
	a   *Authority
	svc *Service
	now time.Time
	tok map[string]string // name -> full token
}

func newFixture(t *testing.T, o Options) *fixture {
	t.Helper()
	st := openBolt(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	a := mustOpen(t, st, o)
	f := &fixture{st: st, a: a, svc: NewService(a, st, nil), now: time.Now(), tok: map[string]string{}}
	ctx := context.Background()
	for _, c := range []token.CreateOptions{
		{Name: "any"},
		{Name: "web", Namespace: "shop", ServiceAccount: "web"},
		{Name: "short", TTL: time.Minute},
		{Name: "gone"},
	} {
		r, err := token.Create(ctx, st, c, f.now)
		if err != nil {
			t.Fatal(err)
		}
		f.tok[c.Name] = token.Format(a.RootHash(), r.Secret)
	}
	if _, err := token.Revoke(ctx, st, "gone", f.now); err != nil {
		t.Fatal(err)
	}
	return f
}

func csrFor(t *testing.T, id string) []byte {
	t.Helper()
	key, _ := identity.NewKey()
	if id == "" {
		der, _ := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{}, key)
		return der
	}
	der, err := identity.NewCSR(key, spiffeid.RequireFromString(id))
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func withToken(tok string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
}

// withPeer is a context as an RPC over mTLS with src's SVID sees it.
func withPeer(src *identity.Source) context.Context {
	v, _ := src.GetX509SVID()
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: v.Certificates}}})
}

func TestSign(t *testing.T) {
	f := newFixture(t, Options{TrustDomain: "mesh.test"})
	f.svc.now = func() time.Time { return f.now.Add(2 * time.Minute) } // "short" has expired
	web := sourceFrom(t, f.a, "shop", "web")
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		ns, sa  string
		csrID   string
		code    codes.Code
		message string
	}{
		{"token, any identity", withToken(f.tok["any"]), "default", "reviews", "", codes.OK, ""},
		{"token, CSR naming the identity", withToken(f.tok["any"]), "default", "reviews", "spiffe://mesh.test/ns/default/sa/reviews", codes.OK, ""},
		{"scoped token, in scope", withToken(f.tok["web"]), "shop", "web", "", codes.OK, ""},
		{"scoped token, other service account", withToken(f.tok["web"]), "shop", "admin", "", codes.PermissionDenied, `token "web" is for service account "web", not "admin"`},
		{"scoped token, other namespace", withToken(f.tok["web"]), "bank", "web", "", codes.PermissionDenied, `is for namespace "shop", not "bank"`},
		{"expired token", withToken(f.tok["short"]), "a", "b", "", codes.PermissionDenied, `join token expired: token "short" expired at`},
		{"revoked token", withToken(f.tok["gone"]), "a", "b", "", codes.PermissionDenied, `join token revoked: token "gone" was revoked at`},
		{"garbage token", withToken("garbage"), "a", "b", "", codes.Unauthenticated, "malformed join token"},
		{"unknown secret", withToken(token.Format(f.a.RootHash(), "not-issued")), "a", "b", "", codes.Unauthenticated, "unknown join token"},
		{"no credential", context.Background(), "a", "b", "", codes.Unauthenticated, "no client certificate and no join token"},
		{"the control plane's namespace", withToken(f.tok["any"]), "weft-system", "weft-control", "", codes.PermissionDenied, "the control plane's own"},
		{"CSR for another identity", withToken(f.tok["any"]), "default", "web", "spiffe://mesh.test/ns/default/sa/admin", codes.PermissionDenied, "the CSR asks for spiffe://mesh.test/ns/default/sa/admin, but this request may only get spiffe://mesh.test/ns/default/sa/web"},
		{"CSR of another trust domain", withToken(f.tok["any"]), "default", "web", "spiffe://evil.test/ns/default/sa/web", codes.PermissionDenied, "the CSR asks for"},
		{"renewal of its own identity", withPeer(web), "shop", "web", "spiffe://mesh.test/ns/shop/sa/web", codes.OK, ""},
		{"renewal asking for another identity", withPeer(web), "shop", "admin", "", codes.PermissionDenied, "this proxy is spiffe://mesh.test/ns/shop/sa/web: it may renew only its own identity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.svc.Sign(tc.ctx, &identityv1.SignRequest{Csr: csrFor(t, tc.csrID), Namespace: tc.ns, ServiceAccount: tc.sa})
			if status.Code(err) != tc.code || (err != nil && !strings.Contains(status.Convert(err).Message(), tc.message)) {
				t.Fatalf("got %v, want %s with %q", err, tc.code, tc.message)
			}
			if err != nil {
				return
			}
			// A third-party verifier accepts what was issued.
			var chain []*x509.Certificate
			for _, der := range resp.Chain {
				c, _ := x509.ParseCertificate(der)
				chain = append(chain, c)
			}
			var roots []*x509.Certificate
			for _, der := range resp.Bundle.Roots {
				c, _ := x509.ParseCertificate(der)
				roots = append(roots, c)
			}
			id, _, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString(resp.Bundle.TrustDomain), roots))
			if err != nil {
				t.Fatalf("go-spiffe refuses the SVID: %v", err)
			}
			if want := "spiffe://mesh.test/ns/" + tc.ns + "/sa/" + tc.sa; id.String() != want {
				t.Fatalf("issued %s, want %s", id, want)
			}
		})
	}
	if _, err := f.svc.Sign(withToken(f.tok["any"]), &identityv1.SignRequest{Csr: []byte("junk"), Namespace: "a", ServiceAccount: "b"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("junk CSR: %v", err)
	}
}

func TestAuthorizeStream(t *testing.T) {
	f := newFixture(t, Options{TrustDomain: "mesh.test"})
	web := sourceFrom(t, f.a, "shop", "web")
	if err := f.a.AuthorizeStream(context.Background(), &meshv1.Hello{Name: "x", Namespace: "shop", ServiceAccount: "web"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("without a certificate: %v", err)
	}
	if err := f.a.AuthorizeStream(withPeer(web), &meshv1.Hello{Name: "x", Namespace: "shop", ServiceAccount: "web"}); err != nil {
		t.Errorf("own identity: %v", err)
	}
	for _, h := range []*meshv1.Hello{{Namespace: "shop", ServiceAccount: "admin"}, {Namespace: "bank", ServiceAccount: "web"}, {Namespace: "shop"}} {
		err := f.a.AuthorizeStream(withPeer(web), h)
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "a proxy may only register its own identity") {
			t.Errorf("hello %s/%s: %v", h.Namespace, h.ServiceAccount, err)
		}
	}
}

// serve runs the Identity service on a loopback port, as the control
// plane does.
func serve(t *testing.T, f *fixture) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(f.a.ServerTLS())))
	identityv1.RegisterIdentityServer(s, f.svc)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// The proxy's side against the real service: bootstrap pinned to the CA,
// renewal over mTLS, a root rotation followed, and a token pinned to
// another CA never sent.
func TestBootstrapRenewRotate(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t, Options{SVIDTTL: 2 * time.Second})
	go f.a.Run(ctx)
	addr := serve(t, f)

	c, err := bootstrap.New(bootstrap.Options{Addrs: []string{addr}, Token: f.tok["web"], Namespace: "shop", ServiceAccount: "web"})
	if err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
	defer bcancel()
	if err := c.Bootstrap(bctx); err != nil {
		t.Fatal(err)
	}
	src := c.Source()
	if src.ID().String() != "spiffe://weft.local/ns/shop/sa/web" {
		t.Fatalf("identity %s", src.ID())
	}
	go c.Run(ctx)

	// Renewal at half life: a new certificate every second.
	first := src.Expiry()
	waitFor(t, 5*time.Second, "a renewal", func() bool { return src.Expiry().After(first) })

	// Rotation: the proxy gets the bundle and renews onto the new root.
	if _, err := f.a.Rotate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	newRoot := f.a.Roots()[0]
	waitFor(t, 15*time.Second, "a certificate of the new root", func() bool {
		v, _ := src.GetX509SVID()
		_, _, err := x509svid.Verify(v.Certificates, x509bundle.FromX509Authorities(src.TrustDomain(), []*x509.Certificate{newRoot}))
		return err == nil
	})
	if _, err := f.a.DropOld(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the one-root bundle", func() bool {
		b, _ := src.GetX509BundleForTrustDomain(src.TrustDomain())
		return b != nil && len(b.X509Authorities()) == 1
	})

	// A token whose pin is another CA: refused before the token is sent
	// (the control plane logs no attempt), and retried, so it times out.
	other, _ := identity.NewCA(spiffeid.RequireTrustDomainFromString("weft.local"))
	bad := token.Format(token.CAHash(other.Signer), "whatever")
	c2, _ := bootstrap.New(bootstrap.Options{Addrs: []string{addr}, Token: bad, Namespace: "shop", ServiceAccount: "web"})
	sctx, scancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer scancel()
	if err := c2.Bootstrap(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("bootstrap against an unpinned control plane: %v", err)
	}

	// A refused token ends bootstrap with a RefusedError that says why.
	c3, _ := bootstrap.New(bootstrap.Options{Addrs: []string{addr}, Token: token.Format(f.a.RootHash(), "nope"), Namespace: "shop", ServiceAccount: "web"})
	var refused *bootstrap.RefusedError
	if err := c3.Bootstrap(ctx); !errors.As(err, &refused) || !strings.Contains(err.Error(), "unknown join token") {
		t.Errorf("unknown token: %v", err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
