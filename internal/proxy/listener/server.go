// Package listener accepts traffic into the proxy: the outbound forward
// proxy (HTTP and CONNECT), per-service upstream ports, and the sniffing
// that sends each connection to the HTTP engine or to the TCP relay.
package listener

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/h1"
)

const (
	readHeaderTimeout = 30 * time.Second
	idleTimeout       = 5 * time.Minute
)

// Set runs the proxy's listeners and stops them together.
type Set struct {
	p   *proxy.Proxy
	log *slog.Logger
	// inner serves HTTP found inside tunnels, on upstream ports and on the
	// inbound listener; each connection carries its target (outbound) or
	// its app (inbound) in its context.
	inner  *http.Server
	innerL *ConnListener
	// h1 serves the HTTP/1 connections of the same ports without
	// net/http's per-request goroutines (internal/proxy/h1).
	h1      *h1.Server
	servers []*http.Server
	lns     []net.Listener
	wg      sync.WaitGroup
}

// NewSet makes an empty listener set for p.
func NewSet(p *proxy.Proxy, log *slog.Logger) *Set {
	s := &Set{p: p, log: log, innerL: NewConnListener(&net.TCPAddr{})}
	outbound, inbound := p.Handler(nil), p.InboundHandler()
	mesh := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if proxy.AppFrom(r.Context()) != nil {
			inbound.ServeHTTP(w, r)
			return
		}
		outbound.ServeHTTP(w, r)
	})
	s.inner = newHTTPServer(mesh, log)
	s.h1 = &h1.Server{Handler: mesh, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout, Log: log}
	s.inner.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		switch tc := c.(type) {
		case *targetConn:
			return proxy.WithTarget(ctx, tc.target)
		case *appConn:
			return proxy.WithPeer(proxy.WithApp(ctx, tc.app), tc.peer)
		}
		return ctx
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = s.inner.Serve(s.innerL) }()
	return s
}

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return srv
}

// Outbound starts the forward proxy on addr: apps set HTTP_PROXY to it.
func (s *Set) Outbound(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := newHTTPServer(&forwardProxy{s: s, mesh: s.p.Handler(nil)}, s.log)
	s.track(ln, srv)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = srv.Serve(ln) }()
	return ln.Addr(), nil
}

// Upstream starts a port that carries any protocol to one service.
func (s *Set) Upstream(addr string, tg *proxy.Target) (net.Addr, error) {
	return s.listen(addr, func(c net.Conn) { s.dispatch(c, tg) })
}

// listen accepts connections on addr, each handled in its own goroutine,
// until Shutdown closes the listener.
func (s *Set) listen(addr string, handle func(net.Conn)) (net.Addr, error) {
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
			go handle(c)
		}
	}()
	return ln.Addr(), nil
}

// dispatch sends a connection bound for tg to the HTTP engine or the TCP
// relay, by the service port's declared protocol, else by sniffing.
func (s *Set) dispatch(c net.Conn, tg *proxy.Target) {
	proto, ok := s.p.Protocol(tg)
	if !ok {
		s.log.Debug("connection for unknown service", "host", tg.Host, "port", tg.Port)
		c.Close()
		return
	}
	switch proto {
	case compile.ProtocolTCP:
		s.p.ServeTCP(c, tg)
		return
	case compile.ProtocolH2C, compile.ProtocolGRPC:
	case compile.ProtocolHTTP, compile.ProtocolWebSocket:
		// Declared HTTP: sniff only to tell HTTP/2 prior knowledge from
		// HTTP/1 (a client slow to speak is still HTTP).
		var sniffed string
		sniffed, c = sniff(c)
		if sniffed != sniffHTTP2 {
			s.h1.ServeConn(proxy.WithTarget(context.Background(), tg), c)
			return
		}
	default:
		var sniffed string
		sniffed, c = sniff(c)
		switch sniffed {
		case sniffTCP:
			s.p.ServeTCP(c, tg)
			return
		case sniffHTTP1:
			s.h1.ServeConn(proxy.WithTarget(context.Background(), tg), c)
			return
		}
	}
	if !s.innerL.Push(&targetConn{Conn: readBuffered(c), target: tg}) {
		c.Close()
	}
}

func (s *Set) track(ln net.Listener, srv *http.Server) {
	s.lns = append(s.lns, ln)
	if srv != nil {
		s.servers = append(s.servers, srv)
	}
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends,
// then closes everything.
func (s *Set) Shutdown(ctx context.Context) error {
	for _, ln := range s.lns {
		ln.Close()
	}
	h1done := make(chan error, 1)
	go func() { h1done <- s.h1.Shutdown(ctx) }()
	var err error
	for _, srv := range append(s.servers, s.inner) {
		if e := srv.Shutdown(ctx); e != nil && err == nil {
			err = e
		}
	}
	if e := <-h1done; e != nil && err == nil {
		err = e
	}
	s.innerL.Close()
	s.wg.Wait()
	return err
}

// targetConn is a connection whose HTTP requests all go to one target.
type targetConn struct {
	net.Conn
	target *proxy.Target
}
