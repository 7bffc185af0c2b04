package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Transport sends HTTP/1.1 requests on pooled keep-alive connections, on
// the caller's goroutine: it writes the request, reads the response head,
// and hands back a body that returns the connection to the pool at its
// end. Requests it does not carry itself go to Fallback: protocol upgrades
// (the connection becomes the body) and bodies of unknown or large size,
// which must be sent while the response is read.
type Transport struct {
	Dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	Fallback http.RoundTripper
	// MaxIdlePerHost caps idle connections per address; IdleTimeout closes
	// a connection idle for longer.
	MaxIdlePerHost int
	IdleTimeout    time.Duration

	mu      sync.Mutex
	idle    map[string][]*pconn
	nidle   int
	sweeper *time.Timer
}

// MaxBody is the largest request body sent without Fallback: a body this
// small fits the socket buffers, so writing it before reading the answer
// cannot stall on a server that answers before reading it.
const MaxBody = 64 << 10

// probeAfter is how long a connection must have been idle before it is
// checked for a close from the server before reuse.
const probeAfter = time.Second

type pconn struct {
	t         *Transport
	key       string
	conn      net.Conn
	cr        countingReader
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	reused    bool
}

func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Scheme != "http" || req.Method == http.MethodConnect ||
		req.ContentLength < 0 || req.ContentLength > MaxBody ||
		(req.ContentLength == 0 && req.Body != nil && req.Body != http.NoBody) ||
		httpguts.HeaderValuesContainsToken(req.Header["Connection"], "upgrade") || req.Header.Get("Upgrade") != "" {
		return t.Fallback.RoundTrip(req)
	}
	ctx := req.Context()
	addr := req.URL.Host
	for {
		pc, err := t.get(ctx, addr)
		if err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
		resp, err := pc.roundTrip(req)
		if err == nil {
			if req.Body != nil {
				req.Body.Close() // sent in full; RoundTrip owns it
			}
			return resp, nil
		}
		// A reused connection may have been closed by the server just as
		// the request went out; try a fresh one when the request can be
		// sent again, as net/http does.
		if pc.reused && ctx.Err() == nil && errors.Is(err, errNothingRead) && replayable(req) {
			continue
		}
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
}

// replayable: no body to lose, and a method a server must accept twice.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return len(req.Header["Idempotency-Key"]) > 0 || len(req.Header["X-Idempotency-Key"]) > 0
}

var errNothingRead = errors.New("connection closed before the response began")

func (pc *pconn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// A cancelled request unblocks its reads and writes by an expired
	// deadline; the connection is then closed, never reused.
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		pc.conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		}
		return nil, err
	}
	read := pc.cr.n
	err := writeRequest(pc.bw, req)
	if err == nil {
		err = pc.bw.Flush()
	}
	if err != nil {
		// The server closed a reused connection before the request.
		return fail(fmt.Errorf("%w: %v", errNothingRead, err))
	}
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			if pc.cr.n == read {
				err = fmt.Errorf("%w: %v", errNothingRead, err)
			}
			return fail(err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 100 Continue and other interim answers: the final one follows.
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// Only Fallback sends upgrades; a 101 here is a broken server.
		return fail(errors.New("unexpected 101 Switching Protocols"))
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody || resp.Body == nil {
		if !stop() {
			pc.conn.Close()
		} else if keep {
			pc.t.put(pc)
		} else {
			pc.conn.Close()
		}
		resp.Body = http.NoBody
		return resp, nil
	}
	resp.Body = &bodyEOF{rc: resp.Body, pc: pc, stop: stop, keep: keep}
	return resp, nil
}

var aLongTimeAgo = time.Unix(1, 0)

// writeRequest writes req's head and body (of known length, at most
// MaxBody) into bw. Unlike Request.Write it never flushes the head on its
// own, so a request goes out in one write. It does not close req.Body:
// the caller's retries may send it again.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vv := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	n := req.ContentLength
	if n > 0 || n == 0 && (method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch) {
		bw.WriteString("Content-Length: ")
		bw.WriteString(itoa(n))
		bw.WriteString("\r\n")
	}
	_, err := bw.WriteString("\r\n")
	if err != nil || n <= 0 || req.Body == nil {
		return err
	}
	copied, err := io.CopyN(bw, req.Body, n)
	if err != nil {
		if copied < n && errors.Is(err, io.EOF) {
			return fmt.Errorf("request body: %d of %d bytes: %w", copied, n, io.ErrUnexpectedEOF)
		}
		return err
	}
	return nil
}

