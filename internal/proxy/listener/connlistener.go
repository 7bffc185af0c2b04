package listener

import (
	"net"
	"sync"
)

// ConnListener hands connections accepted (sniffed, or TLS-terminated)
// elsewhere to an http.Server, which serves it as its listener.
type ConnListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

// NewConnListener makes a listener that reports addr as its address.
func NewConnListener(addr net.Addr) *ConnListener {
	return &ConnListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// Push hands c to the server; false once the listener is closed.
func (l *ConnListener) Push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *ConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *ConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *ConnListener) Addr() net.Addr { return l.addr }
