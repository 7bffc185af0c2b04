package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// acceptEach runs handle for every connection to a new loopback listener,
// and waits for the handlers when the test ends.
func acceptEach(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); handle(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// serve runs s on a loopback listener, one ServeConn per connection.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	addr := acceptEach(t, func(c net.Conn) { s.ServeConn(context.Background(), c) })
	// Registered last, so it runs first: idle connections close before
	// acceptEach waits for their handlers.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return addr
}

// raw sends req as bytes on a new connection and returns all the server
// wrote until it closed the connection or went quiet.
func raw(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestServerKeepAliveAndFraming(t *testing.T) {
	var remotes sync.Map
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remotes.Store(r.RemoteAddr, true)
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/short":
			fmt.Fprintf(w, "got %d bytes for %s", len(body), r.Host)
		case "/long":
			w.Write([]byte(strings.Repeat("y", 10000)))
		case "/declared":
			w.Header().Set("Content-Length", "5")
			w.Write([]byte("hello"))
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		}
	})})
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	for i := 0; i < 5; i++ {
		resp, err := c.Post("http://"+addr+"/short", "text/plain", strings.NewReader("abc"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "got 3 bytes for "+addr || resp.ContentLength != int64(len(b)) {
			t.Fatalf("short: %q, Content-Length %d", b, resp.ContentLength)
		}
		if resp.Header.Get("Date") == "" {
			t.Fatal("no Date header")
		}
	}
	resp, err := c.Get("http://" + addr + "/long")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) != 10000 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("long: %d bytes, transfer-encoding %v", len(b), resp.TransferEncoding)
	}
	for _, p := range []string{"/declared", "/empty"} {
		resp, err := c.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	n := 0
	remotes.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("requests came on %d connections, want 1 (keep-alive)", n)
	}
	out := raw(t, addr, "HEAD /declared HTTP/1.1\r\nHost: x\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.Contains(out, "Content-Length: 5\r\n") || strings.HasSuffix(out, "hello") {
		t.Fatalf("HEAD: %q", out)
	}
	out = raw(t, addr, "GET /short HTTP/1.0\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.Contains(out, "Connection: close\r\n") {
		t.Fatalf("HTTP/1.0: %q", out)
	}
}

func TestServerStreamsFlushedChunks(t *testing.T) {
	release := make(chan struct{})
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
		w.Header().Set("X-Sum", "2")
	})})
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first chunk before the handler finished: %q %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if string(rest) != "second\n" || resp.Trailer.Get("X-Sum") != "2" {
		t.Fatalf("rest %q, trailer %v", rest, resp.Trailer)
	}
}

// Requests a strict server must refuse, each with the status net/http's
// own server gives, and without running the handler.
func TestServerRefusesMalformed(t *testing.T) {
	ran := 0
	var mu sync.Mutex
	addr := serve(t, &Server{MaxHeaderBytes: 4096, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ran++
		mu.Unlock()
	})})
	cases := map[string]struct{ req, status string }{
		"no Host":               {"GET / HTTP/1.1\r\n\r\n", "400"},
		"two Hosts":             {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"},
		"bad Host":              {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "400"},
		"two Content-Lengths":   {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "400"},
		"unknown TE":            {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "400"},
		"space before colon":    {"GET / HTTP/1.1\r\nHost: a\r\nFoo : bar\r\n\r\n", "400"},
		"header too large":      {"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 20000) + "\r\n\r\n", "431"},
		"bad request line":      {"GET /\r\nHost: a\r\n\r\n", "400"},
		"negative length":       {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "400"},
		"unsupported Expect":    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: 200-ok\r\n\r\nx", "417"},
		"control char in value": {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", "400"},
	}
	for name, c := range cases {
		out := raw(t, addr, c.req)
		if !strings.HasPrefix(out, "HTTP/1.1 "+c.status+" ") {
			t.Errorf("%s: got %q, want status %s", name, out, c.status)
		}
	}
	if ran != 0 {
		t.Fatalf("the handler ran %d times for malformed requests", ran)
	}
}

// A chunked body with a bad chunk never reaches the next request: the
// handler sees an error and the connection closes.
func TestServerBadChunkClosesConnection(t *testing.T) {
	var bodyErr error
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, bodyErr = io.ReadAll(r.Body)
	})})
	out := raw(t, addr, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
	if bodyErr == nil {
		t.Fatal("a bad chunk size read without error")
	}
	if strings.Count(out, "HTTP/1.1 ") > 1 {
		t.Fatalf("a request after a bad chunk was served: %q", out)
	}
}

// With both Content-Length and chunked Transfer-Encoding, the chunked
// framing wins and Content-Length is dropped (RFC 9112 6.3), so what is
// forwarded can only be read one way.
func TestServerTransferEncodingOverridesLength(t *testing.T) {
	type seen struct {
		body string
		cl   int64
		hdr  []string
	}
	got := make(chan seen, 2)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{string(b), r.ContentLength, r.Header["Content-Length"]}
	})})
	raw(t, addr, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	s := <-got
	if s.body != "abc" || s.cl != -1 || s.hdr != nil {
		t.Fatalf("body %q, length %d, Content-Length header %v", s.body, s.cl, s.hdr)
	}
}

func TestServerExpectContinue(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("before the body: %q %v", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "body")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "body" {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
}

func TestServerShutdownDrains(t *testing.T) {
	started := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			time.Sleep(300 * time.Millisecond)
		}
		io.WriteString(w, "done")
	})}
	addr := serve(t, s)
	// An idle keep-alive connection, and one busy with a slow request.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v", err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		result <- string(b)
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := <-result; got != "done" {
		t.Fatalf("request in flight during shutdown: %q", got)
	}
	_ = idle.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection after shutdown: %v, want EOF", err)
	}
}

func TestServerTLSState(t *testing.T) {
	cert := httptest.NewTLSServer(http.NotFoundHandler())
	cfg := cert.TLS.Clone()
	cert.Close()
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || !r.TLS.HandshakeComplete {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, r.TLS.NegotiatedProtocol)
	})}
	addr := acceptEach(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		if tc.Handshake() == nil {
			s.ServeConn(context.Background(), tc)
		}
		tc.Close()
	})
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	c.CloseIdleConnections() // lets ServeConn return before the test ends
	if resp.StatusCode != 200 || string(b) != "http/1.1" {
		t.Fatalf("%d %q: the handler did not see the connection's TLS state", resp.StatusCode, b)
	}
}
