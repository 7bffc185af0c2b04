package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy/upstream"
	"weft.dev/weft/internal/telemetry"
)

// Reasons the proxy answers a request itself, sent in the x-weft-error
// response header so a caller can tell the mesh's answers from the app's.
const (
	HeaderError = "X-Weft-Error"

	ReasonNotReady       = "not-ready"
	ReasonUnknownService = "unknown-service"
	ReasonNoRoute        = "no-route"
	ReasonInvalidRoute   = "invalid-route"
	ReasonNoHealthy      = "no-healthy-upstream"
	ReasonCircuitOpen    = "circuit-open"
	ReasonTimeout        = "timeout"
	ReasonFaultAbort     = "fault-abort"
	ReasonUpstreamError  = "upstream-error"
)

// Target binds a listener to one service port ("name", "name.ns", ... and
// a port, 0 for the service's only port). A nil Target means route by the
// request's authority, as the forward proxy does.
type Target struct {
	Host string
	Port int32
}

type targetKey struct{}

// WithTarget binds the requests of a context (e.g. of one tunnelled
// connection, via http.Server.ConnContext) to a target.
func WithTarget(ctx context.Context, tg *Target) context.Context {
	return context.WithValue(ctx, targetKey{}, tg)
}

// Handler serves HTTP requests into the mesh.
type Handler struct {
	p      *Proxy
	target *Target
}

// Handler returns an http.Handler routing to target, else to the target
// bound to the request's context (WithTarget), else by the request's
// authority as a forward proxy does.
func (p *Proxy) Handler(target *Target) *Handler { return &Handler{p: p, target: target} }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if x := h.p.tel.Begin(w, r, telemetry.Client); x != nil {
		defer x.End()
		w = x
	}
	t := h.p.table.Load()
	if t == nil {
		answer(w, r, http.StatusServiceUnavailable, ReasonNotReady, "proxy has no config yet")
		return
	}
	find := func(t *table) (*servicePort, string) {
		if tg := h.target; tg != nil {
			return t.lookupTarget(tg), tg.Host
		}
		if tg, _ := r.Context().Value(targetKey{}).(*Target); tg != nil {
			return t.lookupTarget(tg), tg.Host
		}
		authority := r.URL.Host
		if authority == "" {
			authority = r.Host
		}
		return t.lookup(authority), authority
	}
	sp, host := find(t)
	if sp == nil && h.p.Learn(r.Context(), host) {
		sp, _ = find(h.p.table.Load())
	}
	if sp == nil {
		answer(w, r, http.StatusNotFound, ReasonUnknownService, "no service known as "+strconv.Quote(r.Host))
		return
	}
	h.p.serveHTTP(w, r, sp)
}

// lookupTarget resolves a listener binding against the current table.
func (t *table) lookupTarget(tg *Target) *servicePort {
	svc := t.byName[tg.Host]
	if svc == nil {
		return nil
	}
	if tg.Port == 0 {
		if len(svc.Ports) != 1 {
			return nil
		}
		return t.ports[svc.Hosts[0]+":"+strconv.Itoa(int(svc.Ports[0].Port))]
	}
	return t.ports[svc.Hosts[0]+":"+strconv.Itoa(int(tg.Port))]
}

// decision is what routing chose for one request; the forwarder and the
// response hooks read it from the request context.
type decision struct {
	sp      *servicePort
	rule    *rule
	backend *compile.Backend
	retry   *compile.Retry
	// perTry bounds each attempt until response headers arrive.
	perTry time.Duration
	// grpc is set for gRPC requests, whose errors are answered in gRPC terms.
	grpc bool
	// x records the request's telemetry; nil when off.
	x *telemetry.Exchange
}

type decisionKey struct{}

