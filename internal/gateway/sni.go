package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
)

// peekSNI reads a connection's TLS ClientHello and returns the server name
// it asks for, and a connection that replays the bytes read: what a
// passthrough relay or a terminating handshake must see from the start.
// The ClientHello is parsed by crypto/tls itself, stopped before it
// answers.
func peekSNI(c net.Conn) (string, net.Conn, error) {
	var buf bytes.Buffer
	sni, seen := "", false
	err := tls.Server(readOnlyConn{Conn: c, r: io.TeeReader(c, &buf)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni, seen = h.ServerName, true
			return nil, errHelloRead
		},
	}).Handshake()
	if !seen {
		if err == nil {
			err = errors.New("no ClientHello")
		}
		return "", nil, err
	}
	return strings.ToLower(sni), &replayConn{Conn: c, r: io.MultiReader(&buf, c)}, nil
}

var errHelloRead = errors.New("ClientHello read")

// readOnlyConn lets crypto/tls read a ClientHello without answering it.
type readOnlyConn struct {
	net.Conn
	r io.Reader
}

func (c readOnlyConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c readOnlyConn) Write(p []byte) (int, error) { return 0, io.ErrClosedPipe }

// replayConn reads what was peeked, then the connection.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite passes half-closes through to the TCP connection, so opaque
// relays can forward them.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
