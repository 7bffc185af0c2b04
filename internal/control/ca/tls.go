package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/identity"
)

// ServerTLS is the TLS config of the proxies' gRPC port. The control plane
// proves its own SVID (renewed in place). A client certificate is
// optional at the TLS level, because a bootstrapping proxy has none yet;
// one that is given must be an SVID of this trust domain, or the handshake
// fails. Each RPC then says what it needs (PeerID).
func (a *Authority) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return a.server.Load(), nil
		},
		ClientAuth: tls.RequestClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil
			}
			if _, _, err := x509svid.ParseAndVerify(raw, a); err != nil {
				return fmt.Errorf("client certificate refused: %w", err)
			}
			return nil
		},
	}
}

// PeerID is the verified SVID of the caller of an RPC on the proxies'
// port, if it presented one. An expired certificate (on a connection that
// outlived it) counts as none.
func PeerID(ctx context.Context) (spiffeid.ID, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return spiffeid.ID{}, false
	}
	leaf := info.State.PeerCertificates[0]
	if time.Now().After(leaf.NotAfter) {
		return spiffeid.ID{}, false
	}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return spiffeid.ID{}, false
	}
	return id, true
}

// AuthorizeStream admits a proxy's config stream: it must present an SVID
// (mutual TLS), and its Hello must register the namespace and service
// account that SVID names, so no proxy registers as another identity.
func (a *Authority) AuthorizeStream(ctx context.Context, h *meshv1.Hello) error {
	id, ok := PeerID(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "the config stream needs mutual TLS with this proxy's SVID: bootstrap with a join token first (Identity.Sign)")
	}
	want, err := identity.ID(a.opts.td, h.Namespace, h.ServiceAccount)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "hello: %v", err)
	}
	if id != want {
		return status.Errorf(codes.PermissionDenied, "this proxy's certificate is %s, but its Hello registers %s: a proxy may only register its own identity", id, want)
	}
	return nil
}
