package listener

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"time"

	"github.com/pires/go-proxyproto"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/h1"
)

// headerTimeout bounds the wait for a caller's PROXY header.
const headerTimeout = 5 * time.Second

// Inbound starts the listener other sidecars deliver to. Each connection
// opens with a PROXY v2 header naming the app port it is for; a connection
// without one, or for a port the app did not declare, is closed, so the
// inbound never relays anywhere but to this workload's own app.
func (s *Set) Inbound(addr string, apps []*proxy.App) (net.Addr, error) {
	byPort := make(map[int]*proxy.App, len(apps))
	for _, a := range apps {
		byPort[int(a.Port)] = a
	}
	return s.listen(addr, func(c net.Conn) { s.inbound(c, byPort) })
}

func (s *Set) inbound(c net.Conn, apps map[int]*proxy.App) {
	c, peer, ok := s.inboundSecurity(c)
	if !ok {
		c.Close()
		return
	}
	br := bufio.NewReaderSize(c, 1024)
	h, err := proxyproto.ReadHeaderTimeout(c, br, headerTimeout)
	if err != nil {
		s.log.Debug("inbound: no PROXY header; closing", "peer", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	_, port, ok := h.Ports()
	app := apps[port]
	if !ok || app == nil {
		s.log.Debug("inbound: connection for an undeclared app port; closing", "peer", c.RemoteAddr().String(), "port", port)
		c.Close()
		return
	}
	var conn net.Conn = &h1.PeekedConn{Conn: c, R: br}
	proto, conn := sniff(conn)
	switch proto {
	case sniffTCP:
		s.p.ServeInboundTCP(conn, app, peer)
		return
	case sniffHTTP1:
		s.h1.ServeConn(proxy.WithPeer(proxy.WithApp(context.Background(), app), peer), conn)
		return
	}
	if !s.innerL.Push(&appConn{Conn: readBuffered(conn), app: app, peer: peer}) {
		conn.Close()
	}
}

// inboundSecurity terminates mutual TLS on an inbound connection when the
// proxy has an identity. Plaintext is refused then, unless the workload is
// PERMISSIVE (migration: callers without a sidecar). Without an identity
// (a proxy run from a file with no certificates) the inbound is plaintext.
func (s *Set) inboundSecurity(c net.Conn) (net.Conn, *proxy.Peer, bool) {
	m := s.p.Identity()
	if m == nil {
		return c, nil, true
	}
	_ = c.SetReadDeadline(time.Now().Add(headerTimeout))
	// A roomy buffer: whatever the first read brings stays in one piece for
	// the PROXY header parser, which wants the header in a single read.
	br := bufio.NewReaderSize(c, 4096)
	first, err := br.Peek(1)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		return c, nil, false
	}
	pc := &h1.PeekedConn{Conn: c, R: br}
	if first[0] != 0x16 { // not a TLS handshake record
		if s.p.InboundPermissive() {
			return pc, nil, true
		}
		s.log.Debug("inbound: plaintext refused (mTLS is STRICT)", "peer", c.RemoteAddr().String())
		return c, nil, false
	}
	tc := tls.Server(pc, m.Server())
	_ = c.SetDeadline(time.Now().Add(headerTimeout))
	if err := tc.Handshake(); err != nil {
		s.log.Debug("inbound: mTLS handshake failed", "peer", c.RemoteAddr().String(), "err", err)
		return c, nil, false
	}
	_ = c.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	id, _ := identity.PeerID(&cs)
	return tc, &proxy.Peer{ID: id.String()}, true
}

// appConn is an inbound connection whose requests all go to one app port.
type appConn struct {
	net.Conn
	app  *proxy.App
	peer *proxy.Peer
}
