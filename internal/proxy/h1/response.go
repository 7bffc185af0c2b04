package h1

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// response is the http.ResponseWriter of one request. The head is written
// lazily: a handler that writes a short body and returns gets a
// Content-Length, as with net/http; one that flushes or writes more streams
// with chunked encoding.
type response struct {
	cn     *conn
	req    *http.Request
	header http.Header

	status      int
	wroteHeader bool // the final status is set
	headSent    bool
	hijacked    bool
	bodyAllowed bool
	isHEAD      bool
	chunked     bool
	closeAfter  bool
	// declared is the Content-Length the handler set, -1 if none.
	declared int64
	written  int64
	// pend holds the first bytes of a body of undeclared length until the
	// handler returns (Content-Length) or writes past it (chunked).
	pend     []byte
	trailers []string
	err      error
}

// pendMax is how much of a body of unknown length waits for the handler
// to return, as net/http's 2 KiB before it switches to chunked.
const pendMax = 2 << 10

var responses = sync.Pool{New: func() any { return &response{pend: make([]byte, 0, pendMax)} }}

func newResponse(cn *conn, req *http.Request) *response {
	w := responses.Get().(*response)
	pend := w.pend[:0]
	*w = response{cn: cn, req: req, header: make(http.Header, 8), declared: -1, pend: pend,
		isHEAD: req.Method == http.MethodHead}
	return w
}

// release returns w to its pool; a handler must not hold it past return
// (as with net/http).
func (w *response) release() {
	if w.hijacked {
		return
	}
	pend := w.pend[:0]
	*w = response{pend: pend}
	responses.Put(w)
}

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
	_ http.Hijacker       = (*response)(nil)
)

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.wroteHeader, w.status = true, code
	w.bodyAllowed = code != http.StatusNoContent && code != http.StatusNotModified && code >= 200
	if cl := w.header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.declared = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
	if tr := w.header["Trailer"]; len(tr) > 0 {
		for _, v := range tr {
			for k := range strings.SplitSeq(v, ",") {
				if k = textproto.TrimString(k); k != "" {
					w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
				}
			}
		}
	}
}

// informational writes a 1xx head (103 Early Hints and the like) at once.
func (w *response) informational(code int) {
	if w.headSent {
		return
	}
	bw := w.cn.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(statusLine(code))
	bw.WriteString("\r\n")
	writeHeader(bw, w.header)
	bw.WriteString("\r\n")
	w.noteErr(bw.Flush())
}

func (w *response) Write(b []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.bodyAllowed {
		if w.isHEAD {
			return len(b), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.isHEAD {
		return len(b), nil
	}
	if !w.headSent {
		if w.declared < 0 && len(w.pend)+len(b) <= pendMax {
			w.pend = append(w.pend, b...)
			return len(b), nil
		}
		w.sendHead(false)
	}
	return w.writeBody(b)
}

func (w *response) writeBody(b []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	var err error
	if w.declared >= 0 && w.written+int64(len(b)) > w.declared {
		b = b[:w.declared-w.written]
		err = http.ErrContentLength
	}
	if len(b) == 0 {
		return 0, err
	}
	bw := w.cn.bw
	if w.chunked {
		var hex [16]byte
		bw.Write(strconv.AppendInt(hex[:0], int64(len(b)), 16))
		bw.WriteString("\r\n")
	}
	n, werr := bw.Write(b)
	if w.chunked && werr == nil {
		_, werr = bw.WriteString("\r\n")
	}
	w.written += int64(n)
	if werr != nil {
		w.noteErr(werr)
		return n, werr
	}
	return n, err
}

func (w *response) noteErr(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
}

// sendHead writes the status line and header. final: the handler has
// returned, so a pending body's length is known.
func (w *response) sendHead(final bool) {
	w.headSent = true
	h := w.header
	delete(h, "Transfer-Encoding") // the framing is this writer's choice
	switch {
	case !w.bodyAllowed:
		if w.status == http.StatusNoContent || w.status < 200 {
			delete(h, "Content-Length")
		}
	case w.declared >= 0:
	case final && !w.isHEAD:
		w.declared = int64(len(w.pend))
		h["Content-Length"] = []string{strconv.Itoa(len(w.pend))}
	case w.isHEAD:
	case w.req.ProtoAtLeast(1, 1):
		w.chunked = true
		h["Transfer-Encoding"] = chunkedValue
	default:
		w.closeAfter = true // HTTP/1.0: the body ends with the connection
	}
	if w.status == http.StatusSwitchingProtocols {
		w.closeAfter = false
	} else if w.req.Close || w.cn.s.shutting.Load() || w.closeAfter ||
		httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		w.closeAfter = true
		h["Connection"] = closeValue
	} else if !w.req.ProtoAtLeast(1, 1) {
		h["Connection"] = keepAliveValue
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{httpDate()}
	}
	bw := w.cn.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(statusLine(w.status))
	bw.WriteString("\r\n")
	writeHeader(bw, h)
	bw.WriteString("\r\n")
	if len(w.pend) > 0 {
		pend := w.pend
		w.pend = w.pend[:0]
		if _, err := w.writeBody(pend); err != nil {
			w.noteErr(err)
		}
	}
}

var (
	chunkedValue   = []string{"chunked"}
	closeValue     = []string{"close"}
	keepAliveValue = []string{"keep-alive"}
)

// finish completes the response after the handler returned and reports
// whether the connection is still usable.
func (w *response) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead(true)
	}
	bw := w.cn.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		w.writeTrailers()
		bw.WriteString("\r\n")
	}
	if w.bodyAllowed && !w.isHEAD && w.declared >= 0 && w.written < w.declared {
		// The client waits for bytes that will never come.
		w.closeAfter = true
	}
	w.noteErr(bw.Flush())
	return w.err == nil
}

