package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	identityv1 "weft.dev/weft/api/identity/v1"
	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/control/token"
	"weft.dev/weft/internal/identity"
)

// Options configure the Authority.
type Options struct {
	// TrustDomain of the mesh; default weft.local. It must match the
	// stored CA's after the first start.
	TrustDomain string
	// RootCertPEM and RootKeyPEM (--ca-cert, --ca-key) make the CA an
	// intermediate under the organisation's root on the first start.
	RootCertPEM, RootKeyPEM []byte
	// SVIDTTL is the lifetime of the certificates issued; default 24h.
	SVIDTTL time.Duration
	// OnChange runs after the CA changed (a rotation through any replica),
	// once the new one is in use.
	OnChange func()
	Logger   *slog.Logger

	td spiffeid.TrustDomain
}

func (o *Options) newCA() (*identity.CA, error) {
	if len(o.RootCertPEM) > 0 || len(o.RootKeyPEM) > 0 {
		if len(o.RootCertPEM) == 0 || len(o.RootKeyPEM) == 0 {
			return nil, errors.New("--ca-cert and --ca-key go together")
		}
		return identity.NewIntermediateCA(o.td, o.RootCertPEM, o.RootKeyPEM)
	}
	return identity.NewCA(o.td)
}

// Authority is the CA as the control plane runs it: the stored CA, kept
// current, and the control plane's own serving certificate.
type Authority struct {
	st   store.Store
	opts Options
	log  *slog.Logger

	cur    atomic.Pointer[state]
	server atomic.Pointer[tls.Certificate]
	// serverRenew is half the serving certificate's life from its issue
	// (NotBefore is backdated for clock skew).
	serverRenew atomic.Int64

	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// Open loads the CA from the store, making it on the first start, and
// issues the control plane's serving certificate. Run keeps both current.
func Open(ctx context.Context, st store.Store, opts Options) (*Authority, error) {
	if opts.TrustDomain == "" {
		opts.TrustDomain = DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(opts.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("--trust-domain %q: %w", opts.TrustDomain, err)
	}
	opts.td = td
	if opts.SVIDTTL <= 0 {
		opts.SVIDTTL = identity.DefaultSVIDTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &Authority{st: st, opts: opts, log: opts.Logger.With("component", "ca"), subs: map[chan struct{}]struct{}{}}
	s, created, err := ensure(ctx, st, &a.opts)
	if err != nil {
		return nil, err
	}
	a.cur.Store(s)
	if err := a.issueServer(); err != nil {
		return nil, err
	}
	mode := "root"
	if s.doc.Intermediate {
		mode = "intermediate under --ca-cert"
	}
	if created {
		a.log.Info("first start: made the CA", "trust_domain", td.Name(), "mode", mode, "root_sha256", a.RootHash())
	} else {
		a.log.Info("CA loaded", "trust_domain", td.Name(), "mode", mode, "roots", len(s.ca.Roots), "root_sha256", a.RootHash())
	}
	return a, nil
}

// TrustDomain is the mesh's.
func (a *Authority) TrustDomain() spiffeid.TrustDomain { return a.opts.td }

// SVIDTTL is the lifetime of issued certificates.
func (a *Authority) SVIDTTL() time.Duration { return a.opts.SVIDTTL }

// Roots is the trust bundle: the signing root first.
func (a *Authority) Roots() []*x509.Certificate { return a.cur.Load().ca.Roots }

// RootHash is the pin join tokens carry: SHA-256 of the signing root.
func (a *Authority) RootHash() string { return token.CAHash(a.Roots()[0]) }

// GetX509BundleForTrustDomain makes the Authority a go-spiffe bundle
// source: the control plane verifies proxies' certificates with it.
func (a *Authority) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != a.opts.td {
		return nil, fmt.Errorf("trust domain %q is not this mesh's (%q)", td.Name(), a.opts.td.Name())
	}
	return x509bundle.FromX509Authorities(td, a.Roots()), nil
}

var _ x509bundle.Source = (*Authority)(nil)

// Sign issues an SVID for id from a CSR. The caller has authorised id.
func (a *Authority) Sign(csrDER []byte, id spiffeid.ID) ([][]byte, error) {
	return a.cur.Load().ca.Sign(csrDER, id, a.opts.SVIDTTL)
}

// ControlID is the control plane's own SPIFFE ID.
func ControlID(td spiffeid.TrustDomain) spiffeid.ID {
	id, _ := identity.ID(td, identityv1.ControlNamespace, identityv1.ControlServiceAccount)
	return id
}

// issueServer makes this replica a new serving certificate. Its chain
// carries the roots and cross certificates too: a bootstrapping proxy
// finds the root its token pins among them.
func (a *Authority) issueServer() error {
	s := a.cur.Load()
	key, err := identity.NewKey()
	if err != nil {
		return err
	}
	id := ControlID(a.opts.td)
	csr, err := identity.NewCSR(key, id)
	if err != nil {
		return err
	}
	chain, err := s.ca.Sign(csr, id, a.opts.SVIDTTL)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	for _, c := range s.cross {
		chain = append(chain, c.Raw)
	}
	for _, r := range s.ca.Roots {
		chain = append(chain, r.Raw)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return err
	}
	a.server.Store(&tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf})
	a.serverRenew.Store(time.Now().Add(time.Until(leaf.NotAfter) / 2).UnixNano())
	return nil
}

// Run keeps the CA current until ctx ends: it reloads it when any replica
// changed it, renews the serving certificate at half life, and ends a
// rotation's overlap when its time comes.
func (a *Authority) Run(ctx context.Context) {
	revs := a.st.Watch(ctx)
	renew := time.NewTimer(a.renewIn())
	defer renew.Stop()
	drop := time.NewTimer(time.Hour)
	defer drop.Stop()
	a.resetDrop(drop)
	// A slow poll as well, in case the watch ends.
	poll := time.NewTicker(time.Minute)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-revs:
			if !ok {
				revs = nil
				continue
			}
		case <-poll.C:
		case <-renew.C:
			if err := a.issueServer(); err != nil {
				a.log.Error("renewing the control plane's certificate", "error", err)
			}
		case <-drop.C:
			if d := a.cur.Load().doc.DropAfter; d != nil && !time.Now().Before(*d) {
				if _, err := a.DropOld(ctx); err != nil && !errors.Is(err, ErrNoOverlap) {
					a.log.Warn("ending the root rotation's overlap", "error", err)
				} else if err == nil {
					a.log.Info("root rotation's overlap over: older roots dropped")
				}
			}
		}
		if err := a.refresh(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("reloading the CA", "error", err)
		}
		renew.Reset(a.renewIn())
		a.resetDrop(drop)
	}
}

