// Package h1 serves and sends HTTP/1.1 with no goroutine per request: one
// goroutine per client connection reads a request, runs the handler, which
// sends the request upstream on a pooled connection and copies the
// response back, all on that goroutine.
//
// net/http does the same work with more hand-offs: its server starts a
// background read per request and its Transport runs a read and a write
// goroutine per upstream connection joined by channels. At a steady 1,000
// requests a second most of a Go proxy's CPU goes to waking those
// goroutines (and the threads under them), not to HTTP. Parsing stays
// net/http's own (http.ReadRequest, http.ReadResponse, Request.Write), so
// framing, Content-Length/Transfer-Encoding rules and limits are the ones
// the standard server applies.
package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Server serves HTTP/1.x connections handed to it with ServeConn.
type Server struct {
	Handler http.Handler
	// ReadHeaderTimeout bounds the wait for a request's header once its
	// first byte arrived; IdleTimeout the wait for the next request.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// MaxHeaderBytes caps a request's header; 0 means 1 MiB, as net/http.
	MaxHeaderBytes int
	Log            *slog.Logger

	mu       sync.Mutex
	conns    map[*conn]struct{}
	shutting atomic.Bool
	active   sync.WaitGroup
}

const (
	defaultMaxHeaderBytes = 1 << 20
	// maxDrain is how much of a request body the handler left unread is
	// read and discarded to keep the connection; past it, the connection
	// is closed instead.
	maxDrain = 256 << 10
	// bufferSize is each connection's read and write buffer.
	bufferSize = 4 << 10
)

// Connection states, for Shutdown: only a connection waiting for its next
// request may be closed under it.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

type conn struct {
	s      *Server
	rwc    net.Conn
	lr     limitReader
	br     *bufio.Reader
	bw     *bufio.Writer
	state  atomic.Int32
	remote string
	// tls is the connection's TLS state when it is a *tls.Conn, given to
	// every request as net/http does.
	tls *tls.ConnectionState
}

// limitReader reads from the connection, at most remain bytes: the cap on
// a request's header while it is read, and on draining an unread body.
type limitReader struct {
	c      net.Conn
	remain int64
}

var errLimit = errors.New("h1: read limit reached")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.remain <= 0 {
		return 0, errLimit
	}
	if int64(len(p)) > l.remain {
		p = p[:l.remain]
	}
	n, err := l.c.Read(p)
	l.remain -= int64(n)
	return n, err
}

const unlimited = 1<<63 - 1

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufferSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufferSize) }}
)

// ServeConn serves requests on c until either side closes it, and closes
// it. ctx carries the connection's values to every request's context.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) {
	cn := &conn{s: s, rwc: c, remote: c.RemoteAddr().String()}
	if tc, ok := c.(*tls.Conn); ok {
		st := tc.ConnectionState()
		cn.tls = &st
	}
	cn.lr = limitReader{c: c, remain: unlimited}
	cn.br = readers.Get().(*bufio.Reader)
	cn.br.Reset(&cn.lr)
	if !s.track(cn) {
		c.Close()
		cn.release()
		return
	}
	hijacked := false
	defer func() {
		s.untrack(cn)
		if hijacked {
			return
		}
		c.Close()
		cn.release()
	}()
	for {
		req, err := cn.readRequest(ctx)
		if err != nil {
			if status := errorStatus(err); status != 0 {
				cn.refuse(status, err)
			}
			return
		}
		w := newResponse(cn, req)
		keep := cn.serve(w, req)
		hijacked = w.hijacked
		w.release()
		if !keep || s.shutting.Load() || !cn.state.CompareAndSwap(stateActive, stateIdle) {
			return
		}
		// Waiting for the next request, the connection needs its read
		// buffer (the read lands there) but not its write buffer.
		cn.putWriter()
	}
}

func (cn *conn) release() {
	cn.br.Reset(nil)
	readers.Put(cn.br)
	cn.putWriter()
}

func (cn *conn) putWriter() {
	if cn.bw != nil {
		cn.bw.Reset(nil)
		writers.Put(cn.bw)
		cn.bw = nil
	}
}

// serve runs the handler for one request and finishes its response. It
// reports whether the connection can carry another request.
func (cn *conn) serve(w *response, req *http.Request) (keep bool) {
	defer func() {
		if v := recover(); v != nil {
			keep = false
			if v != http.ErrAbortHandler && cn.s.Log != nil {
				cn.s.Log.Error("http handler panicked", "remote", cn.remote, "path", req.URL.Path, "panic", v)
			}
		}
	}()
	cn.s.Handler.ServeHTTP(w, req)
	if w.hijacked {
		return false
	}
	if !w.finish() {
		return false
	}
	// Discard what the handler left of the body, within a bound, so the
	// next request starts where it should.
	cn.lr.remain = maxDrain
	err := req.Body.Close()
	cn.lr.remain = unlimited
	return err == nil && !w.closeAfter
}

