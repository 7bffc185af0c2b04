package proxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	"weft.dev/weft/internal/proxy/h1"
)

// App is one port of the local application, as the sidecar was told with
// --app: the inbound side delivers traffic for Port to Addr.
type App struct {
	Name string
	Port int32
	Addr string
}

type appKey struct{}

// Peer is the verified caller of an inbound connection.
type Peer struct {
	// ID is the caller's SPIFFE ID.
	ID string
}

type peerKey struct{}

// WithPeer records the verified caller of a connection's requests (nil:
// plaintext, unauthenticated).
func WithPeer(ctx context.Context, p *Peer) context.Context {
	if p == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom returns the verified caller, or nil.
func PeerFrom(ctx context.Context) *Peer {
	p, _ := ctx.Value(peerKey{}).(*Peer)
	return p
}

// HeaderClientCert tells the app who called, as Envoy and Istio do: the
// proxy removes any value a caller sent and sets its own from the verified
// peer certificate.
const HeaderClientCert = "X-Forwarded-Client-Cert"

// WithApp binds the requests of a context (one inbound connection) to the
// local app port they are for.
func WithApp(ctx context.Context, a *App) context.Context {
	return context.WithValue(ctx, appKey{}, a)
}

// AppFrom returns the app a context is bound to, or nil.
func AppFrom(ctx context.Context) *App {
	a, _ := ctx.Value(appKey{}).(*App)
	return a
}

// inbound forwards requests that other sidecars sent to the local app. It
// has its own connection pools: the app is on this host and is dialled
// directly, never through a sidecar.
type inbound struct {
	rp  *httputil.ReverseProxy
	h1  *h1.Transport
	h2c *http.Transport
}

func newInbound(p *Proxy) *inbound {
	in := &inbound{}
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	mk := func(h2 bool) *http.Transport {
		t := &http.Transport{
			DialContext:         dialer.DialContext,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     idleConnTimeout,
			DisableCompression:  true,
			Protocols:           new(http.Protocols),
		}
		if h2 {
			t.Protocols.SetUnencryptedHTTP2(true)
		} else {
			t.Protocols.SetHTTP1(true)
		}
		return t
	}
	in.h1, in.h2c = newH1(dialer.DialContext, mk(false)), mk(true)
	in.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = AppFrom(pr.In.Context()).Addr
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del(HeaderClientCert)
			if peer := PeerFrom(pr.In.Context()); peer != nil {
				v := "URI=" + peer.ID
				if m := p.Identity(); m != nil {
					v = "By=" + m.Source().ID().String() + ";" + v
				}
				pr.Out.Header.Set(HeaderClientCert, v)
			}
			if _, ok := pr.Out.Header["User-Agent"]; !ok {
				pr.Out.Header["User-Agent"] = nil
			}
		},
		Transport:     in,
		FlushInterval: 0, // see the outbound ReverseProxy in proxy.go
		ModifyResponse: func(resp *http.Response) error {
			grpcTrailersOnly(resp)
			return nil
		},
		BufferPool: bufferPool{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return
			}
			p.log.Debug("inbound: app request failed", "app", AppFrom(r.Context()).Addr, "err", err)
			answer(w, r, http.StatusBadGateway, ReasonUpstreamError, "local app: "+err.Error())
		},
	}
	return in
}

// RoundTrip speaks to the app what the caller spoke to us.
func (in *inbound) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.ProtoMajor == 2 {
		return in.h2c.RoundTrip(r)
	}
	return in.h1.RoundTrip(r)
}

// InboundHandler serves HTTP that arrived from other sidecars, for the app
// bound to the request context (WithApp).
func (p *Proxy) InboundHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if x := p.beginInbound(w, r); x != nil {
			defer x.End()
			w = x
		}
		app := AppFrom(r.Context())
		if app == nil {
			answer(w, r, http.StatusNotFound, ReasonUnknownService, "no local app for this connection")
			return
		}
		if t := p.table.Load(); t != nil {
			if by := t.authz.decide(callerOf(PeerFrom(r.Context())), app.Port, r); by != "" {
				answer(w, r, http.StatusForbidden, ReasonDenied, "denied by "+by)
				return
			}
		}
		p.in.rp.ServeHTTP(w, r)
	})
}

// ServeInboundTCP relays an opaque connection from another sidecar to the
// app, and closes conn when done.
func (p *Proxy) ServeInboundTCP(conn net.Conn, a *App, peer *Peer) {
	defer conn.Close()
	tc := p.beginInboundTCP(conn, peer)
	defer tc.End()
	if t := p.table.Load(); t != nil {
		if by := t.authz.decide(callerOf(peer), a.Port, nil); by != "" {
			p.log.Debug("inbound: connection denied", "app", a.Addr, "by", by)
			tc.Flag(ReasonDenied)
			return
		}
	}
	d := net.Dialer{Timeout: dialTimeout}
	up, err := d.Dial("tcp", a.Addr)
	if err != nil {
		p.log.Debug("inbound: app connect failed", "app", a.Addr, "err", err)
		tc.Flag(ReasonUpstreamError)
		return
	}
	tc.Connected("", a.Addr)
	tc.Bytes(relay(conn, up))
}

// SetInboundPermissive forces the inbound's mTLS mode, over what the
// config's PeerAuthentication says: on accepts plaintext beside mTLS.
func (p *Proxy) SetInboundPermissive(on bool) {
	p.mtlsForced.Store(true)
	p.permissive.Store(on)
}

// InboundPermissive reports whether the inbound accepts plaintext: the
// forced mode, else the config's PeerAuthentication (STRICT by default).
func (p *Proxy) InboundPermissive() bool {
	if p.mtlsForced.Load() {
		return p.permissive.Load()
	}
	t := p.table.Load()
	return t != nil && t.cfg.Inbound != nil && t.cfg.Inbound.MTLS == "PERMISSIVE"
}