func (a *Authority) renewIn() time.Duration {
	return max(time.Until(time.Unix(0, a.serverRenew.Load())), 100*time.Millisecond)
}

func (a *Authority) resetDrop(t *time.Timer) {
	if d := a.cur.Load().doc.DropAfter; d != nil {
		t.Reset(max(time.Until(*d), 0))
	} else {
		t.Reset(time.Hour)
	}
}

// refresh installs the stored CA if it changed.
func (a *Authority) refresh(ctx context.Context) error {
	o, err := a.st.Get(ctx, Kind, namespace, name)
	if err != nil {
		return err
	}
	if o.ResourceVersion == a.cur.Load().version {
		return nil
	}
	s, err := decode(o)
	if err != nil {
		return err
	}
	a.install(s)
	return nil
}

func (a *Authority) install(s *state) {
	old := a.cur.Load()
	if old != nil && old.version == s.version {
		return
	}
	a.cur.Store(s)
	if err := a.issueServer(); err != nil {
		a.log.Error("reissuing the control plane's certificate", "error", err)
	}
	a.log.Info("CA changed", "roots", len(s.ca.Roots), "root_sha256", a.RootHash())
	a.mu.Lock()
	for ch := range a.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	a.mu.Unlock()
	if a.opts.OnChange != nil {
		a.opts.OnChange()
	}
}

