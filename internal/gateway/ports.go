package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/h1"
	"weft.dev/weft/internal/proxy/listener"
)

const (
	readHeaderTimeout = 30 * time.Second
	idleTimeout       = 5 * time.Minute
	// helloTimeout bounds the wait for a TLS ClientHello (and the
	// handshake), so idle connections cannot pile up.
	helloTimeout = 10 * time.Second
)

// portServer is one open listener port. It outlives reloads that keep the
// port and its protocol family; each connection and request reads the
// config current when it arrives.
type portServer struct {
	g      *Gateway
	port   int32
	family string
	ln     net.Listener
	// srv serves HTTP: on the port itself (family http) or, for family
	// tls, on the connections TLS was terminated for (via inner).
	srv   *http.Server
	inner *listener.ConnListener
	// h1 serves the port's HTTP/1 connections (plain, or TLS where ALPN
	// chose http/1.1) on one goroutine each; srv keeps HTTP/2.
	h1    *h1.Server
	wg    sync.WaitGroup
	conns sync.Map // opaque relays, closed on shutdown
}

func (g *Gateway) listen(port int32, family string) (*portServer, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(g.opts.Bind, strconv.Itoa(int(port))))
	if err != nil {
		return nil, err
	}
	ps := &portServer{g: g, port: port, family: family, ln: ln}
	if family != "tcp" {
		handler := g.p.WithTelemetry(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serveHTTP(port, w, r) }))
		ps.h1 = &h1.Server{Handler: handler, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout, Log: g.log}
		ps.inner = listener.NewConnListener(ln.Addr())
		ps.srv = &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
			Protocols:         new(http.Protocols),
		}
		ps.srv.Protocols.SetHTTP1(true)
		if family == "http" {
			ps.srv.Protocols.SetUnencryptedHTTP2(true)
		} else {
			ps.srv.Protocols.SetHTTP2(true)
		}
	}
	return ps, nil
}

func (ps *portServer) start() {
	switch ps.family {
	case "http":
		ps.wg.Add(2)
		go func() { defer ps.wg.Done(); _ = ps.srv.Serve(ps.inner) }()
		go func() { defer ps.wg.Done(); ps.accept(ps.servePlain) }()
	case "tls":
		ps.wg.Add(2)
		go func() { defer ps.wg.Done(); _ = ps.srv.Serve(ps.inner) }()
		go func() { defer ps.wg.Done(); ps.accept(ps.serveTLS) }()
	case "tcp":
		ps.wg.Add(1)
		go func() { defer ps.wg.Done(); ps.accept(ps.serveTCP) }()
	}
}

