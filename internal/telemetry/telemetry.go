// Package telemetry is what a proxy reports about the traffic it carries:
// Prometheus metrics, JSON access logs and trace spans, for HTTP requests
// and TCP connections, from the caller's side (reporter "client", outbound)
// and from the callee's side (reporter "server", inbound).
//
// The data plane (internal/proxy) calls it at a few points of each request:
// Begin when a request arrives (it parses or starts the trace context and
// wraps the ResponseWriter to see the status and bytes), Service, Route,
// Cluster and Upstream as routing decides, Flag when the proxy answers
// itself, and End when the request is over. TCP connections use BeginTCP
// and the Conn methods the same way. Every method is safe on a nil
// receiver, so a proxy without telemetry pays one nil check per hook.
//
// Cost is kept off the request path: the Prometheus children of a label
// combination are resolved once and cached under a comparable struct key
// built from strings the config already holds (no concatenation, no label
// map per request); access log lines are encoded by hand with strconv into
// a shared buffer that is written out in batches; and without an OTLP
// endpoint no OpenTelemetry SDK object exists: the proxy only propagates
// trace headers.
//
// Labels (every metric, both reporters): reporter, source_workload,
// source_namespace, source_principal, destination_service (name.namespace
// of the backend's service), destination_workload, destination_namespace,
// route ("namespace/name/rule" of the route rule), connection_security_policy
// (none, mutual_tls); request metrics add request_protocol (http, grpc),
// response_code, grpc_status (empty for non-gRPC) and response_flags (the
// x-weft-error reason when the proxy answered itself, "-" otherwise). A
// value the proxy does not know is "unknown". No label ever takes a value
// from the request itself, so cardinality is bounded by the config.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Reporter is the side of a hop a proxy reports from.
type Reporter uint8

const (
	// Client is the caller's proxy: outbound traffic from the local app.
	Client Reporter = iota
	// Server is the callee's proxy: inbound traffic to the local app.
	Server
)

func (r Reporter) String() string {
	if r == Server {
		return "server"
	}
	return "client"
}

// Peer is a workload's identity as labels. Empty fields are reported as
// "unknown".
type Peer struct {
	Workload  string
	Namespace string
	// Principal is the SPIFFE ID, when the proxy knows it.
	Principal string
}

// SPIFFEID is the principal of a service account in a trust domain, or ""
// when any part is missing.
func SPIFFEID(trustDomain, namespace, serviceAccount string) string {
	if trustDomain == "" || namespace == "" || serviceAccount == "" {
		return ""
	}
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// Options configure a Telemetry. The zero value records nothing.
type Options struct {
	// Registerer receives the metrics; nil disables metrics.
	Registerer prometheus.Registerer
	// AccessLog receives one JSON line per request and per TCP connection;
	// nil disables access logs. Writes are batched (see AccessLogWriter).
	AccessLog io.Writer
	// AccessLogSampling is the share of requests logged, 0 to 1. The choice
	// is made from the trace id, so every hop of a trace logs it or none.
	AccessLogSampling float64
	// OTLPEndpoint, when set, exports spans with the OpenTelemetry SDK:
	// grpc://host:port (grpcs:// with TLS) for OTLP/gRPC, or
	// http://host:port[/path] (https://) for OTLP/HTTP, path /v1/traces by
	// default.
	OTLPEndpoint string
	// SpanExporter, when set, receives the spans instead of an OTLP
	// endpoint (tests use an in-memory one).
	SpanExporter sdktrace.SpanExporter
	// TraceSampling is the share of new traces sampled, 0 to 1; a request
	// that carries a sampling decision keeps it (parent-based).
	TraceSampling float64
	// ServiceName names the exporting process in spans' resource.
	ServiceName string
	Logger      *slog.Logger
}

// Telemetry holds the sinks of one process: metric vectors, the access log
// and the tracer. Proxies record into it through a Recorder.
type Telemetry struct {
	metrics *metrics
	log     *accessLog
	tracer  *tracer
	// newTraceSampled decides new traces when no SDK does (propagation
	// only): a trace id at or below it is sampled.
	sampleBelow uint64
	// taps are the open live taps (tap.go).
	taps taps
}

// New builds the sinks opts asks for.
func New(opts Options) (*Telemetry, error) {
	if opts.AccessLogSampling < 0 || opts.AccessLogSampling > 1 {
		return nil, fmt.Errorf("access log sampling %v: want 0 to 1", opts.AccessLogSampling)
	}
	if opts.TraceSampling < 0 || opts.TraceSampling > 1 {
		return nil, fmt.Errorf("trace sampling %v: want 0 to 1", opts.TraceSampling)
	}
	t := &Telemetry{sampleBelow: ratioBound(opts.TraceSampling)}
	t.taps.events = make(chan *TapEvent, TapQueue)
	if opts.Registerer != nil {
		m, err := newMetrics(opts.Registerer)
		if err != nil {
			return nil, err
		}
		t.metrics = m
	}
	if opts.AccessLog != nil && opts.AccessLogSampling > 0 {
		t.log = newAccessLog(opts.AccessLog, opts.AccessLogSampling)
	}
	if opts.OTLPEndpoint != "" || opts.SpanExporter != nil {
		tr, err := newTracer(opts)
		if err != nil {
			if t.log != nil {
				t.log.close(context.Background())
			}
			return nil, err
		}
		t.tracer = tr
	}
	return t, nil
}

// Close flushes the access log and exported spans. ctx bounds the wait for
// the span exporter.
func (t *Telemetry) Close(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	if t.log != nil {
		errs = append(errs, t.log.close(ctx))
	}
	if t.tracer != nil {
		errs = append(errs, t.tracer.shutdown(ctx))
	}
	return errors.Join(errs...)
}

// Flush writes out buffered access log lines now.
func (t *Telemetry) Flush() {
	if t != nil && t.log != nil {
		t.log.flush()
	}
}

// Recorder records one proxy's traffic into a Telemetry, under the proxy's
// own identity: the source of its outbound traffic and the destination of
// its inbound traffic. A nil *Recorder records nothing.
type Recorder struct {
	t    *Telemetry
	self Peer
	// principal, when set, gives the proxy's SPIFFE ID at the time of a
	// request (an identity may arrive or rotate after start); it must be
	// cheap.
	principal func() string
}

// For returns a recorder for a proxy whose workload is self; nil when t is
// nil. principal may be nil (self.Principal is then used).
func (t *Telemetry) For(self Peer, principal func() string) *Recorder {
	if t == nil {
		return nil
	}
	return &Recorder{t: t, self: self, principal: principal}
}

// selfPeer is the proxy's identity now.
func (r *Recorder) selfPeer() Peer {
	p := r.self
	if r.principal != nil {
		if id := r.principal(); id != "" {
			p.Principal = id
		}
	}
	return p
}
