package h1

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzServeConn feeds arbitrary bytes to a connection: whatever arrives,
// the server answers or closes, and never panics or hangs.
func FuzzServeConn(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
		"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	s := &Server{ReadHeaderTimeout: time.Second, IdleTimeout: time.Second, MaxHeaderBytes: 8 << 10,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			switch {
			case strings.HasPrefix(r.URL.Path, "/x"):
				w.Header().Set("Content-Length", "2")
				w.Write([]byte("ok"))
			case len(b)%2 == 1:
				w.(http.Flusher).Flush()
				w.Write(b)
			default:
				w.Write(b)
			}
		})}
	addr := acceptEach(f, func(c net.Conn) { s.ServeConn(context.Background(), c) })
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			_, _ = c.Write(in)
			_ = c.(*net.TCPConn).CloseWrite() // the client is done: EOF
		}()
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("the server neither answered nor closed within 3 s (%v), input %q", err, in)
		}
	})
}
