// Package bootstrap gets a proxy its identity from the control plane and
// keeps it current (api/identity/v1). Once, with the join token: it checks
// that the control plane's certificate chains to the CA pinned in the
// token before it sends anything, then sends a CSR (the private key never
// leaves the proxy) and installs the SVID and trust bundle in an
// identity.Source. After that, mutual TLS with the SVID only: it renews at
// half life, follows the trust bundle (root rotations), and gives the
// config stream its credentials (Creds). The Source is swapped in place, so
// connections open at a renewal keep going.
//
// Like controlclient, it imports nothing of the control plane: it meets it
// in api/identity/v1.
package bootstrap

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	identityv1 "weft.dev/weft/api/identity/v1"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/proxy/controlclient"
)

// Options configure a Client.
type Options struct {
	// Addrs are control plane replicas (host:port); any one will do.
	Addrs []string
	// Token is the join token (weft1.<CA hash>.<secret>).
	Token string
	// The identity asked for: spiffe://<trust domain>/ns/<Namespace>/sa/<ServiceAccount>.
	Namespace      string
	ServiceAccount string
	// Source receives the SVID and bundle; New makes an empty one if nil.
	// Give the proxy identity.NewMeshTLS(Source) before Bootstrap: until the
	// SVID arrives, it refuses mesh connections instead of taking
	// plaintext.
	Source *identity.Source
	// BackoffBase and BackoffMax shape retries; defaults 100ms and 5s.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	Logger      *slog.Logger
}

// Client holds a proxy's identity.
type Client struct {
	opts   Options
	log    *slog.Logger
	pin    []byte
	secret string
	src    *identity.Source
	key    crypto.Signer
	chain  [][]byte
	// renewAt is half of the SVID's life as this proxy counts it, from
	// when it arrived: certificates are backdated for clock skew, so
	// NotBefore would put half life too early.
	renewAt time.Time
}

// New checks the options; nothing is sent until Bootstrap.
func New(opts Options) (*Client, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("bootstrap: no control plane address")
	}
	pin, secret, err := identityv1.ParseJoinToken(opts.Token)
	if err != nil {
		return nil, err
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.ServiceAccount == "" {
		opts.ServiceAccount = "default"
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 100 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 5 * time.Second
	}
	if opts.Source == nil {
		opts.Source = &identity.Source{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Client{opts: opts, log: log.With("component", "identity"), pin: pin, secret: secret, src: opts.Source}, nil
}

// Source is where the SVID and bundle are.
func (c *Client) Source() *identity.Source { return c.src }

// RefusedError is a refusal a retry cannot fix: the token is expired,
// revoked, unknown or out of scope.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string {
	if s, ok := status.FromError(e.Err); ok {
		return fmt.Sprintf("the control plane refused this proxy's join token (%s): %s", s.Code(), s.Message())
	}
	return "the control plane refused this proxy's join token: " + e.Err.Error()
}
func (e *RefusedError) Unwrap() error { return e.Err }

func refusal(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument:
		return true
	}
	return false
}

