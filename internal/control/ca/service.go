package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	identityv1 "weft.dev/weft/api/identity/v1"
	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/control/token"
	"weft.dev/weft/internal/identity"
)

// Service is the Identity gRPC service (api/identity/v1) on the proxies'
// port.
type Service struct {
	identityv1.UnimplementedIdentityServer
	a   *Authority
	st  store.Store
	log *slog.Logger
	now func() time.Time
}

// NewService serves a's CA to proxies; join tokens are read from st.
func NewService(a *Authority, st store.Store, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{a: a, st: st, log: log.With("component", "identity"), now: time.Now}
}

// Sign issues an SVID: to a proxy renewing its own identity over mTLS, or
// to one that bootstraps with a join token whose scope allows it.
func (s *Service) Sign(ctx context.Context, req *identityv1.SignRequest) (*identityv1.SignResponse, error) {
	id, err := identity.ID(s.a.TrustDomain(), req.Namespace, req.ServiceAccount)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "identity %s/%s: %v", req.Namespace, req.ServiceAccount, err)
	}
	ns, sa := idParts(id)
	via := "renewal"
	if peerID, ok := PeerID(ctx); ok {
		if peerID != id {
			return nil, status.Errorf(codes.PermissionDenied, "this proxy is %s: it may renew only its own identity, not ask for %s", peerID, id)
		}
	} else {
		if ns == identityv1.ControlNamespace {
			return nil, status.Errorf(codes.PermissionDenied, "namespace %s is the control plane's own: no proxy may get an identity in it", identityv1.ControlNamespace)
		}
		tok := bearer(ctx)
		if tok == "" {
			return nil, status.Error(codes.Unauthenticated, "no client certificate and no join token: a new proxy bootstraps with a join token (weft token create)")
		}
		_, secret, err := token.Parse(tok)
		if err != nil {
			return nil, status.Error(codes.Unauthenticated, err.Error())
		}
		rec, err := token.Check(ctx, s.st, secret, ns, sa, s.now())
		switch {
		case errors.Is(err, token.ErrUnknown):
			return nil, status.Error(codes.Unauthenticated, err.Error())
		case errors.Is(err, token.ErrExpired), errors.Is(err, token.ErrRevoked), errors.Is(err, token.ErrScope):
			s.log.Warn("join token refused", "identity", id.String(), "reason", err)
			return nil, status.Error(codes.PermissionDenied, err.Error())
		case err != nil:
			return nil, status.Error(codes.Unavailable, err.Error())
		}
		via = "join token " + rec.Name
	}
	csr, err := x509.ParseCertificateRequest(req.Csr)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	if len(csr.URIs) > 0 && (len(csr.URIs) != 1 || csr.URIs[0].String() != id.String()) {
		return nil, status.Errorf(codes.PermissionDenied, "the CSR asks for %s, but this request may only get %s", csr.URIs[0], id)
	}
	chain, err := s.a.Sign(req.Csr, id)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s.log.Debug("issued SVID", "identity", id.String(), "via", via, "ttl", s.a.SVIDTTL())
	if via != "renewal" {
		s.log.Info("proxy bootstrapped", "identity", id.String(), "via", via)
	}
	return &identityv1.SignResponse{Chain: chain, Bundle: s.bundle()}, nil
}

func (s *Service) bundle() *identityv1.Bundle {
	b := &identityv1.Bundle{TrustDomain: s.a.TrustDomain().Name()}
	for _, r := range s.a.Roots() {
		b.Roots = append(b.Roots, r.Raw)
	}
	return b
}

// WatchBundle streams the trust bundle to a proxy with an SVID: now, and
// after every change.
func (s *Service) WatchBundle(_ *identityv1.WatchBundleRequest, stream identityv1.Identity_WatchBundleServer) error {
	if _, ok := PeerID(stream.Context()); !ok {
		return status.Error(codes.Unauthenticated, "WatchBundle needs mutual TLS with this proxy's SVID")
	}
	changed, cancel := s.a.subscribe()
	defer cancel()
	var sent string
	for {
		b := s.bundle()
		if key := bundleKey(b); key != sent {
			if err := stream.Send(b); err != nil {
				return err
			}
			sent = key
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-changed:
		}
	}
}

func bundleKey(b *identityv1.Bundle) string {
	var sb strings.Builder
	for _, r := range b.Roots {
		sb.Write(r)
	}
	return sb.String()
}

// bearer is the token of "authorization: Bearer <token>".
func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if tok, ok := strings.CutPrefix(v, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
	}
	return ""
}

// idParts splits spiffe://td/ns/NS/sa/SA.
func idParts(id spiffeid.ID) (ns, sa string) {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) == 4 {
		return parts[1], parts[3]
	}
	return "", ""
}
