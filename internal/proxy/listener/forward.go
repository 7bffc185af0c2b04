package listener

import (
	"net"
	"net/http"
	"strconv"

	"weft.dev/weft/internal/proxy"
)

// forwardProxy serves HTTP_PROXY clients: absolute-form requests are routed
// by their authority; CONNECT opens a tunnel to a service port, inside which
// HTTP is still routed per request and anything else is relayed as TCP.
type forwardProxy struct {
	s    *Set
	mesh http.Handler
}

func (f *forwardProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		f.mesh.ServeHTTP(w, r)
		return
	}
	tg, err := parseAuthority(r.Host)
	if err != nil {
		http.Error(w, "bad CONNECT target: "+err.Error(), http.StatusBadRequest)
		return
	}
	if _, ok := f.s.p.Protocol(tg); !ok && !f.s.p.Learn(r.Context(), tg.Host) {
		w.Header().Set(proxy.HeaderError, proxy.ReasonUnknownService)
		http.Error(w, "no service known as "+strconv.Quote(r.Host), http.StatusNotFound)
		return
	}
	if r.ProtoMajor != 1 {
		// An HTTP/2 CONNECT stream is not a net.Conn; tunnels need HTTP/1.
		http.Error(w, "CONNECT over HTTP/2 is not supported; use HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot take over connection: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		conn.Close()
		return
	}
	c := net.Conn(conn)
	if n := brw.Reader.Buffered(); n > 0 {
		// The client may have sent tunnel bytes right behind its CONNECT.
		b, _ := brw.Reader.Peek(n)
		c = &prefixConn{Conn: conn, prefix: append([]byte(nil), b...)}
	}
	f.s.dispatch(c, tg)
}

// parseAuthority turns "name[.ns]:port" into a target.
func parseAuthority(hostport string) (*proxy.Target, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return nil, &net.AddrError{Err: "invalid port", Addr: hostport}
	}
	return &proxy.Target{Host: host, Port: int32(n)}, nil
}

// prefixConn replays bytes read before the tunnel started.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
