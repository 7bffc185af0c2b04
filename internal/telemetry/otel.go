package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// tracer exports one span per request per proxy side with the
// OpenTelemetry SDK. It exists only when an OTLP endpoint is configured.
type tracer struct {
	tp *sdktrace.TracerProvider
	t  trace.Tracer
}

// spanBatchTimeout bounds how long a finished span waits for export.
const spanBatchTimeout = time.Second

func newTracer(opts Options) (*tracer, error) {
	exp := opts.SpanExporter
	if exp == nil {
		var err error
		if exp, err = newExporter(opts.OTLPEndpoint); err != nil {
			return nil, err
		}
	}
	if log := opts.Logger; log != nil {
		// Export failures (a collector down) are the SDK's to retry; say
		// so at warn level instead of on the SDK's own stderr logger.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn("telemetry: span export", "err", err)
		}))
	}
	name := opts.ServiceName
	if name == "" {
		name = "weft-proxy"
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(spanBatchTimeout)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(opts.TraceSampling))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))),
	)
	return &tracer{tp: tp, t: tp.Tracer("weft.dev/weft/internal/telemetry")}, nil
}

// newExporter makes an OTLP exporter for grpc://, grpcs://, http:// or
// https:// endpoints. Neither connects before the first export.
func newExporter(endpoint string) (sdktrace.SpanExporter, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("OTLP endpoint %q: want grpc://HOST:PORT, grpcs://, http://HOST:PORT[/PATH] or https://", endpoint)
	}
	ctx := context.Background()
	switch u.Scheme {
	case "grpc", "grpcs":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(u.Host)}
		if u.Scheme == "grpc" {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	case "http", "https":
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host)}
		if u.Scheme == "http" {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		if u.Path != "" && u.Path != "/" {
			opts = append(opts, otlptracehttp.WithURLPath(u.Path))
		}
		return otlptracehttp.New(ctx, opts...)
	}
	return nil, fmt.Errorf("OTLP endpoint %q: scheme %q: want grpc, grpcs, http or https", endpoint, u.Scheme)
}

func (tr *tracer) shutdown(ctx context.Context) error { return tr.tp.Shutdown(ctx) }

// start opens the request's span as a child of the caller's. The span id
// the SDK draws is the one the next hop sees as its parent.
func (tr *tracer) start(ctx context.Context, parent spanContext, rep Reporter, start time.Time, method string) (trace.Span, spanContext) {
	if parent.valid {
		var flags trace.TraceFlags
		if parent.sampled {
			flags = trace.FlagsSampled
		}
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID(parent.traceID), SpanID: trace.SpanID(parent.spanID),
			TraceFlags: flags, Remote: true,
		}))
	}
	kind := trace.SpanKindClient
	if rep == Server {
		kind = trace.SpanKindServer
	}
	_, span := tr.t.Start(ctx, method, trace.WithSpanKind(kind), trace.WithTimestamp(start))
	sc := span.SpanContext()
	return span, spanContext{
		traceID: TraceID(sc.TraceID()), spanID: SpanID(sc.SpanID()),
		sampled: sc.IsSampled(), valid: true, decided: true,
	}
}

// end names the span after its route, adds what the access log says, and
// ends it.
func (tr *tracer) end(x *Exchange, end time.Time) {
	s := x.span
	if !s.IsRecording() {
		s.End()
		return
	}
	r := x.req
	name := r.Method
	if x.d.route != "" {
		name += " " + x.d.route
	}
	s.SetName(name)
	k := x.labelKey()
	l := k.values()
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", r.Method),
		attribute.Int("http.response.status_code", x.status),
		attribute.String("server.address", r.Host),
		attribute.String("url.path", r.URL.Path),
		attribute.String("network.protocol.name", "http"),
		attribute.String("network.protocol.version", strconv.Itoa(r.ProtoMajor)+"."+strconv.Itoa(r.ProtoMinor)),
		attribute.String("weft.reporter", x.reporter.String()),
		attribute.String("weft.route", l.route),
		attribute.String("weft.response_flags", x.flags),
		attribute.String("weft.source.workload", l.srcWorkload),
		attribute.String("weft.source.namespace", l.srcNamespace),
		attribute.String("weft.destination.service", l.service),
		attribute.String("weft.destination.workload", l.dstWorkload),
		attribute.String("weft.destination.namespace", l.dstNamespace),
		attribute.String("weft.request_id", x.requestID),
		attribute.Int64("weft.bytes_received", x.body.n.Load()),
		attribute.Int64("weft.bytes_sent", x.bytesOut),
	}
	if x.attempts > 0 {
		attrs = append(attrs, attribute.String("network.peer.address", x.upAddr), attribute.Int("weft.attempts", int(x.attempts)))
	}
	if x.grpcStatus >= 0 {
		attrs = append(attrs, attribute.Int("rpc.grpc.status_code", int(x.grpcStatus)))
	}
	s.SetAttributes(attrs...)
	// Semantic conventions: 5xx is an error on both sides, 4xx on the
	// client's.
	if x.status == 0 || x.status >= 500 || x.reporter == Client && x.status >= 400 || x.grpcStatus > 0 {
		desc := x.flags
		if desc == noFlags {
			desc = ""
		}
		s.SetStatus(codes.Error, desc)
	}
	s.End(trace.WithTimestamp(end))
}
