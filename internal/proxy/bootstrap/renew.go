package bootstrap

import (
	"context"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	identityv1 "weft.dev/weft/api/identity/v1"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/proxy/controlclient"
)

// rotationSpread bounds how long after a root rotation a proxy waits
// before renewing onto the new root, so a mesh does not renew in one burst.
const rotationSpread = 10 * time.Second

// Run keeps the identity current until ctx ends: it renews at half life
// (over mutual TLS, no token), and follows the trust bundle. Bootstrap must
// have succeeded. Should the SVID expire (the control plane was away for
// longer than its lifetime), it bootstraps again with the join token.
func (c *Client) Run(ctx context.Context) {
	bundles := make(chan *identityv1.Bundle, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.watchBundle(ctx, bundles)
	}()
	defer wg.Wait()

	at := c.renewAt
	attempt := 0
	next := rand.IntN(len(c.opts.Addrs))
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-bundles:
			if early, ok := c.takeBundle(b); ok {
				if early.Before(at) {
					at = early
				}
			} else {
				at = time.Now() // our SVID no longer verifies: renew now
			}
		case <-t.C:
			addr := c.opts.Addrs[next%len(c.opts.Addrs)]
			next++
			err := c.renew(ctx, addr)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				// Retry soon, but never sleep past the expiry by much.
				d := min(controlclient.Backoff(attempt, c.opts.BackoffBase, c.opts.BackoffMax), max(time.Until(c.src.Expiry())/4, c.opts.BackoffBase))
				attempt++
				c.log.Warn("renewing the identity failed; retrying", "addr", addr, "error", err, "expires", c.src.Expiry().Format(time.RFC3339), "retry_in", d.Round(time.Millisecond))
				at = time.Now().Add(d)
			} else {
				attempt = 0
				at = c.renewAt
				c.log.Debug("identity renewed", "id", c.src.ID().String(), "expires", c.src.Expiry().Format(time.RFC3339Nano))
			}
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(max(time.Until(at), 0))
	}
}

// renew gets a new SVID from addr: over mTLS while the current one is
// valid, with the join token once it has expired.
func (c *Client) renew(ctx context.Context, addr string) error {
	if time.Now().Before(c.src.Expiry()) {
		err := c.sign(ctx, addr, false)
		if err == nil || status.Code(err) != codes.Unauthenticated {
			return err
		}
	}
	c.log.Warn("identity expired or no longer accepted: bootstrapping again with the join token", "addr", addr)
	return c.sign(ctx, addr, true)
}

// takeBundle installs a new trust bundle under the current SVID. ok is
// false when the SVID does not verify against it (its root was dropped):
// the caller renews at once. Otherwise early is when to renew: soon when
// the bundle has a newer signing root than the one the SVID chains to.
func (c *Client) takeBundle(b *identityv1.Bundle) (early time.Time, ok bool) {
	var roots []*x509.Certificate
	for _, der := range b.Roots {
		r, err := x509.ParseCertificate(der)
		if err != nil {
			c.log.Warn("trust bundle from the control plane does not parse; keeping ours", "error", err)
			return time.Time{}, true
		}
		roots = append(roots, r)
	}
	if len(roots) == 0 {
		return time.Time{}, true
	}
	svid, err := c.src.GetX509SVID()
	if err != nil {
		return time.Time{}, false
	}
	if err := c.src.Update(c.chain, c.key, identity.EncodeCertificates(roots...)); err != nil {
		c.log.Info("trust bundle changed and our certificate's root is gone: renewing now", "roots", len(roots))
		return time.Time{}, false
	}
	if chainsToNewest(svid, roots) {
		return c.renewAt, true
	}
	d := rand.N(min(rotationSpread, max(time.Until(c.src.Expiry())/4, time.Millisecond)))
	c.log.Info("root rotation: new signing root in the trust bundle; renewing onto it", "in", d.Round(time.Millisecond), "roots", len(roots))
	return time.Now().Add(d), true
}

// watchBundle follows WatchBundle on any replica, reconnecting with
// backoff, and hands each bundle to bundles (newest wins).
func (c *Client) watchBundle(ctx context.Context, bundles chan *identityv1.Bundle) {
	next := rand.IntN(len(c.opts.Addrs))
	for attempt := 0; ctx.Err() == nil; attempt++ {
		addr := c.opts.Addrs[next%len(c.opts.Addrs)]
		next++
		healthy, err := c.watchOnce(ctx, addr, bundles)
		if ctx.Err() != nil {
			return
		}
		if healthy {
			attempt = 0
		}
		d := controlclient.Backoff(attempt, c.opts.BackoffBase, c.opts.BackoffMax)
		c.log.Debug("trust bundle watch ended", "addr", addr, "error", err, "retry_in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return
		}
	}
}

func (c *Client) watchOnce(ctx context.Context, addr string, bundles chan *identityv1.Bundle) (healthy bool, err error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(c.Creds()))
	if err != nil {
		return false, err
	}
	defer cc.Close()
	stream, err := identityv1.NewIdentityClient(cc).WatchBundle(ctx, &identityv1.WatchBundleRequest{})
	if err != nil {
		return false, err
	}
	for {
		b, err := stream.Recv()
		if err != nil {
			return healthy, err
		}
		if b.TrustDomain != c.src.TrustDomain().Name() {
			return healthy, fmt.Errorf("bundle for trust domain %q, ours is %q", b.TrustDomain, c.src.TrustDomain().Name())
		}
		healthy = true
		select {
		case <-bundles: // drop a bundle not yet taken: this one is newer
		default:
		}
		bundles <- b
	}
}
