package proxy

import (
	"net"
	"net/http"
	"strings"

	"weft.dev/weft/internal/proxy/upstream"
	"weft.dev/weft/internal/telemetry"
)

// Glue between the data plane and internal/telemetry: what the hooks in
// http.go, forward.go, tcp.go and inbound.go need beyond one call.

// selfPeer is the proxy's own identity as telemetry labels.
func selfPeer(opts Options) telemetry.Peer {
	return telemetry.Peer{Workload: opts.Workload, Namespace: opts.Namespace}
}

// principal is the proxy's SPIFFE ID, "" without an identity. It is read
// per request: the identity may come, or rotate, after New.
func (p *Proxy) principal() string {
	if m := p.Identity(); m != nil {
		return m.Source().ID().String()
	}
	return ""
}

// mutualTLSTo reports whether a connection to endpoint addr is made with
// mutual TLS: the endpoint has a sidecar and this proxy an identity.
func (p *Proxy) mutualTLSTo(addr string) bool {
	if p.Identity() == nil {
		return false
	}
	_, ok := (*p.tr.dialer.sidecars.Load())[addr]
	return ok
}

// peerLabels turns a verified caller into source labels: its SPIFFE ID is
// the principal, and /ns/NS/sa/SA names its namespace.
func peerLabels(pe *Peer) telemetry.Peer {
	if pe == nil {
		return telemetry.Peer{}
	}
	out := telemetry.Peer{Principal: pe.ID}
	if _, rest, ok := strings.Cut(pe.ID, "/ns/"); ok {
		out.Namespace, _, _ = strings.Cut(rest, "/")
	}
	return out
}

// recordAttempt tells x about an attempt to endpoint ep.
func (p *Proxy) recordAttempt(x *telemetry.Exchange, ep *upstream.Endpoint) {
	if x != nil {
		x.Upstream(ep.Workload, ep.Address)
		x.SetMutualTLS(p.mutualTLSTo(ep.Address))
	}
}

// recordConnected tells tc about the upstream connection to ep.
func (p *Proxy) recordConnected(tc *telemetry.Conn, ep *upstream.Endpoint) {
	if tc != nil {
		tc.SetMutualTLS(p.mutualTLSTo(ep.Address))
		tc.Connected(ep.Workload, ep.Address)
	}
}

// beginInbound starts recording a request from another sidecar, whose
// verified identity (if any) is the source.
func (p *Proxy) beginInbound(w http.ResponseWriter, r *http.Request) *telemetry.Exchange {
	x := p.tel.Begin(w, r, telemetry.Server)
	if x != nil {
		pe := PeerFrom(r.Context())
		x.SetSource(peerLabels(pe))
		x.SetMutualTLS(pe != nil)
	}
	return x
}

// beginInboundTCP starts recording a connection from another sidecar.
func (p *Proxy) beginInboundTCP(conn net.Conn, pe *Peer) *telemetry.Conn {
	tc := p.tel.BeginTCP(conn, telemetry.Server)
	if tc != nil {
		tc.SetSource(peerLabels(pe))
		tc.SetMutualTLS(pe != nil)
	}
	return tc
}
