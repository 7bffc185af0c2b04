package proxy

import (
	"context"
	"net"
	"net/http"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy/h1"
)

// transports are the connection pools to upstream endpoints, one per wire
// protocol. They are shared by every cluster and survive config reloads, so
// a reload never drops idle upstream connections.
type transports struct {
	h1     *h1.Transport
	h2c    *http.Transport
	dialer *endpointDialer
}

const (
	dialTimeout     = 2 * time.Second
	idleConnTimeout = 90 * time.Second
)

func newTransports() *transports {
	dialer := newEndpointDialer()
	base := func() *http.Transport {
		return &http.Transport{
			Proxy:               nil, // never follow HTTP_PROXY: we are the proxy
			DialContext:         dialer.DialContext,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     idleConnTimeout,
			DisableCompression:  true, // pass bodies through untouched
			WriteBufferSize:     16 * 1024,
			ReadBufferSize:      16 * 1024,
		}
	}
	h1x := base()
	h1x.Protocols = new(http.Protocols)
	h1x.Protocols.SetHTTP1(true)
	h2c := base()
	h2c.Protocols = new(http.Protocols)
	h2c.Protocols.SetUnencryptedHTTP2(true)
	// Prior-knowledge h2c multiplexes; one connection per endpoint suffices
	// until the server's stream limit.
	h2c.MaxIdleConnsPerHost = 4
	return &transports{h1: newH1(dialer.DialContext, h1x), h2c: h2c, dialer: dialer}
}

// forProtocol picks the transport for a cluster's protocol; a sniffed port
// ("") speaks upstream what the caller spoke to us.
func (t *transports) forProtocol(proto string, inboundMajor int) http.RoundTripper {
	switch proto {
	case compile.ProtocolGRPC, compile.ProtocolH2C:
		return t.h2c
	case compile.ProtocolHTTP, compile.ProtocolWebSocket:
		return t.h1
	}
	if inboundMajor == 2 {
		return t.h2c
	}
	return t.h1
}

func (t *transports) close() {
	t.h1.CloseIdleConnections()
	t.h2c.CloseIdleConnections()
}

// dial opens a TCP connection to an endpoint for opaque traffic.
func (t *transports) dial(ctx context.Context, addr string) (net.Conn, error) {
	return t.dialer.DialContext(ctx, "tcp", addr)
}

// newH1 is the HTTP/1.1 pool: requests are sent on the caller's goroutine
// (internal/proxy/h1), upgrades and streamed uploads through fallback.
func newH1(dial func(context.Context, string, string) (net.Conn, error), fallback *http.Transport) *h1.Transport {
	return &h1.Transport{
		Dial:           dial,
		Fallback:       fallback,
		MaxIdlePerHost: fallback.MaxIdleConnsPerHost,
		IdleTimeout:    idleConnTimeout,
	}
}
