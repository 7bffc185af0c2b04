// Package gateway is weft's edge: `weft gateway` runs the proxy engine
// (internal/proxy) bound to a Gateway API Gateway resource. It listens on
// the Gateway's listener ports, terminates TLS choosing the certificate by
// SNI (or passes TLS through by SNI), picks the listener by host, matches
// the listener's routes with the engine, runs the edge stages (CORS, rate
// limits, JWT, body limit) and hands the request to the engine, which
// calls the mesh services as a sidecar does.
//
// Its config is a compile.Gateway (internal/compile), from a Source: a file
// today (FileSource), the control plane later. State that must outlive a
// reload (rate limit buckets, JWKS caches, open listeners) is kept by key
// and reused when the new config asks for the same thing.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy"
)

// Options configure a Gateway.
type Options struct {
	// Proxy is the engine requests are forwarded with.
	Proxy *proxy.Proxy
	// Bind is the host the listener ports are opened on ("" all).
	Bind   string
	Logger *slog.Logger
	// JWKSClient fetches jwksURI key sets; nil uses a client with a 5 s
	// timeout.
	JWKSClient *http.Client
}

// Gateway serves one compile.Gateway at a time; Apply swaps it.
type Gateway struct {
	opts Options
	p    *proxy.Proxy
	log  *slog.Logger
	snap atomic.Pointer[snapshot]

	mu       sync.Mutex // serialises Apply and guards what follows
	ports    map[int32]*portServer
	limiters map[string]*limiter    // by bucket and config: survive reloads
	jwks     map[string]*jwksSource // by source: survive reloads
	closed   bool
}

// New makes a gateway with no config: it listens nowhere until Apply.
func New(opts Options) *Gateway {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.JWKSClient == nil {
		opts.JWKSClient = &http.Client{Timeout: 5 * time.Second}
	}
	return &Gateway{opts: opts, p: opts.Proxy, log: opts.Logger, ports: map[int32]*portServer{},
		limiters: map[string]*limiter{}, jwks: map[string]*jwksSource{}}
}

// snapshot is the request-ready form of one compile.Gateway.
type snapshot struct {
	gw    *compile.Gateway
	ports map[int32]*portConfig
}

// portConfig is everything served on one port.
type portConfig struct {
	port      int32
	family    string // "http", "tls" or "tcp"
	listeners []*listenerRT
	// tlsConfig terminates TLS for the port's terminating listeners,
	// choosing the certificate by SNI.
	tlsConfig *tls.Config
}

// listenerRT is one listener, ready to serve.
type listenerRT struct {
	cfg    *compile.Listener
	routes *proxy.EdgeRoutes
	edge   map[string]*edgeRT // by HTTPRule.Route
	certs  []tls.Certificate
	tls    []*tlsRuleRT
	tcp    *proxy.EdgeBackends
}

type tlsRuleRT struct {
	hosts    []string
	backends *proxy.EdgeBackends
}

// edgeRT is a rule's edge policy with its stages built.
type edgeRT struct {
	cfg      *compile.EdgePolicy
	auth     *authenticator
	limiters []*limiter
}

// Apply makes gw the served config: the engine gets its clusters, ports
// open and close to match its listeners, and new connections and requests
// see it at once. A config that cannot be served (a bad certificate, a
// port that cannot be opened) is refused and the previous one stays.
func (g *Gateway) Apply(gw *compile.Gateway) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gateway: closed")
	}
	snap, err := g.build(gw)
	if err != nil {
		return err
	}
	// Open new ports before anything changes, so a port that cannot be
	// opened refuses the config rather than half-applying it.
	var opened []*portServer
	closeOpened := func() {
		for _, o := range opened {
			o.close()
		}
	}
	for port, pc := range snap.ports {
		if ps := g.ports[port]; ps != nil && ps.family == pc.family {
			continue
		}
		ps, err := g.listen(port, pc.family)
		if err != nil {
			closeOpened()
			return fmt.Errorf("listener port %d: %w", port, err)
		}
		opened = append(opened, ps)
	}
	// Clusters before routes, so that no route points at a cluster the
	// engine does not have yet.
	if err := g.p.Apply(&compile.Config{Version: gw.Version, Services: []*compile.Service{}, Clusters: gw.Clusters}); err != nil {
		closeOpened()
		return err
	}
	g.snap.Store(snap)
	for _, ps := range opened {
		if old := g.ports[ps.port]; old != nil {
			old.close()
		}
		g.ports[ps.port] = ps
		ps.start()
		g.log.Info("gateway port listening", "port", ps.port, "addr", ps.ln.Addr().String(), "protocols", ps.family)
	}
	for port, ps := range g.ports {
		if snap.ports[port] == nil {
			ps.close()
			delete(g.ports, port)
			g.log.Info("gateway port closed", "port", port)
		}
	}
	g.prune(snap)
	return nil
}