// bodyEOF returns the connection to the pool when its response body has
// been read to the end, and closes it when the body is abandoned.
type bodyEOF struct {
	rc   io.ReadCloser
	pc   *pconn
	stop func() bool
	keep bool
	done bool
}

func (b *bodyEOF) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err != nil {
		b.end(err == io.EOF)
	}
	return n, err
}

func (b *bodyEOF) Close() error {
	if !b.done {
		b.end(false)
	}
	return nil
}

func (b *bodyEOF) end(complete bool) {
	b.done = true
	if b.stop() && complete && b.keep {
		b.pc.t.put(b.pc)
		return
	}
	b.pc.conn.Close()
}

// get returns an idle connection to addr, or dials one.
func (t *Transport) get(ctx context.Context, addr string) (*pconn, error) {
	now := time.Now()
	for {
		t.mu.Lock()
		list := t.idle[addr]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[addr] = list[:len(list)-1]
		t.nidle--
		t.mu.Unlock()
		idle := now.Sub(pc.idleSince)
		if t.IdleTimeout > 0 && idle > t.IdleTimeout || idle > probeAfter && !alive(pc.conn) {
			pc.conn.Close()
			continue
		}
		pc.reused = true
		pc.takeBuffers()
		return pc, nil
	}
	c, err := t.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	pc := &pconn{t: t, key: addr, conn: c, cr: countingReader{c: c}}
	pc.takeBuffers()
	return pc, nil
}

// An idle pooled connection has no reader waiting on it, so it holds no
// buffers: they go back to the pools shared with the server side and come
// back on reuse. A thousand idle upstream connections then cost their
// sockets, not 8 MB of buffers.
func (pc *pconn) takeBuffers() {
	pc.br = readers.Get().(*bufio.Reader)
	pc.br.Reset(&pc.cr)
	pc.bw = writers.Get().(*bufio.Writer)
	pc.bw.Reset(pc.conn)
}

func (pc *pconn) releaseBuffers() {
	pc.br.Reset(nil)
	readers.Put(pc.br)
	pc.bw.Reset(nil)
	writers.Put(pc.bw)
	pc.br, pc.bw = nil, nil
}

// countingReader counts what a connection has delivered, to tell a
// response that never began from one cut short.
type countingReader struct {
	c net.Conn
	n int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.c.Read(p)
	r.n += int64(n)
	return n, err
}

func (t *Transport) put(pc *pconn) {
	if pc.br.Buffered() > 0 {
		// Bytes past the response: the server is confused; do not reuse.
		pc.conn.Close()
		return
	}
	pc.releaseBuffers()
	pc.idleSince = time.Now()
	t.mu.Lock()
	if t.idle == nil {
		t.idle = map[string][]*pconn{}
	}
	max := t.MaxIdlePerHost
	if max <= 0 {
		max = 64
	}
	list := t.idle[pc.key]
	if len(list) >= max {
		t.mu.Unlock()
		pc.conn.Close()
		return
	}
	t.idle[pc.key] = append(list, pc)
	t.nidle++
	if t.sweeper == nil && t.IdleTimeout > 0 {
		t.sweeper = time.AfterFunc(t.IdleTimeout, t.sweep)
	}
	t.mu.Unlock()
}

// sweep closes connections idle past IdleTimeout; it runs while any
// connection is idle.
func (t *Transport) sweep() {
	cutoff := time.Now().Add(-t.IdleTimeout)
	var stale []*pconn
	t.mu.Lock()
	for k, list := range t.idle {
		keep := list[:0]
		for _, pc := range list {
			if pc.idleSince.Before(cutoff) {
				stale = append(stale, pc)
			} else {
				keep = append(keep, pc)
			}
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(t.idle, k)
		} else {
			t.idle[k] = keep
		}
	}
	t.nidle -= len(stale)
	if t.nidle > 0 {
		t.sweeper.Reset(t.IdleTimeout / 2)
	} else {
		t.sweeper = nil
	}
	t.mu.Unlock()
	for _, pc := range stale {
		pc.conn.Close()
	}
}

// CloseIdleConnections closes every idle connection, and Fallback's.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.nidle = nil, 0
	t.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.conn.Close()
		}
	}
	if ci, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// alive peeks at an idle connection's socket without blocking: a server
// that closed it (or sent anything unasked, like a TLS close alert) has
// made it unusable.
func alive(c net.Conn) bool {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = true
	_ = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0:
			ok = false // unasked bytes
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		default:
			ok = false // 0 bytes: closed; or an error
		}
		return true
	})
	return ok
}
