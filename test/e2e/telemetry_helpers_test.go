package e2e

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Helpers for the telemetry tests: scraping /metrics, reading access log
// lines from the proxy's output, and an OTLP receiver.

// Metrics is one scrape of a proxy's /metrics.
type Metrics map[string]*dto.MetricFamily

// Scrape reads and parses the proxy's /metrics.
func (p *Proxy) Scrape() Metrics {
	p.t.Helper()
	status, body := p.adminGet("/metrics")
	if status != http.StatusOK {
		p.t.Fatalf("GET /metrics: %d", status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		p.t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return mfs
}

// Value is the value of the series of name whose labels include all of
// want (a counter's value, a histogram's count); ok is false when no
// series matches, and more than one match fails the test.
func (m Metrics) Value(t testing.TB, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mf := m[name]
	if mf == nil {
		return 0, false
	}
	var found []*dto.Metric
	for _, s := range mf.Metric {
		if hasLabels(s, want) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return 0, false
	case 1:
	default:
		t.Fatalf("%s%v matches %d series: %s", name, want, len(found), m.Dump(name))
	}
	s := found[0]
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue(), true
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount()), true
	case s.Gauge != nil:
		return s.Gauge.GetValue(), true
	}
	return 0, true
}

func hasLabels(s *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range s.Label {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// Dump lists a family's series, for failure messages.
func (m Metrics) Dump(name string) string {
	mf := m[name]
	if mf == nil {
		return name + ": none"
	}
	var lines []string
	for _, s := range mf.Metric {
		var ls []string
		for _, l := range s.Label {
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		v := s.GetCounter().GetValue()
		if s.Histogram != nil {
			v = float64(s.Histogram.GetSampleCount())
		}
		lines = append(lines, fmt.Sprintf("  %s{%s} %v", name, strings.Join(ls, ","), v))
	}
	sort.Strings(lines)
	return "\n" + strings.Join(lines, "\n")
}

// WaitValue polls /metrics until the series has value want.
func (p *Proxy) WaitValue(name string, labels map[string]string, want float64) {
	p.t.Helper()
	var m Metrics
	eventually(p.t, 10*time.Second, func() string {
		m = p.Scrape()
		if v, _ := m.Value(p.t, name, labels); v != want {
			return fmt.Sprintf("%s%v = %v; want %v; all:%s", name, labels, v, want, m.Dump(name))
		}
		return ""
	})
}

// AccessLog returns the access log lines the proxy printed so far (JSON
// objects with a start_time; other output is slog text).
func (p *Proxy) AccessLog() []map[string]any {
	p.t.Helper()
	return accessLines(p.t, p.Stderr.String())
}

func accessLines(t testing.TB, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, `{"start_time":`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("access log line is not JSON: %v\n%s", err, l)
		}
		lines = append(lines, m)
	}
	return lines
}

// WaitAccessLog waits until n access log lines match keep and returns them.
func (p *Proxy) WaitAccessLog(n int, keep func(map[string]any) bool) []map[string]any {
	p.t.Helper()
	var got []map[string]any
	eventually(p.t, 10*time.Second, func() string {
		got = got[:0]
		for _, l := range p.AccessLog() {
			if keep == nil || keep(l) {
				got = append(got, l)
			}
		}
		if len(got) != n {
			return fmt.Sprintf("%d access log lines; want %d", len(got), n)
		}
		return ""
	})
	return got
}

// OTLPReceiver collects spans sent over OTLP/HTTP (protobuf) or OTLP/gRPC.
type OTLPReceiver struct {
	// Endpoint is the --otlp-endpoint URL that reaches it.
	Endpoint string

	mu       sync.Mutex
	spans    []*tracepb.Span
	services map[string]string // span id hex -> its resource's service.name
	coltracepb.UnimplementedTraceServiceServer
}

func (o *OTLPReceiver) add(req *coltracepb.ExportTraceServiceRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		svc := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				svc = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				o.spans = append(o.spans, s)
				o.services[fmt.Sprintf("%x", s.GetSpanId())] = svc
			}
		}
	}
}

// Export implements OTLP/gRPC.
func (o *OTLPReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	o.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// ServeHTTP implements OTLP/HTTP with protobuf bodies.
func (o *OTLPReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.Error(w, "want POST /v1/traces", http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.add(&req)
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// NewOTLPReceiver starts a receiver on loopback speaking OTLP/HTTP, or
// OTLP/gRPC when grpcProto.
func NewOTLPReceiver(t testing.TB, grpcProto bool) *OTLPReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &OTLPReceiver{services: map[string]string{}}
	if grpcProto {
		s := grpc.NewServer()
		coltracepb.RegisterTraceServiceServer(s, o)
		go s.Serve(ln)
		t.Cleanup(s.Stop)
		o.Endpoint = "grpc://" + ln.Addr().String()
		return o
	}
	srv := &http.Server{Handler: o}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	o.Endpoint = "http://" + ln.Addr().String()
	return o
}

// Service is the service.name of the process that sent span id (hex).
func (o *OTLPReceiver) Service(spanID string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.services[spanID]
}

// Spans returns the spans of trace traceID (hex) received so far.
func (o *OTLPReceiver) Spans(traceID string) []*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range o.spans {
		if fmt.Sprintf("%x", s.GetTraceId()) == traceID {
			out = append(out, s)
		}
	}
	return out
}

// WaitSpans waits until trace traceID has n spans.
func (o *OTLPReceiver) WaitSpans(t testing.TB, traceID string, n int) []*tracepb.Span {
	t.Helper()
	var got []*tracepb.Span
	eventually(t, 15*time.Second, func() string {
		got = o.Spans(traceID)
		if len(got) != n {
			return fmt.Sprintf("%d spans of trace %s received; want %d", len(got), traceID, n)
		}
		return ""
	})
	return got
}

// spanAttr is a span's string or int attribute as text.
func spanAttr(s *tracepb.Span, key string) string {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			switch v := a.GetValue().GetValue().(type) {
			case *commonpb.AnyValue_StringValue:
				return v.StringValue
			case *commonpb.AnyValue_IntValue:
				return fmt.Sprint(v.IntValue)
			}
		}
	}
	return ""
}

// traceparentParts splits a version 00 traceparent.
func traceparentParts(t testing.TB, v string) (traceID, spanID, flags string) {
	t.Helper()
	p := strings.Split(v, "-")
	if len(p) != 4 || p[0] != "00" || len(p[1]) != 32 || len(p[2]) != 16 || len(p[3]) != 2 {
		t.Fatalf("traceparent %q is not version 00 ids", v)
	}
	return p[1], p[2], p[3]
}
