package listener

import (
	"bufio"
	"bytes"
	"net"
	"time"

	"weft.dev/weft/internal/proxy/h1"
)

// Sniffed protocols.
const (
	sniffHTTP1 = "http1"
	sniffHTTP2 = "h2"
	sniffTCP   = "tcp"
)

// sniffTimeout bounds the wait for a client's first bytes. A protocol where
// the server speaks first (SMTP, MySQL) sends nothing, so after this wait
// the connection is treated as opaque TCP. Declare appProtocol: tcp on the
// Service port to skip the wait.
const sniffTimeout = 200 * time.Millisecond

var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

var httpMethods = [][]byte{
	[]byte("GET "), []byte("POST "), []byte("PUT "), []byte("DELETE "), []byte("HEAD "),
	[]byte("OPTIONS "), []byte("PATCH "), []byte("TRACE "), []byte("CONNECT "),
}

// sniff reads the connection's first bytes without consuming them and
// guesses its protocol. The returned conn replays what was read.
func sniff(c net.Conn) (string, net.Conn) {
	br := bufio.NewReaderSize(c, 1024)
	_ = c.SetReadDeadline(time.Now().Add(sniffTimeout))
	proto := sniffTCP
	for n := 1; n <= len(h2Preface); n++ {
		b, err := br.Peek(n)
		if err != nil {
			break
		}
		if bytes.Equal(b, h2Preface) {
			proto = sniffHTTP2
			break
		}
		if hasMethod(b) {
			proto = sniffHTTP1
			break
		}
		if !prefixOfAny(b) {
			break
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	return proto, &h1.PeekedConn{Conn: c, R: br}
}

func hasMethod(b []byte) bool {
	for _, m := range httpMethods {
		if bytes.HasPrefix(b, m) {
			return true
		}
	}
	return false
}

// prefixOfAny says whether b could still become a method or the preface, so
// sniffing stops as soon as the bytes rule out every known protocol.
func prefixOfAny(b []byte) bool {
	if bytes.HasPrefix(h2Preface, b) {
		return true
	}
	for _, m := range httpMethods {
		if bytes.HasPrefix(m, b) {
			return true
		}
	}
	return false
}

// readBuffered puts a read buffer under an HTTP/2 connection. net/http's
// HTTP/2 server reads frames straight from the connection, a 9-byte header
// and then the payload, so each frame costs two read system calls; through
// the buffer one read brings in every frame that has arrived.
func readBuffered(c net.Conn) net.Conn {
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 4<<10)}
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
