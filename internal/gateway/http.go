package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy"
)

// Reasons the gateway answers a request itself (x-weft-error), beside the
// engine's own.
const (
	ReasonNoListener      = "no-listener"
	ReasonMisdirected     = "misdirected-request"
	ReasonUnauthenticated = "unauthenticated"
	ReasonRateLimited     = "rate-limited"
	ReasonBodyTooLarge    = "body-too-large"
)

// maxBufferedLimit is the largest body limit for which a body of unknown
// length (chunked, or HTTP/2 without content-length) is read ahead so that
// going over the limit can still be answered 413. Above it such a body is
// streamed and cut at the limit, which fails the upstream request instead.
const maxBufferedLimit = 8 << 20

// serveHTTP runs the edge stages of a request on port, in order: listener
// by host, route match, redirect (answered before any check: the client
// is sent to where the checks happen), CORS preflight, rate limits, JWT,
// body limit, and then the engine forwards it.
func (g *Gateway) serveHTTP(port int32, w http.ResponseWriter, r *http.Request) {
	snap := g.snap.Load()
	var pc *portConfig
	if snap != nil {
		pc = snap.ports[port]
	}
	if pc == nil {
		proxy.Answer(w, r, http.StatusNotFound, ReasonNoListener, "no listener on this port")
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	protocol := compile.ListenerHTTP
	if r.TLS != nil {
		protocol = compile.ListenerHTTPS
	}
	l := pc.listenerFor(host, protocol)
	if l == nil || l.routes == nil {
		proxy.Answer(w, r, http.StatusNotFound, ReasonNoListener, "no listener for host "+strconv.Quote(host))
		return
	}
	// A connection is bound to the listener its SNI chose (and whose
	// certificate it saw); a request for another listener's host on it
	// must start its own connection.
	if r.TLS != nil && r.TLS.ServerName != "" {
		if sl := pc.listenerFor(r.TLS.ServerName, protocol); sl != l {
			proxy.Answer(w, r, http.StatusMisdirectedRequest, ReasonMisdirected, "host "+strconv.Quote(host)+" is not served on a connection for "+strconv.Quote(r.TLS.ServerName))
			return
		}
	}
	ru := l.routes.Route(r)
	if ru == nil {
		proxy.Answer(w, r, http.StatusNotFound, proxy.ReasonNoRoute, "no route matches")
		return
	}
	rule := ru.Rule()
	e := l.edge[rule.Route]
	if e == nil || rule.Redirect != nil {
		g.p.ServeEdge(w, r, l.routes, ru)
		return
	}
	if c := e.cfg.CORS; c != nil && applyCORS(w, r, c) {
		return // a preflight, answered
	}
	now := time.Now()
	for _, lim := range e.limiters {
		if ok, wait := lim.allow(lim.key(r, routeOf(rule.Route)), now); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter(wait)))
			proxy.Answer(w, r, http.StatusTooManyRequests, ReasonRateLimited, "rate limit exceeded")
			return
		}
	}
	if e.auth != nil {
		if err := e.auth.authenticate(r.Context(), r, now); err != nil {
			w.Header().Set("WWW-Authenticate", err.challenge())
			proxy.Answer(w, r, http.StatusUnauthorized, ReasonUnauthenticated, err.Error())
			return
		}
	}
	if max := e.cfg.MaxRequestBody; max > 0 && !limitBody(w, r, max) {
		proxy.Answer(w, r, http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, "request body larger than "+strconv.FormatInt(max, 10)+" bytes")
		return
	}
	g.p.ServeEdge(w, r, l.routes, ru)
}

// routeOf is "namespace/name" of a rule name "namespace/name/index".
func routeOf(rule string) string {
	if i := strings.LastIndexByte(rule, '/'); i > 0 {
		return rule[:i]
	}
	return rule
}

// limitBody enforces a body limit; false means the body is too large. A
// declared length is checked at once; a body of unknown length is read
// ahead (up to maxBufferedLimit) or cut at the limit.
func limitBody(w http.ResponseWriter, r *http.Request, max int64) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if r.ContentLength > max {
		return false
	}
	if r.ContentLength >= 0 {
		r.Body = http.MaxBytesReader(w, r.Body, max)
		return true
	}
	if max > maxBufferedLimit {
		r.Body = http.MaxBytesReader(w, r.Body, max)
		return true
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if int64(len(buf)) > max {
		r.Body.Close()
		return false
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return false
		}
	}
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.ContentLength = int64(len(buf))
	return true
}