// Bootstrap gets the first SVID with the join token, trying the replicas
// in turn with backoff until one answers. A refusal of the token is
// returned as a *RefusedError; otherwise it returns only with ctx.
func (c *Client) Bootstrap(ctx context.Context) error {
	next := mrand.IntN(len(c.opts.Addrs))
	for attempt := 0; ; attempt++ {
		addr := c.opts.Addrs[next%len(c.opts.Addrs)]
		next++
		err := c.sign(ctx, addr, true)
		if err == nil {
			c.log.Info("identity issued", "id", c.src.ID().String(), "expires", c.src.Expiry().Format(time.RFC3339), "control", addr)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if refusal(err) {
			return &RefusedError{Err: err}
		}
		d := controlclient.Backoff(attempt, c.opts.BackoffBase, c.opts.BackoffMax)
		c.log.Warn("no identity yet: control plane unreachable or not the one the join token pins", "addr", addr, "error", err, "retry_in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// sign asks addr for a new SVID on a new key: with the join token over
// TLS pinned to its CA (bootstrap), or over mutual TLS with the current
// SVID (renewal). A new connection each time, so the control plane sees
// the current certificate.
func (c *Client) sign(ctx context.Context, addr string, withToken bool) error {
	key, err := identity.NewKey()
	if err != nil {
		return err
	}
	req := &identityv1.SignRequest{Namespace: c.opts.Namespace, ServiceAccount: c.opts.ServiceAccount}
	var creds credentials.TransportCredentials
	if withToken {
		// The trust domain is not known before the control plane is
		// verified, so the CSR names no identity: the CA takes only its
		// key.
		if req.Csr, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key); err != nil {
			return err
		}
		creds = credentials.NewTLS(pinnedConfig(c.pin))
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.opts.Token)
	} else {
		if req.Csr, err = identity.NewCSR(key, c.src.ID()); err != nil {
			return err
		}
		creds = c.Creds()
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := identityv1.NewIdentityClient(cc).Sign(ctx, req)
	if err != nil {
		return err
	}
	return c.install(resp.Chain, key, resp.Bundle)
}

func (c *Client) install(chain [][]byte, key crypto.Signer, b *identityv1.Bundle) error {
	if b == nil || len(b.Roots) == 0 {
		return errors.New("the control plane sent no trust bundle")
	}
	var roots []*x509.Certificate
	for _, der := range b.Roots {
		r, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("trust bundle: %w", err)
		}
		roots = append(roots, r)
	}
	if err := c.src.Update(chain, key, identity.EncodeCertificates(roots...)); err != nil {
		return fmt.Errorf("issued certificate: %w", err)
	}
	want, err := identity.ID(c.src.TrustDomain(), c.opts.Namespace, c.opts.ServiceAccount)
	if err == nil && c.src.ID() != want {
		err = fmt.Errorf("the control plane issued %s, not %s", c.src.ID(), want)
	}
	c.key, c.chain = key, chain
	c.renewAt = time.Now().Add(time.Until(c.src.Expiry()) / 2)
	return err
}

// pinnedConfig trusts a server whose chain leads to the CA with this
// SHA-256, and that proves the control plane's identity. The control plane
// sends its roots in its chain for this.
func pinnedConfig(pin []byte) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified below, against the pin
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyPinned(raw, pin)
		},
	}
}

func verifyPinned(raw [][]byte, pin []byte) error {
	if len(raw) == 0 {
		return errors.New("the control plane sent no certificate")
	}
	var certs []*x509.Certificate
	for _, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("control plane certificate: %w", err)
		}
		certs = append(certs, c)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	found := false
	for _, c := range certs[1:] {
		if sum := sha256.Sum256(c.Raw); bytes.Equal(sum[:], pin) {
			roots.AddCert(c)
			found = true
		} else {
			inter.AddCert(c)
		}
	}
	if !found {
		return fmt.Errorf("the control plane's certificate does not come with the CA pinned in the join token (sha256 %x...): not sending the token (another control plane, or the CA was rotated and its old root dropped: get a new token)", pin[:6])
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("the control plane's certificate does not chain to the CA pinned in the join token: %w", err)
	}
	id, err := x509svid.IDFromCert(certs[0])
	if err != nil || id.Path() != identityv1.ControlPath {
		return fmt.Errorf("the certificate is not the control plane's (%s): not sending the token", id)
	}
	return nil
}

// Creds are the mutual TLS credentials toward the control plane: this
// proxy's SVID, and a server that proves the control plane's identity in
// our trust domain. They read the Source at each handshake.
func (c *Client) Creds() credentials.TransportCredentials {
	auth := tlsconfig.AdaptMatcher(func(id spiffeid.ID) error {
		want, err := spiffeid.FromPath(c.src.TrustDomain(), identityv1.ControlPath)
		if err != nil {
			return err
		}
		if id != want {
			return fmt.Errorf("server is %s, not the control plane (%s)", id, want)
		}
		return nil
	})
	cfg := tlsconfig.MTLSClientConfig(c.src, c.src, auth)
	cfg.MinVersion = tls.VersionTLS13
	return credentials.NewTLS(cfg)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// chainsToNewest reports whether the current SVID verifies against the
// signing root alone (roots[0]), i.e. it needs no renewal for a rotation.
func chainsToNewest(svid *x509svid.SVID, roots []*x509.Certificate) bool {
	_, _, err := x509svid.Verify(svid.Certificates, x509bundle.FromX509Authorities(svid.ID.TrustDomain(), roots[:1]))
	return err == nil
}