func decisionFrom(ctx context.Context) *decision {
	d, _ := ctx.Value(decisionKey{}).(*decision)
	return d
}

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request, sp *servicePort) {
	telemetry.ExchangeOf(w).Service(sp.svc.Name, sp.svc.Namespace)
	ru := sp.route(r)
	if ru == nil {
		answer(w, r, http.StatusNotFound, ReasonNoRoute, "no route matches")
		return
	}
	var retry *compile.Retry
	if hr := sp.port.HTTP; hr != nil {
		retry = hr.Retry
	}
	p.serveRule(w, r, sp, ru, func(string) *compile.Retry { return retry }, nil)
}

// serveRule is the request path once a rule matched, shared by sidecars
// and the gateway: fault, redirect, backend pick, timeouts, mirrors, then
// the forwarder. retry gives the retry policy for the picked backend's
// cluster; picked, when set, is told the backend.
func (p *Proxy) serveRule(w http.ResponseWriter, r *http.Request, sp *servicePort, ru *rule,
	retry func(cluster string) *compile.Retry, picked func(*compile.Backend)) {
	x := telemetry.ExchangeOf(w)
	x.Route(ru.Route)
	if ru.Invalid != "" {
		answer(w, r, http.StatusInternalServerError, ReasonInvalidRoute, ru.Invalid)
		return
	}
	if ru.Fault != nil && injectFault(w, r, ru.Fault) {
		return
	}
	if ru.Redirect != nil {
		redirect(w, r, ru)
		return
	}
	b := ru.backends.pick()
	if b == nil {
		answer(w, r, http.StatusInternalServerError, ReasonInvalidRoute, "route has no backend with a weight above zero")
		return
	}
	x.Cluster(b.Cluster)
	if picked != nil {
		picked(b)
	}
	d := &decision{sp: sp, rule: ru, backend: b, grpc: isGRPC(r), x: x, retry: retry(b.Cluster), perTry: ru.BackendTimeout.D()}
	ctx := r.Context()
	if ru.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, ru.Timeout.D(), errRouteTimeout)
		defer cancel()
	}
	if len(ru.Mirrors) > 0 {
		p.mirror(r, ru)
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(ctx, decisionKey{}, d)))
}

var (
	errRouteTimeout  = errors.New("route timeout")
	errPerTryTimeout = errors.New("per-try timeout")
)

// rewrite shapes the outgoing request: ReverseProxy has already removed
// hop-by-hop headers. The endpoint address is set per attempt by the
// forwarder.
func rewrite(pr *httputil.ProxyRequest) {
	d := decisionFrom(pr.In.Context())
	out := pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = d.backend.Cluster
	out.Host = pr.In.Host
	if rw := d.rule.Rewrite; rw != nil {
		if rw.Hostname != "" {
			out.Host = rw.Hostname
		}
		if rw.Path != nil {
			out.URL.Path = rewritePath(rw.Path, pr.In.URL.Path)
			out.URL.RawPath = ""
		}
	}
	applyHeaders(out.Header, d.rule.RequestHeaders)
	applyHeaders(out.Header, d.backend.RequestHeaders)
	if _, ok := out.Header["User-Agent"]; !ok {
		// Keep an absent User-Agent absent rather than Go's default.
		out.Header["User-Agent"] = nil
	}
}

func modifyResponse(resp *http.Response) error {
	if d := decisionFrom(resp.Request.Context()); d != nil {
		applyHeaders(resp.Header, d.rule.ResponseHeaders)
		applyHeaders(resp.Header, d.backend.ResponseHeaders)
	}
	grpcTrailersOnly(resp)
	return nil
}

// grpcStatusHeaders are what a gRPC "trailers-only" response carries in its
// one header block.
var grpcStatusHeaders = []string{"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"}

// grpcTrailersOnly turns a gRPC trailers-only response (status in the
// headers, no body) into headers plus trailers. Forwarded as it is, the
// headers may be flushed before the stream ends, and the client then sees
// a stream closed "without sending trailers" instead of the status.
func grpcTrailersOnly(resp *http.Response) {
	if resp.Header.Get("Grpc-Status") == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/grpc") {
		return
	}
	if resp.Trailer == nil {
		resp.Trailer = http.Header{}
	}
	for _, k := range grpcStatusHeaders {
		if v, ok := resp.Header[k]; ok {
			resp.Trailer[k] = v
			delete(resp.Header, k)
		}
	}
}