func (w *response) writeTrailers() {
	bw := w.cn.bw
	for _, k := range w.trailers {
		for _, v := range w.header[k] {
			writeField(bw, k, v)
		}
	}
	for k, vv := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vv {
				writeField(bw, http.CanonicalHeaderKey(name), v)
			}
		}
	}
}

// Flush sends what is written so far; FlushError says whether it could.
func (w *response) Flush() { _ = w.FlushError() }

func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead(false)
	}
	w.noteErr(w.cn.bw.Flush())
	return w.err
}

// Hijack hands the connection to the handler (protocol upgrades). Bytes
// the client sent past the request stay readable from the returned conn.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.headSent {
		return nil, nil, errors.New("h1: hijack after the response started")
	}
	w.hijacked = true
	cn := w.cn
	c := &PeekedConn{Conn: cn.rwc, R: cn.br}
	return c, bufio.NewReadWriter(cn.br, cn.bw), nil
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.cn.rwc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.cn.rwc.SetWriteDeadline(t) }

// PeekedConn is a connection some of whose bytes were already read into
// R (by a server's buffer, or by sniffing): reads drain R first, then the
// socket, and R is dropped once empty.
type PeekedConn struct {
	net.Conn
	R *bufio.Reader
}

func (c *PeekedConn) Read(p []byte) (int, error) {
	if c.R != nil {
		if c.R.Buffered() > 0 {
			return c.R.Read(p)
		}
		c.R = nil
	}
	return c.Conn.Read(p)
}

// CloseWrite passes a half-close through, for relays.
func (c *PeekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// writeHeader writes h's fields, dropping names that are not tokens and
// turning line breaks in values into spaces, as net/http does.
func writeHeader(bw *bufio.Writer, h http.Header) {
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
}

var lineBreaks = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ")

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	if strings.ContainsAny(v, "\r\n") {
		v = lineBreaks.Replace(v)
	}
	bw.WriteString(textproto.TrimString(v))
	bw.WriteString("\r\n")
}

// statusLines caches "200 OK" and friends.
var statusLines sync.Map // int -> string

func statusLine(code int) string {
	if v, ok := statusLines.Load(code); ok {
		return v.(string)
	}
	s := strconv.Itoa(code) + " " + http.StatusText(code)
	if http.StatusText(code) == "" {
		s = strconv.Itoa(code) + " status code " + strconv.Itoa(code)
	}
	statusLines.Store(code, s)
	return s
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The Date header changes once a second; format it once a second.
var dateCache atomic.Pointer[dateValue]

type dateValue struct {
	sec int64
	s   string
}

func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.sec == now.Unix() {
		return d.s
	}
	d := &dateValue{sec: now.Unix(), s: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.s
}
