package e2e

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Echo is what the HTTP backend answers: what it received and who it is.
type Echo struct {
	Backend          string      `json:"backend"`
	Method           string      `json:"method"`
	Path             string      `json:"path"`
	RawQuery         string      `json:"rawQuery"`
	Host             string      `json:"host"`
	Proto            string      `json:"proto"`
	Header           http.Header `json:"header"`
	TransferEncoding []string    `json:"transferEncoding"`
	ContentLength    int64       `json:"contentLength"`
	BodyLen          int64       `json:"bodyLen"`
	BodySHA256       string      `json:"bodySha256"`
	RemoteAddr       string      `json:"remoteAddr"`
}

// HTTPBackend is an HTTP/1.1 (and, if asked, h2c) echo server on loopback.
//
// Paths:
//
//	/healthz          200, or 503 after SetHealthy(false); not counted as a request
//	/hold             waits for Release (or 20 s), then echoes
//	/chunked          writes "first\n", flushes, waits for Release, writes "second\n"
//	/source?n=N       answers N bytes of deterministic data (see payload)
//	anything else     echoes; ?status=N answers N, ?delay=D sleeps D first
//
// Every answer carries the header x-backend: <name>.
type HTTPBackend struct {
	Name string
	Addr string
	Zone string

	Requests     atomic.Int64 // requests other than /healthz
	Conns        atomic.Int64 // TCP connections accepted
	HealthChecks atomic.Int64
	InFlight     atomic.Int64
	Held         atomic.Int64 // requests waiting in /hold or /chunked

	status    atomic.Int32 // answer every request with this status if non-zero
	failEvery atomic.Int64 // answer 500 to every n-th request if non-zero
	delay     atomic.Int64 // sleep before answering, ns
	unhealthy atomic.Bool

	mu      sync.Mutex
	release chan struct{}
	log     []Echo

	srv *http.Server
	ln  net.Listener
}

func (b *HTTPBackend) name() string { return b.Name }
func (b *HTTPBackend) addr() string { return b.Addr }
func (b *HTTPBackend) zone() string { return b.Zone }

type backendOptions struct {
	H2C  bool   // also serve HTTP/2 with prior knowledge
	Zone string // zone of the workload, for zone-aware tests
}

// NewHTTPBackend starts an echo server that stops when the test ends.
func NewHTTPBackend(t testing.TB, name string, opts ...backendOptions) *HTTPBackend {
	t.Helper()
	var o backendOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &HTTPBackend{Name: name, Addr: ln.Addr().String(), Zone: o.Zone, ln: ln, release: make(chan struct{})}
	b.srv = &http.Server{
		Handler: b,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				b.Conns.Add(1)
			}
		},
		ReadHeaderTimeout: 10 * time.Second,
		// h2spec makes the h2 server log every protocol error it catches.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	if o.H2C {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		b.srv.Protocols = &p
	}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.Kill() })
	return b
}

// SetStatus makes every request (but /healthz) answer status; 0 restores echo.
func (b *HTTPBackend) SetStatus(status int) { b.status.Store(int32(status)) }

// SetFailEvery makes every n-th request answer 500; 0 turns it off.
func (b *HTTPBackend) SetFailEvery(n int) { b.failEvery.Store(int64(n)) }

// SetDelay delays every request but /healthz.
func (b *HTTPBackend) SetDelay(d time.Duration) { b.delay.Store(int64(d)) }

// SetHealthy sets what /healthz answers.
func (b *HTTPBackend) SetHealthy(ok bool) { b.unhealthy.Store(!ok) }

// Release lets every request waiting in /hold or /chunked go on, and every
// later one pass without waiting.
func (b *HTTPBackend) Release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.release:
	default:
		close(b.release)
	}
}

// Kill closes the listener and every connection, as a crashed process would.
func (b *HTTPBackend) Kill() { b.srv.Close() }

// Log returns the requests received so far (the last 10,000).
func (b *HTTPBackend) Log() []Echo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Echo(nil), b.log...)
}

func (b *HTTPBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-backend", b.Name)
	w.Header().Set("x-extra", "backend-set") // for response header removal
	if r.URL.Path == "/healthz" {
		b.HealthChecks.Add(1)
		if b.unhealthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	n := b.Requests.Add(1)
	b.InFlight.Add(1)
	defer b.InFlight.Add(-1)

	switch r.URL.Path {
	case "/source":
		size, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, io.LimitReader(newPayload(), size))
		return
	case "/chunked":
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		b.wait(r)
		io.WriteString(w, "second\n")
		return
	case "/hold":
		b.wait(r)
	}

	h := sha256.New()
	bodyLen, _ := io.Copy(h, r.Body)
	e := Echo{
		Backend:          b.Name,
		Method:           r.Method,
		Path:             r.URL.Path,
		RawQuery:         r.URL.RawQuery,
		Host:             r.Host,
		Proto:            r.Proto,
		Header:           r.Header,
		TransferEncoding: r.TransferEncoding,
		ContentLength:    r.ContentLength,
		BodyLen:          bodyLen,
		BodySHA256:       hex.EncodeToString(h.Sum(nil)),
		RemoteAddr:       r.RemoteAddr,
	}
	b.mu.Lock()
	if len(b.log) >= 10000 {
		b.log = b.log[1:]
	}
	b.log = append(b.log, e)
	b.mu.Unlock()

	if d := time.Duration(b.delay.Load()); d > 0 {
		sleepCtx(r, d)
	}
	if d, err := time.ParseDuration(r.URL.Query().Get("delay")); err == nil {
		sleepCtx(r, d)
	}
	status := http.StatusOK
	if s := b.status.Load(); s != 0 {
		status = int(s)
	}
	if every := b.failEvery.Load(); every > 0 && n%every == 0 {
		status = http.StatusInternalServerError
	}
	if s, err := strconv.Atoi(r.URL.Query().Get("status")); err == nil {
		status = s
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

func (b *HTTPBackend) wait(r *http.Request) {
	b.Held.Add(1)
	defer b.Held.Add(-1)
	b.mu.Lock()
	ch := b.release
	b.mu.Unlock()
	select {
	case <-ch:
	case <-r.Context().Done():
	case <-time.After(20 * time.Second):
	}
}

func sleepCtx(r *http.Request, d time.Duration) {
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
}

// payload is an endless deterministic byte stream (xorshift), so large
// bodies need no memory and can be checked by hash on both sides. The
// stream is the same whatever sizes it is read in.
type payload struct {
	s    uint64
	word [8]byte
	left int // unread bytes at the end of word
}

func newPayload() *payload { return &payload{s: 0x9e3779b97f4a7c15} }

func (p *payload) next() uint64 {
	p.s ^= p.s << 13
	p.s ^= p.s >> 7
	p.s ^= p.s << 17
	return p.s
}

func (p *payload) Read(b []byte) (int, error) {
	n := copy(b, p.word[8-p.left:])
	p.left -= n
	for ; n+8 <= len(b); n += 8 {
		binary.LittleEndian.PutUint64(b[n:], p.next())
	}
	if n < len(b) {
		binary.LittleEndian.PutUint64(p.word[:], p.next())
		k := copy(b[n:], p.word[:])
		p.left = 8 - k
		n += k
	}
	return n, nil
}

// payloadSHA256 is the hex SHA-256 of the first n bytes of payload.
func payloadSHA256(n int64) string {
	h := sha256.New()
	io.Copy(h, io.LimitReader(newPayload(), n))
	return hex.EncodeToString(h.Sum(nil))
}