// subscribe returns a channel signalled on every CA change.
func (a *Authority) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	a.mu.Lock()
	a.subs[ch] = struct{}{}
	a.mu.Unlock()
	return ch, func() {
		a.mu.Lock()
		delete(a.subs, ch)
		a.mu.Unlock()
	}
}

// update applies change to the stored CA with optimistic concurrency,
// retrying when another replica wrote in between, and installs the result.
func (a *Authority) update(ctx context.Context, change func(s *state) (doc, error)) error {
	for attempt := 0; attempt < 5; attempt++ {
		s, err := read(ctx, a.st)
		if err != nil {
			return err
		}
		d, err := change(s)
		if err != nil {
			return err
		}
		err = write(ctx, a.st, d, s.version)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return err
		}
		return a.refresh(ctx)
	}
	return errors.New("CA: the store kept changing")
}

// Rotate makes a new signing root. The old roots stay trusted (the
// overlap) until DropOld, or until overlap has passed when it is > 0.
// Proxies get the new bundle at once and renew onto the new root soon.
func (a *Authority) Rotate(ctx context.Context, overlap time.Duration) (api.CAStatus, error) {
	err := a.update(ctx, func(s *state) (doc, error) {
		if s.doc.Intermediate {
			return doc{}, ErrIntermediate
		}
		oldRoot := s.ca.Signer
		if err := s.ca.Rotate(); err != nil {
			return doc{}, err
		}
		cross, err := crossSign(s.ca.Signer, oldRoot, []byte(s.doc.Key))
		if err != nil {
			return doc{}, fmt.Errorf("cross-signing the new root: %w", err)
		}
		now := time.Now().UTC()
		d := doc{Intermediate: false, RotatedAt: &now}
		if overlap > 0 {
			t := now.Add(overlap)
			d.DropAfter = &t
		}
		return encode(s.ca, append([]*x509.Certificate{cross}, s.cross...), d)
	})
	if err != nil {
		return api.CAStatus{}, err
	}
	a.log.Info("root rotated: both roots trusted until drop-old", "root_sha256", a.RootHash(), "overlap", overlap)
	return a.Status(), nil
}

// DropOld ends a rotation's overlap: only the signing root stays trusted.
func (a *Authority) DropOld(ctx context.Context) (api.CAStatus, error) {
	err := a.update(ctx, func(s *state) (doc, error) {
		if len(s.ca.Roots) <= 1 {
			return doc{}, ErrNoOverlap
		}
		for _, r := range s.ca.Roots[1:] {
			if err := s.ca.DropRoot(r.SerialNumber); err != nil {
				return doc{}, err
			}
		}
		return encode(s.ca, nil, doc{Intermediate: s.doc.Intermediate, RotatedAt: s.doc.RotatedAt})
	})
	if err != nil {
		return api.CAStatus{}, err
	}
	return a.Status(), nil
}

// Status is the CA now.
func (a *Authority) Status() api.CAStatus {
	s := a.cur.Load()
	st := api.CAStatus{TrustDomain: a.opts.td.Name(), Intermediate: s.doc.Intermediate, SVIDTTL: a.opts.SVIDTTL.String(), RotatedAt: s.doc.RotatedAt, DropAfter: s.doc.DropAfter}
	for i, r := range s.ca.Roots {
		st.Roots = append(st.Roots, api.CARoot{SHA256: token.CAHash(r), Serial: r.SerialNumber.Text(16), Subject: r.Subject.String(), NotAfter: r.NotAfter.UTC(), Signing: i == 0})
	}
	return st
}
