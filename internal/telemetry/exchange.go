package telemetry

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// FlagHeader is the response header in which the proxy names why it
// answered a request itself (proxy.HeaderError); its value becomes
// response_flags.
const FlagHeader = "X-Weft-Error"

// FlagClientClosed marks a request whose client went away before any
// response was written.
const FlagClientClosed = "client-closed"

// Exchange is one HTTP request passing through one side of a proxy. It is
// the http.ResponseWriter the proxy answers through, so it sees the status
// and the bytes; the proxy tells it the routing decisions. A nil *Exchange
// ignores every call.
type Exchange struct {
	rw  http.ResponseWriter
	req *http.Request
	rec *Recorder

	reporter Reporter
	grpc     bool
	mtls     bool
	wrote    bool
	status   int
	bytesOut int64
	body     countingBody

	start time.Time
	// Offsets from start: time.Since reads only the monotonic clock, half
	// the cost of time.Now on VMs whose clock reads are slow.
	upStart  time.Duration
	upDur    time.Duration
	upStatus int
	attempts int32
	upAddr   string

	source Peer
	d      dest
	flag   string

	// Filled by End for the log line.
	dur        time.Duration
	flags      string
	grpcStatus int32

	sc, parent spanContext
	requestID  string
	hv         [2]string  // backing of the traceparent and x-request-id we set
	span       trace.Span // nil without an OTLP exporter
}

var (
	_ http.ResponseWriter = (*Exchange)(nil)
	_ http.Flusher        = (*Exchange)(nil)
)

// Begin starts recording a request that arrived on the rep side of the
// proxy, and returns the ResponseWriter to answer it through (nil when r
// records nothing; callers must then keep w). It reads or starts the
// trace context and writes it, with x-request-id if absent, into req's
// headers, which the proxy forwards.
func (r *Recorder) Begin(w http.ResponseWriter, req *http.Request, rep Reporter) *Exchange {
	if r == nil {
		return nil
	}
	x := &Exchange{rw: w, req: req, rec: r, reporter: rep, start: time.Now(), grpcStatus: -1}
	h := req.Header
	if h == nil {
		h = http.Header{}
		req.Header = h
	}
	if ct := h["Content-Type"]; len(ct) > 0 && strings.HasPrefix(ct[0], "application/grpc") {
		x.grpc = true
	}
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0 {
		// Replacing the body is what http.MaxBytesReader's users do too;
		// the server keeps its own reference for draining.
		x.body.rc = req.Body
		req.Body = &x.body
	}
	setTP := x.beginTrace(h)
	setID := false
	if vs := h[hRequestID]; len(vs) > 0 && vs[0] != "" {
		x.requestID = vs[0]
	} else {
		setID = true
	}
	if setTP || setID {
		// Both values from one allocation, and their header slices from
		// the exchange.
		var buf [traceparentLen + requestIDLen]byte
		n := 0
		if setTP {
			putTraceparent(buf[:], x.sc)
			n = traceparentLen
		}
		if setID {
			putRequestID(buf[n:])
			n += requestIDLen
		}
		v := string(buf[:n])
		if setTP {
			x.hv[0], v = v[:traceparentLen], v[traceparentLen:]
			h[hTraceparent] = x.hv[0:1:1]
		}
		if setID {
			x.hv[1], x.requestID = v, v
			h[hRequestID] = x.hv[1:2:2]
		}
	}
	return x
}

// beginTrace joins the caller's trace or starts one. With an exporter the
// request gets a span of its own, which the next hop sees as its parent.
// Without one the proxy is invisible in the trace: it passes the caller's
// span on (adding traceparent if the caller spoke only B3), so the next
// hop's parent is a span that exists.
//
// It reports whether traceparent must be set to x.sc, which Begin does.
func (x *Exchange) beginTrace(h http.Header) bool {
	parent, formats := extract(h)
	x.parent = parent
	t := x.rec.t
	switch {
	case t.tracer != nil:
		x.span, x.sc = t.tracer.start(x.req.Context(), parent, x.reporter, x.start, x.req.Method)
	case parent.valid:
		x.sc = parent
		// Add traceparent if the caller spoke only B3; leave its B3 as it is.
		return !parent.w3c
	default:
		x.sc = spanContext{traceID: newTraceID(), spanID: newSpanID(), valid: true, decided: true}
		if parent.decided {
			x.sc.sampled = parent.sampled
		} else {
			x.sc.sampled = inSample(x.sc.traceID, t.sampleBelow)
		}
	}
	injectB3(h, x.sc, parent, formats)
	return true
}