// readRequest waits for the next request and reads its header.
func (cn *conn) readRequest(ctx context.Context) (*http.Request, error) {
	s := cn.s
	if cn.br.Buffered() == 0 {
		if s.IdleTimeout > 0 {
			_ = cn.rwc.SetReadDeadline(time.Now().Add(s.IdleTimeout))
		}
		if _, err := cn.br.Peek(1); err != nil {
			return nil, errIdleClosed
		}
	}
	if !cn.state.CompareAndSwap(stateIdle, stateActive) {
		return nil, errIdleClosed // Shutdown closed it
	}
	if cn.bw == nil {
		cn.bw = writers.Get().(*bufio.Writer)
		cn.bw.Reset(cn.rwc)
	}
	if s.ReadHeaderTimeout > 0 {
		_ = cn.rwc.SetReadDeadline(time.Now().Add(s.ReadHeaderTimeout))
	}
	max := s.MaxHeaderBytes
	if max <= 0 {
		max = defaultMaxHeaderBytes
	}
	// Room for what the buffer holds past the header (the body's start).
	cn.lr.remain = int64(max) + bufferSize
	req, err := http.ReadRequest(cn.br)
	cn.lr.remain = unlimited
	_ = cn.rwc.SetReadDeadline(time.Time{})
	if err != nil {
		if errors.Is(err, errLimit) {
			return nil, errHeaderTooLarge
		}
		var ne net.Error
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) {
			return nil, errIdleClosed
		}
		return nil, badRequest(err.Error())
	}
	if err := validate(req); err != nil {
		return nil, err
	}
	req.RemoteAddr = cn.remote
	req.TLS = cn.tls
	req = req.WithContext(ctx)
	if req.ContentLength != 0 && req.ProtoAtLeast(1, 1) {
		if ex := req.Header["Expect"]; len(ex) > 0 {
			if len(ex) != 1 || !httpguts.HeaderValuesContainsToken(ex, "100-continue") {
				return nil, errExpectation
			}
			req.Body = &continueReader{ReadCloser: req.Body, cn: cn}
			delete(req.Header, "Expect")
		}
	}
	return req, nil
}

// validate applies the checks net/http's server makes beyond parsing
// (http.ReadRequest has already refused a repeated Host and moved Host
// into req.Host).
func validate(req *http.Request) error {
	if req.Host == "" && req.ProtoAtLeast(1, 1) && req.Method != http.MethodConnect {
		return badRequest("missing required Host header")
	}
	if req.Host != "" && !httpguts.ValidHostHeader(req.Host) {
		return badRequest("malformed Host header")
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return badRequest("invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return badRequest("invalid header value")
			}
		}
	}
	return nil
}

// A requestError is a request refused before the handler ran.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(msg string) error { return &requestError{http.StatusBadRequest, msg} }

var (
	errIdleClosed     = errors.New("h1: connection closed")
	errHeaderTooLarge = &requestError{http.StatusRequestHeaderFieldsTooLarge, "request header too large"}
	errExpectation    = &requestError{http.StatusExpectationFailed, "unsupported Expect"}
)

func errorStatus(err error) int {
	var re *requestError
	if errors.As(err, &re) {
		return re.status
	}
	return 0
}

// refuse answers a request that could not be read, then the connection
// closes, as net/http does.
func (cn *conn) refuse(status int, err error) {
	_ = cn.rwc.SetWriteDeadline(time.Now().Add(time.Second))
	msg := http.StatusText(status) + ": " + err.Error()
	cn.bw.WriteString("HTTP/1.1 ")
	cn.bw.WriteString(statusLine(status))
	cn.bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ")
	cn.bw.WriteString(itoa(int64(len(msg))))
	cn.bw.WriteString("\r\n\r\n")
	cn.bw.WriteString(msg)
	_ = cn.bw.Flush()
}

// continueReader sends "100 Continue" when the handler first reads the
// body of a request that asked for it.
type continueReader struct {
	io.ReadCloser
	cn   *conn
	sent bool
}

func (r *continueReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		r.cn.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := r.cn.bw.Flush(); err != nil {
			return 0, err
		}
	}
	return r.ReadCloser.Read(p)
}

func (r *continueReader) Close() error {
	if !r.sent {
		// The client waits for 100 or a final answer; it got the answer
		// and sends no body, so the connection cannot be reused safely.
		r.cn.state.Store(stateClosed)
		return errors.New("h1: body not requested")
	}
	return r.ReadCloser.Close()
}

func (s *Server) track(cn *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[cn] = struct{}{}
	s.active.Add(1)
	return true
}

func (s *Server) untrack(cn *conn) {
	s.mu.Lock()
	delete(s.conns, cn)
	s.mu.Unlock()
	s.active.Done()
}

// Shutdown stops taking requests: idle connections close at once, busy
// ones after their current request. When ctx ends first, the rest are
// closed under their requests.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.closeIdle()
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
			s.closeIdle()
		case <-ctx.Done():
			s.mu.Lock()
			for cn := range s.conns {
				cn.rwc.Close()
			}
			s.mu.Unlock()
			<-done
			return ctx.Err()
		}
	}
}

func (s *Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for cn := range s.conns {
		if cn.state.CompareAndSwap(stateIdle, stateClosed) {
			cn.rwc.Close()
		}
	}
}
