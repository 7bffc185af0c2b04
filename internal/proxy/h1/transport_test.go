package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newTransport(fallback http.RoundTripper) *Transport {
	d := &net.Dialer{Timeout: time.Second}
	return &Transport{Dial: d.DialContext, Fallback: fallback, MaxIdlePerHost: 4, IdleTimeout: time.Minute}
}

func get(t *testing.T, tr http.RoundTripper, ctx context.Context, method, url string, body io.Reader) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// countingServer is an httptest server that counts the connections it
// accepted.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	conns := new(atomic.Int32)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, conns
}

// answerOnceThenClose serves one request per connection and closes it
// without saying so (no Connection: close), like a server whose idle
// timeout just fired.
func answerOnceThenClose(c net.Conn) {
	br := bufio.NewReader(c)
	if req, err := http.ReadRequest(br); err == nil {
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}
	c.Close()
}

func TestTransportReusesConnections(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-T")
		w.Write([]byte(r.Method + " " + string(b)))
		if r.URL.Path == "/stream" {
			w.(http.Flusher).Flush()
			w.Write([]byte(" more"))
			w.Header().Set("X-T", "t")
		}
	})
	tr := newTransport(nil)
	defer tr.CloseIdleConnections()
	for i := 0; i < 10; i++ {
		_, b, err := get(t, tr, context.Background(), "POST", srv.URL+"/", strings.NewReader("hi"))
		if err != nil || b != "POST hi" {
			t.Fatalf("request %d: %q %v", i, b, err)
		}
	}
	resp, b, err := get(t, tr, context.Background(), "GET", srv.URL+"/stream", nil)
	if err != nil || b != "GET  more" || resp.Trailer.Get("X-T") != "t" {
		t.Fatalf("chunked: %q %v trailer %v", b, err, resp.Trailer)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 11 sequential requests, want 1", n)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, list := range tr.idle {
		for _, pc := range list {
			if pc.br != nil || pc.bw != nil {
				t.Fatal("an idle pooled connection holds its buffers")
			}
		}
	}
}

// A server that answers once and then closes its end: the next GET on the
// pooled connection fails before any response and is sent again on a new
// connection; a POST is not (its effect is unknown).
func TestTransportStaleConnection(t *testing.T) {
	var accepted atomic.Int32
	addr := acceptEach(t, func(c net.Conn) {
		accepted.Add(1)
		answerOnceThenClose(c)
	})
	tr := newTransport(nil)
	defer tr.CloseIdleConnections()
	url := "http://" + addr + "/"
	for i := 0; i < 3; i++ {
		if _, b, err := get(t, tr, context.Background(), "GET", url, nil); err != nil || b != "ok" {
			t.Fatalf("GET %d: %q %v", i, b, err)
		}
		time.Sleep(20 * time.Millisecond) // let the close arrive
	}
	// The pooled connection is closed by now: a POST is not sent again.
	if _, _, err := get(t, tr, context.Background(), "POST", url, strings.NewReader("x")); !errors.Is(err, errNothingRead) {
		t.Fatalf("POST on a connection the server closed: %v, want %v", err, errNothingRead)
	}
	if _, b, err := get(t, tr, context.Background(), "POST", url, strings.NewReader("x")); err != nil || b != "ok" {
		t.Fatalf("POST on a fresh connection: %q %v", b, err)
	}
	if accepted.Load() < 4 {
		t.Fatalf("%d connections accepted; a stale connection was reused without a retry", accepted.Load())
	}
}

// A connection idle past the probe age is checked before reuse, so even a
// POST gets a fresh connection when the server closed the old one.
func TestTransportProbesLongIdleConnections(t *testing.T) {
	addr := acceptEach(t, answerOnceThenClose)
	tr := newTransport(nil)
	defer tr.CloseIdleConnections()
	url := "http://" + addr + "/"
	if _, _, err := get(t, tr, context.Background(), "POST", url, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(probeAfter + 100*time.Millisecond)
	if _, b, err := get(t, tr, context.Background(), "POST", url, strings.NewReader("x")); err != nil || b != "ok" {
		t.Fatalf("POST after a long idle: %q %v", b, err)
	}
}

func TestTransportCancelClosesConnection(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		io.WriteString(w, "fast")
	})
	tr := newTransport(nil)
	defer tr.CloseIdleConnections()
	cause := errors.New("per-try timeout")
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(100*time.Millisecond, func() { cancel(cause) })
	start := time.Now()
	_, _, err := get(t, tr, ctx, "GET", srv.URL+"/slow", nil)
	if !errors.Is(err, cause) || time.Since(start) > 2*time.Second {
		t.Fatalf("cancelled request: %v after %s, want the cause promptly", err, time.Since(start))
	}
	if _, b, err := get(t, tr, context.Background(), "GET", srv.URL+"/", nil); err != nil || b != "fast" {
		t.Fatalf("after cancel: %q %v", b, err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the cancelled one is not reused)", n)
	}
}

type countingRT struct{ n atomic.Int32 }

func (c *countingRT) RoundTrip(*http.Request) (*http.Response, error) {
	c.n.Add(1)
	return nil, errors.New("fallback")
}

func TestTransportFallback(t *testing.T) {
	fb := &countingRT{}
	tr := newTransport(fb)
	big := strings.NewReader(strings.Repeat("x", MaxBody+1))
	for _, req := range []*http.Request{
		mustReq(t, "GET", "http://127.0.0.1:1/", nil, "Upgrade", "websocket"),
		mustReq(t, "POST", "http://127.0.0.1:1/", big, "", ""),
		mustReq(t, "POST", "http://127.0.0.1:1/", io.NopCloser(strings.NewReader("unknown length")), "", ""),
	} {
		if _, err := tr.RoundTrip(req); err == nil || err.Error() != "fallback" {
			t.Fatalf("%s %v: %v, want the fallback", req.Method, req.Header, err)
		}
	}
	if fb.n.Load() != 3 {
		t.Fatalf("fallback used %d times, want 3", fb.n.Load())
	}
}

func mustReq(t *testing.T, method, url string, body io.Reader, hk, hv string) *http.Request {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := body.(io.ReadCloser); ok && req.ContentLength == 0 {
		req.ContentLength = -1
	}
	if hk != "" {
		req.Header.Set(hk, hv)
	}
	return req
}