func applyHeaders(h http.Header, m *compile.HeaderModifier) {
	if m == nil {
		return
	}
	for k, v := range m.Set {
		h.Set(k, v)
	}
	for k, v := range m.Add {
		h.Add(k, v)
	}
	for _, k := range m.Remove {
		h.Del(k)
	}
}

// rewritePath applies a Gateway API path rewrite to path.
func rewritePath(pr *compile.PathRewrite, path string) string {
	if !pr.ReplacePrefix {
		return pr.FullPath
	}
	// ReplacePrefixMatch: swap the matched prefix (element-wise) for the
	// replacement, keeping the rest of the path.
	prefix := strings.TrimSuffix(pr.PrefixMatch, "/")
	rest := strings.TrimPrefix(path, prefix)
	repl := pr.FullPath
	if repl == "" || repl == "/" {
		if rest == "" {
			return "/"
		}
		return rest
	}
	repl = strings.TrimSuffix(repl, "/")
	if rest == "" {
		return repl
	}
	return repl + rest
}

func redirect(w http.ResponseWriter, r *http.Request, ru *rule) {
	rd := ru.Redirect
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	host := r.Host
	port := ""
	if h, p, err := net.SplitHostPort(host); err == nil {
		host, port = h, p
	}
	if rd.Hostname != "" {
		host = rd.Hostname
	}
	if rd.Port != 0 {
		port = strconv.Itoa(int(rd.Port))
	} else if rd.Scheme != "" {
		port = "" // a scheme change implies that scheme's default port
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	path := r.URL.Path
	if rd.Path != nil {
		path = rewritePath(rd.Path, path)
	}
	loc := scheme + "://" + host
	if port != "" {
		loc += ":" + port
	}
	loc += path
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	code := rd.StatusCode
	if code == 0 {
		code = http.StatusFound
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(code)
}

// upstreamError answers a request the forwarder could not complete.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	status, reason := classifyError(r.Context(), err)
	if reason == "" {
		// The client went away; nobody is there to answer.
		return
	}
	p.log.Debug("upstream request failed", "host", r.Host, "path", r.URL.Path, "reason", reason, "err", err)
	answer(w, r, status, reason, err.Error())
}

func classifyError(ctx context.Context, err error) (int, string) {
	switch {
	case errors.Is(err, upstream.ErrOverflow), errors.Is(err, upstream.ErrMaxRequests):
		return http.StatusServiceUnavailable, ReasonCircuitOpen
	case errors.Is(err, upstream.ErrNoEndpoint), errors.Is(err, upstream.ErrNoCluster):
		return http.StatusServiceUnavailable, ReasonNoHealthy
	case errors.Is(context.Cause(ctx), errRouteTimeout), errors.Is(err, errPerTryTimeout):
		return http.StatusGatewayTimeout, ReasonTimeout
	case ctx.Err() != nil:
		return 0, ""
	}
	return http.StatusBadGateway, ReasonUpstreamError
}

// answer writes a response of the proxy's own, in gRPC terms for gRPC
// requests so gRPC clients see a status rather than a protocol error.
func answer(w http.ResponseWriter, r *http.Request, status int, reason, msg string) {
	telemetry.ExchangeOf(w).Flag(reason)
	h := w.Header()
	h.Set(HeaderError, reason)
	if isGRPC(r) {
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", strconv.Itoa(grpcCodeFor(status)))
		h.Set("Grpc-Message", reason+": "+msg)
		w.WriteHeader(http.StatusOK)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(reason + ": " + msg + "\n"))
}

func isGRPC(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// grpcCodeFor maps an HTTP status to the gRPC code the gRPC spec pairs it
// with (doc/http-grpc-status-mapping.md).
func grpcCodeFor(status int) int {
	switch status {
	case http.StatusBadRequest:
		return 13 // INTERNAL
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusForbidden:
		return 7 // PERMISSION_DENIED
	case http.StatusNotFound:
		return 12 // UNIMPLEMENTED
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}
