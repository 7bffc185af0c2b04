package identity

import (
	"crypto/tls"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// ALPN protocol of the sidecar-to-sidecar link. Its first bytes are a PROXY
// header naming the app port, then the app's own protocol.
const ALPNSidecar = "weft-sidecar/1"

// MeshTLS builds the TLS configs of mesh connections from a Source. Client
// sessions are cached (keyed by the expected peer) so reconnects resume
// instead of paying a full handshake.
type MeshTLS struct {
	src   *Source
	cache tls.ClientSessionCache
}

// NewMeshTLS makes TLS configs backed by src.
func NewMeshTLS(src *Source) *MeshTLS {
	return &MeshTLS{src: src, cache: tls.NewLRUClientSessionCache(1024)}
}

// Source is the identity the configs present.
func (m *MeshTLS) Source() *Source { return m.src }

// Client is the config for dialling a sidecar that must prove one of the
// expected identities (any member of the trust domain when none is given).
func (m *MeshTLS) Client(expected ...spiffeid.ID) *tls.Config {
	auth := tlsconfig.AuthorizeMemberOf(m.src.TrustDomain())
	name := "mesh." + m.src.TrustDomain().Name()
	if len(expected) > 0 {
		auth = tlsconfig.AuthorizeOneOf(expected...)
		name = sessionName(expected)
	}
	c := tlsconfig.MTLSClientConfig(m.src, m.src, auth)
	harden(c)
	c.NextProtos = []string{ALPNSidecar}
	// ServerName keys the session cache: a session is only resumed toward
	// the same expected identities it was verified for.
	c.ServerName = name
	c.ClientSessionCache = m.cache
	return c
}

// Server is the config of a sidecar's inbound: clients must present an
// SVID of our trust domain; what they may do is authorization's business.
func (m *MeshTLS) Server() *tls.Config {
	c := tlsconfig.MTLSServerConfig(m.src, m.src, tlsconfig.AuthorizeMemberOf(m.src.TrustDomain()))
	harden(c)
	c.NextProtos = []string{ALPNSidecar}
	return c
}

func harden(c *tls.Config) {
	c.MinVersion = tls.VersionTLS13
	// Full-size records from the first byte: the mesh link is long-lived
	// and latency-bound, not a browser's first paint.
	c.DynamicRecordSizingDisabled = true
}

// sessionName turns the expected identities into a stable SNI-safe label.
func sessionName(ids []spiffeid.ID) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte('.')
		}
		p := strings.NewReplacer("/", "-", "_", "-").Replace(strings.Trim(id.Path(), "/"))
		b.WriteString(p)
	}
	b.WriteString(".")
	b.WriteString(ids[0].TrustDomain().Name())
	s := b.String()
	if len(s) > 253 {
		s = s[len(s)-253:]
	}
	return s
}

// PeerID returns the SPIFFE ID of a verified TLS peer.
func PeerID(cs *tls.ConnectionState) (spiffeid.ID, bool) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, false
	}
	for _, u := range cs.PeerCertificates[0].URIs {
		if id, err := spiffeid.FromURI(u); err == nil {
			return id, true
		}
	}
	return spiffeid.ID{}, false
}