// ExchangeOf returns the Exchange w is, or wraps (through Unwrap, as
// http.ResponseController looks), or nil.
func ExchangeOf(w http.ResponseWriter) *Exchange {
	for range 8 {
		switch v := w.(type) {
		case *Exchange:
			return v
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// Service records the service the request was addressed to.
func (x *Exchange) Service(name, namespace string) {
	if x != nil {
		x.d.svcName, x.d.svcNamespace = name, namespace
	}
}

// Route records the route rule ("namespace/name/rule") that matched.
func (x *Exchange) Route(route string) {
	if x != nil {
		x.d.route = route
	}
}

// Cluster records the backend cluster chosen.
func (x *Exchange) Cluster(cluster string) {
	if x != nil {
		x.d.cluster = cluster
	}
}

// Upstream records the start of an attempt to an endpoint (workload
// "namespace/name", address host:port). Retries call it again.
func (x *Exchange) Upstream(workload, addr string) {
	if x != nil {
		x.d.workload, x.upAddr = workload, addr
		x.attempts++
		x.upStart = time.Since(x.start)
	}
}

// UpstreamResponse records the end of an attempt's wait for response
// headers; resp is nil when the attempt failed.
func (x *Exchange) UpstreamResponse(resp *http.Response) {
	if x != nil {
		x.upDur = time.Since(x.start) - x.upStart
		x.upStatus = 0
		if resp != nil {
			x.upStatus = resp.StatusCode
		}
	}
}

// Flag records why the proxy answered the request itself (an x-weft-error
// reason).
func (x *Exchange) Flag(reason string) {
	if x != nil {
		x.flag = reason
	}
}

// SetSource records the caller's identity, for the server side (the
// client side's source is the proxy itself).
func (x *Exchange) SetSource(p Peer) {
	if x != nil {
		x.source = p
	}
}

// SetMutualTLS records that the hop is protected by mutual TLS.
func (x *Exchange) SetMutualTLS(on bool) {
	if x != nil {
		x.mtls = on
	}
}

// TraceID is the request's trace id.
func (x *Exchange) TraceID() TraceID {
	if x == nil {
		return TraceID{}
	}
	return x.sc.traceID
}

// RequestID is the request's x-request-id.
func (x *Exchange) RequestID() string {
	if x == nil {
		return ""
	}
	return x.requestID
}

// Header, WriteHeader and Write make an Exchange the ResponseWriter.
func (x *Exchange) Header() http.Header { return x.rw.Header() }

func (x *Exchange) WriteHeader(code int) {
	if !x.wrote && (code >= 200 || code == http.StatusSwitchingProtocols) {
		x.wrote, x.status = true, code
	}
	x.rw.WriteHeader(code)
}

func (x *Exchange) Write(b []byte) (int, error) {
	if !x.wrote {
		x.wrote, x.status = true, http.StatusOK
	}
	n, err := x.rw.Write(b)
	x.bytesOut += int64(n)
	return n, err
}

// Flush and FlushError pass flushes through; ResponseController reaches
// the rest (Hijack, deadlines, full duplex) through Unwrap.
func (x *Exchange) Flush() { _ = x.FlushError() }

func (x *Exchange) FlushError() error {
	switch f := x.rw.(type) {
	case interface{ FlushError() error }:
		return f.FlushError()
	case http.Flusher:
		f.Flush()
		return nil
	}
	return http.NewResponseController(x.rw).Flush()
}

func (x *Exchange) Unwrap() http.ResponseWriter { return x.rw }

// End records the finished request: metrics, access log line, span.
func (x *Exchange) End() {
	if x == nil {
		return
	}
	x.dur = time.Since(x.start)
	end := x.start.Add(x.dur)
	if !x.wrote {
		switch {
		case x.upStatus == http.StatusSwitchingProtocols:
			x.status = x.upStatus // the upgrade's 101 is written on the hijacked connection
		case x.req.Context().Err() != nil:
			x.status = 0
			if x.flag == "" {
				x.flag = FlagClientClosed
			}
		default:
			x.status = http.StatusOK // what net/http sends for a handler that wrote nothing
		}
	}
	h := x.rw.Header()
	if x.grpc {
		x.grpcStatus = grpcStatusOf(h)
	}
	x.flags = x.flag
	if x.flags == "" && x.reporter == Client && x.attempts == 0 {
		// No upstream answered, so an x-weft-error header is the proxy's
		// own (a fault abort for gRPC sets it without calling Flag).
		if vs := h[FlagHeader]; len(vs) > 0 {
			x.flags = vs[0]
		}
	}
	if x.flags == "" {
		x.flags = noFlags
	}
	t := x.rec.t
	if t.metrics != nil {
		k := requestKey{labelKey: x.labelKey(), grpc: x.grpc, code: int32(x.status), grpcStatus: x.grpcStatus}
		t.metrics.request(&k, x.dur)
	}
	if t.log != nil && t.log.sampled(x.sc.traceID) {
		t.log.write(x)
	}
	if ts := t.taps.set.Load(); ts != nil {
		ts.offer(&t.taps, x)
	}
	if x.span != nil {
		t.tracer.end(x, end)
	}
}

func (x *Exchange) labelKey() labelKey {
	k := labelKey{reporter: x.reporter, mtls: x.mtls, d: x.d, flags: x.flags}
	if x.reporter == Client {
		k.src = x.rec.selfPeer()
	} else {
		k.src, k.dst = x.source, x.rec.selfPeer()
	}
	return k
}

// grpcStatusOf reads grpc-status from the response headers or trailers
// (ReverseProxy sets unannounced trailers under http.TrailerPrefix); -1
// when absent.
func grpcStatusOf(h http.Header) int32 {
	vs := h["Grpc-Status"]
	if len(vs) == 0 {
		vs = h[http.TrailerPrefix+"Grpc-Status"]
	}
	if len(vs) == 0 || len(vs[0]) == 0 || len(vs[0]) > 2 {
		return -1
	}
	n := int32(0)
	for _, c := range []byte(vs[0]) {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int32(c-'0')
	}
	return n
}

// appendLine encodes the access log line.
func (x *Exchange) appendLine(b []byte) []byte {
	r := x.req
	b = appendStart(b, x.start)
	b = appendStringField(b, "reporter", x.reporter.String())
	b = appendStringField(b, "method", r.Method)
	b = appendStringField(b, "authority", r.Host)
	b = appendKey(b, "path")
	b = appendPath(b, r)
	b = appendStringField(b, "protocol", r.Proto)
	b = appendIntField(b, "status", int64(x.status))
	if x.grpcStatus >= 0 {
		b = appendIntField(b, "grpc_status", int64(x.grpcStatus))
	}
	b = appendStringField(b, "response_flags", x.flags)
	b = appendMillisField(b, "duration_ms", x.dur)
	if x.attempts > 0 {
		b = appendMillisField(b, "upstream_ms", x.upDur)
		b = appendStringField(b, "upstream_host", x.upAddr)
		b = appendIntField(b, "attempts", int64(x.attempts))
	}
	b = appendIntField(b, "bytes_received", x.body.n.Load())
	b = appendIntField(b, "bytes_sent", x.bytesOut)
	k := x.labelKey()
	b = appendLabels(b, &k)
	b = appendStringField(b, "downstream_address", r.RemoteAddr)
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		b = appendStringField(b, "user_agent", ua[0])
	}
	b = appendKey(b, "trace_id")
	b = append(b, '"')
	b = appendHex(b, x.sc.traceID[:])
	b = append(b, '"')
	b = appendKey(b, "span_id")
	b = append(b, '"')
	b = appendHex(b, x.sc.spanID[:])
	b = append(b, '"')
	b = appendStringField(b, "request_id", x.requestID)
	return append(b, '}', '\n')
}

// appendPath writes the request's path and query as the client sent them.
func appendPath(b []byte, r *http.Request) []byte {
	p := r.URL.EscapedPath()
	b = append(b, '"')
	b = appendEscaped(b, p, maxFieldBytes)
	if q := r.URL.RawQuery; q != "" && len(p) < maxFieldBytes {
		b = append(b, '?')
		b = appendEscaped(b, q, maxFieldBytes-len(p))
	}
	return append(b, '"')
}

// appendLabels writes the metric labels that describe who called whom.
func appendLabels(b []byte, k *labelKey) []byte {
	l := k.values()
	b = appendStringField(b, "route", l.route)
	if k.d.cluster != "" {
		b = appendStringField(b, "upstream_cluster", k.d.cluster)
	}
	b = appendStringField(b, "source_workload", l.srcWorkload)
	b = appendStringField(b, "source_namespace", l.srcNamespace)
	b = appendStringField(b, "source_principal", l.srcPrincipal)
	b = appendStringField(b, "destination_service", l.service)
	b = appendStringField(b, "destination_workload", l.dstWorkload)
	b = appendStringField(b, "destination_namespace", l.dstNamespace)
	return appendStringField(b, "connection_security_policy", l.security)
}

// countingBody counts request body bytes. The count is atomic because a
// transport may still read the body after the handler returned.
type countingBody struct {
	rc io.ReadCloser
	n  atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingBody) Close() error { return c.rc.Close() }