// build turns a compile.Gateway into a snapshot, reusing the limiters and
// key sets of the previous config that the new one still names.
func (g *Gateway) build(gw *compile.Gateway) (*snapshot, error) {
	snap := &snapshot{gw: gw, ports: map[int32]*portConfig{}}
	providers := map[string]*jwtProvider{}
	for k, cfg := range gw.JWTProviders {
		src, err := g.jwksFor(cfg)
		if err != nil {
			return nil, fmt.Errorf("jwt provider %s: %w", k, err)
		}
		providers[k] = &jwtProvider{cfg: cfg, keys: src}
	}
	for _, l := range gw.Listeners {
		pc := snap.ports[l.Port]
		if pc == nil {
			pc = &portConfig{port: l.Port, family: family(l.Protocol)}
			snap.ports[l.Port] = pc
		}
		rt := &listenerRT{cfg: l}
		switch l.Protocol {
		case compile.ListenerHTTP, compile.ListenerHTTPS:
			routes, err := proxy.NewEdgeRoutes(gw.Namespace, gw.Name, l.Name, l.HTTP, gw.Retries)
			if err != nil {
				return nil, err
			}
			rt.routes = routes
			rt.edge = map[string]*edgeRT{}
			for route, pol := range l.Edge {
				e := &edgeRT{cfg: pol}
				if len(pol.JWT) > 0 {
					e.auth = &authenticator{allowMissing: pol.AllowMissingToken}
					for _, k := range pol.JWT {
						if pr := providers[k]; pr != nil {
							e.auth.providers = append(e.auth.providers, pr)
						}
					}
				}
				for _, k := range pol.RateLimits {
					if cfg := gw.RateLimits[k]; cfg != nil {
						e.limiters = append(e.limiters, g.limiterFor(k, cfg))
					}
				}
				rt.edge[route] = e
			}
		case compile.ListenerTLS:
			for _, r := range l.TLS {
				rt.tls = append(rt.tls, &tlsRuleRT{hosts: r.Hostnames, backends: proxy.NewEdgeBackends(r.Route, r.Backends)})
			}
		case compile.ListenerTCP:
			if l.TCP != nil {
				rt.tcp = proxy.NewEdgeBackends(l.TCP.Route, l.TCP.Backends)
			}
		}
		if l.TLSMode == compile.TLSTerminate {
			for _, name := range l.Certificates {
				c := gw.Certificates[name]
				if c == nil {
					continue
				}
				pair, err := tls.X509KeyPair(c.Cert, c.Key)
				if err != nil {
					return nil, fmt.Errorf("listener %s: certificate %s: %v", l.Name, name, err)
				}
				rt.certs = append(rt.certs, pair)
			}
		}
		pc.listeners = append(pc.listeners, rt)
	}
	for _, pc := range snap.ports {
		if pc.family == "tls" {
			pc.tlsConfig = pc.newTLSConfig()
		}
	}
	return snap, nil
}

// limiterFor returns the limiter of a bucket, the previous one if its
// config did not change, so a reload does not refill every bucket.
func (g *Gateway) limiterFor(bucket string, cfg *compile.RateLimit) *limiter {
	key := fmt.Sprintf("%s|%d|%s|%d|%s|%s|%d", bucket, cfg.Requests, cfg.Period.D(), cfg.Burst, cfg.Key, cfg.Header, cfg.MaxKeys)
	if l := g.limiters[key]; l != nil {
		return l
	}
	l := newLimiter(*cfg)
	g.limiters[key] = l
	return l
}