func (ps *portServer) accept(serve func(net.Conn)) {
	for {
		c, err := ps.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			ps.g.log.Warn("accept failed", "port", ps.port, "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go serve(c)
	}
}

// current is this port's part of the served config.
func (ps *portServer) current() *portConfig {
	if s := ps.g.snap.Load(); s != nil {
		return s.ports[ps.port]
	}
	return nil
}

// serveTLS reads the ClientHello, picks the listener by SNI and either
// relays the untouched bytes to a TLSRoute backend (Passthrough) or
// terminates TLS: HTTPS goes to the HTTP server, TLS to a TLSRoute.
func (ps *portServer) serveTLS(c net.Conn) {
	pc := ps.current()
	if pc == nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Now().Add(helloTimeout))
	sni, replay, err := peekSNI(c)
	if err != nil {
		ps.g.log.Debug("no TLS ClientHello", "port", ps.port, "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	l := pc.listenerFor(sni)
	if l == nil && sni == "" {
		// A client without SNI (an address in the URL) still gets a
		// certificate: the port's first terminating listener's.
		for _, cand := range pc.listeners {
			if len(cand.certs) > 0 {
				l = cand
				break
			}
		}
	}
	if l == nil {
		ps.g.log.Debug("no listener for SNI", "port", ps.port, "sni", sni)
		c.Close()
		return
	}
	if l.cfg.TLSMode != "Terminate" {
		c.SetReadDeadline(time.Time{})
		ps.relayTLS(replay, l, sni)
		return
	}
	tc := tls.Server(replay, pc.tlsConfig)
	if err := tc.Handshake(); err != nil {
		ps.g.log.Debug("TLS handshake failed", "port", ps.port, "sni", sni, "err", err)
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	if l.cfg.Protocol == "TLS" {
		ps.relayTLS(tc, l, sni)
		return
	}
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		ps.h1.ServeConn(context.Background(), tc)
		return
	}
	if !ps.inner.Push(tc) {
		tc.Close()
	}
}

// h2Preface opens every HTTP/2 connection without TLS (prior knowledge);
// no HTTP/1 method starts with it.
const h2Preface = "PRI * HTTP/2.0"

// servePlain sends an HTTP connection to h1, or to the HTTP/2 server when
// it opens with the HTTP/2 preface.
func (ps *portServer) servePlain(c net.Conn) {
	br := bufio.NewReaderSize(c, 64)
	c.SetReadDeadline(time.Now().Add(readHeaderTimeout))
	first, err := br.Peek(len(h2Preface))
	c.SetReadDeadline(time.Time{})
	pc := &h1.PeekedConn{Conn: c, R: br}
	if err == nil && string(first) == h2Preface {
		if !ps.inner.Push(pc) {
			c.Close()
		}
		return
	}
	if err != nil && len(first) == 0 {
		c.Close()
		return
	}
	ps.h1.ServeConn(context.Background(), pc)
}

// relayTLS sends a TLS listener's connection to the TLSRoute whose
// hostnames match the SNI.
func (ps *portServer) relayTLS(c net.Conn, l *listenerRT, sni string) {
	for _, r := range l.tls {
		if len(r.hosts) == 0 || proxy.HostMatches(r.hosts, sni) {
			ps.track(c)
			defer ps.untrack(c)
			ps.g.p.ServeEdgeTCP(c, r.backends)
			return
		}
	}
	ps.g.log.Debug("no TLSRoute for SNI", "listener", l.cfg.Name, "sni", sni)
	c.Close()
}

func (ps *portServer) serveTCP(c net.Conn) {
	pc := ps.current()
	if pc == nil || len(pc.listeners) == 0 || pc.listeners[0].tcp == nil {
		c.Close()
		return
	}
	ps.track(c)
	defer ps.untrack(c)
	ps.g.p.ServeEdgeTCP(c, pc.listeners[0].tcp)
}

func (ps *portServer) track(c net.Conn)   { ps.conns.Store(c, struct{}{}) }
func (ps *portServer) untrack(c net.Conn) { ps.conns.Delete(c) }

// close stops the port at once (a reload that dropped it).
func (ps *portServer) close() {
	ps.ln.Close()
	if ps.srv != nil {
		ps.srv.Close()
	}
	if ps.h1 != nil {
		expired, cancel := context.WithCancel(context.Background())
		cancel()
		_ = ps.h1.Shutdown(expired)
	}
	if ps.inner != nil {
		ps.inner.Close()
	}
	ps.closeConns()
}

// shutdown stops accepting and drains HTTP requests until ctx ends; opaque
// relays are closed then.
func (ps *portServer) shutdown(ctx context.Context) error {
	ps.ln.Close()
	var err error
	h1done := make(chan error, 1)
	if ps.h1 != nil {
		go func() { h1done <- ps.h1.Shutdown(ctx) }()
	} else {
		h1done <- nil
	}
	if ps.srv != nil {
		err = ps.srv.Shutdown(ctx)
	}
	if e := <-h1done; e != nil && err == nil {
		err = e
	}
	if ps.inner != nil {
		ps.inner.Close()
	}
	ps.closeConns()
	done := make(chan struct{})
	go func() { ps.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return err
}

func (ps *portServer) closeConns() {
	ps.conns.Range(func(k, _ any) bool {
		k.(net.Conn).Close()
		return true
	})
}
