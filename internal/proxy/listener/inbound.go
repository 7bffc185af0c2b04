package listener

import (
	"bufio"
	"errors"
	"net"
	"time"

	"github.com/pires/go-proxyproto"

	"weft.dev/weft/internal/proxy"
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
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.track(ln, nil)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				s.log.Warn("accept failed", "listener", addr, "err", err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			go s.inbound(c, byPort)
		}
	}()
	return ln.Addr(), nil
}

func (s *Set) inbound(c net.Conn, apps map[int]*proxy.App) {
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
	var conn net.Conn = &peekedConn{Conn: c, r: br}
	proto, conn := sniff(conn)
	if proto == sniffTCP {
		s.p.ServeInboundTCP(conn, app)
		return
	}
	if !s.innerL.push(&appConn{Conn: conn, app: app}) {
		conn.Close()
	}
}

// appConn is an inbound connection whose requests all go to one app port.
type appConn struct {
	net.Conn
	app *proxy.App
}