// jwksFor returns the key source a provider names, shared by every
// provider naming the same one and kept across reloads.
func (g *Gateway) jwksFor(cfg *compile.JWTProvider) (*jwksSource, error) {
	switch {
	case cfg.JWKS != "":
		key := "inline|" + cfg.JWKS
		if s := g.jwks[key]; s != nil {
			return s, nil
		}
		s, err := newInlineJWKS(cfg.JWKS)
		if err != nil {
			return nil, err
		}
		g.jwks[key] = s
		return s, nil
	case cfg.JWKSFile != "" || cfg.JWKSURI != "":
		key := fmt.Sprintf("file|%s|uri|%s|%s", cfg.JWKSFile, cfg.JWKSURI, cfg.CacheDuration.D())
		if s := g.jwks[key]; s != nil {
			return s, nil
		}
		ttl := cfg.CacheDuration.D()
		if ttl <= 0 {
			ttl = 5 * time.Minute
		}
		s := &jwksSource{file: cfg.JWKSFile, uri: cfg.JWKSURI, ttl: ttl, client: g.opts.JWKSClient}
		g.jwks[key] = s
		// Fetch now so the first request does not wait for it.
		go func() {
			if _, err := s.get(context.Background(), false); err != nil {
				g.log.Warn("jwks not loaded yet", "source", cfg.JWKSFile+cfg.JWKSURI, "err", err)
			}
		}()
		return s, nil
	}
	return nil, errors.New("no key set")
}

// prune drops limiters and key sets the served config no longer names.
func (g *Gateway) prune(snap *snapshot) {
	usedL := map[*limiter]bool{}
	usedK := map[*jwksSource]bool{}
	for _, pc := range snap.ports {
		for _, l := range pc.listeners {
			for _, e := range l.edge {
				for _, lim := range e.limiters {
					usedL[lim] = true
				}
				if e.auth != nil {
					for _, pr := range e.auth.providers {
						usedK[pr.keys] = true
					}
				}
			}
		}
	}
	for k, l := range g.limiters {
		if !usedL[l] {
			delete(g.limiters, k)
		}
	}
	for k, s := range g.jwks {
		if !usedK[s] {
			delete(g.jwks, k)
		}
	}
}

// Ready reports whether a config is served.
func (g *Gateway) Ready() bool { return g.snap.Load() != nil }

// Config is the served config, nil before the first Apply. It holds
// private keys: dump only its Redacted copy.
func (g *Gateway) Config() *compile.Gateway {
	if s := g.snap.Load(); s != nil {
		return s.gw
	}
	return nil
}

// Addrs returns the address each open port listens on.
func (g *Gateway) Addrs() map[int32]net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[int32]net.Addr{}
	for p, ps := range g.ports {
		out[p] = ps.ln.Addr()
	}
	return out
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends,
// then closes every connection.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	ports := make([]*portServer, 0, len(g.ports))
	for _, ps := range g.ports {
		ports = append(ports, ps)
	}
	g.ports = map[int32]*portServer{}
	g.mu.Unlock()
	var err error
	for _, ps := range ports {
		if e := ps.shutdown(ctx); e != nil && err == nil {
			err = e
		}
	}
	return err
}

func family(protocol string) string {
	switch protocol {
	case compile.ListenerHTTPS, compile.ListenerTLS:
		return "tls"
	case compile.ListenerTCP:
		return "tcp"
	}
	return "http"
}

// listenerFor picks the listener of a port for a host name (the request's
// Host, or the SNI): an exact hostname first, then the longest wildcard
// that covers it, then a listener without hostname. protocols limits the
// candidates ("" any).
func (pc *portConfig) listenerFor(host string, protocols ...string) *listenerRT {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	var wild, any *listenerRT
	for _, l := range pc.listeners {
		if len(protocols) > 0 && !containsString(protocols, l.cfg.Protocol) {
			continue
		}
		h := l.cfg.Hostname
		switch {
		case h == "":
			if any == nil {
				any = l
			}
		case h == host:
			return l
		case strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) && len(host) > len(h)-1:
			if wild == nil || len(h) > len(wild.cfg.Hostname) {
				wild = l
			}
		}
	}
	if wild != nil {
		return wild
	}
	return any
}

// newTLSConfig chooses, per handshake, the certificate of the listener the
// SNI names, else of the port's first terminating listener (so a client
// without SNI still gets a certificate).
func (pc *portConfig) newTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			l := pc.listenerFor(hello.ServerName)
			if l == nil || len(l.certs) == 0 {
				for _, cand := range pc.listeners {
					if len(cand.certs) > 0 {
						l = cand
						break
					}
				}
			}
			if l == nil || len(l.certs) == 0 {
				return nil, fmt.Errorf("no certificate for %q", hello.ServerName)
			}
			for i := range l.certs {
				if hello.SupportsCertificate(&l.certs[i]) == nil {
					return &l.certs[i], nil
				}
			}
			return &l.certs[0], nil
		},
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
