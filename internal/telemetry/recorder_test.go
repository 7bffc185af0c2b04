package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// syncBuf is an io.Writer tests read while the log writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(s.b.String(), "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, l)
		}
		out = append(out, m)
	}
	return out
}

type rig struct {
	reg *prometheus.Registry
	log *syncBuf
	tel *Telemetry
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{reg: prometheus.NewRegistry(), log: &syncBuf{}}
	var err error
	r.tel, err = New(Options{Registerer: r.reg, AccessLog: r.log, AccessLogSampling: 1, TraceSampling: 1})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// series returns "labels=value" for every series of a metric family, the
// labels sorted, for exact comparison.
func (r *rig) series(t *testing.T, name string) map[string]float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			out[labelString(m)] = value(m)
		}
	}
	return out
}

func labelString(m *dto.Metric) string {
	var ls []string
	for _, l := range m.Label {
		ls = append(ls, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(ls)
	return strings.Join(ls, ",")
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func labels(kv map[string]string) string {
	base := map[string]string{
		"reporter": "client", "source_workload": "unknown", "source_namespace": "unknown", "source_principal": "unknown",
		"destination_service": "unknown", "destination_workload": "unknown", "destination_namespace": "unknown",
		"route": "unknown", "request_protocol": "http", "response_code": "200", "grpc_status": "",
		"response_flags": "-", "connection_security_policy": "none",
	}
	for k, v := range kv {
		base[k] = v
	}
	var ls []string
	for k, v := range base {
		if v == "\x00" {
			continue
		}
		ls = append(ls, k+"="+v)
	}
	sort.Strings(ls)
	return strings.Join(ls, ",")
}

// serve runs one request through an Exchange the way the proxy does.
func serve(rec *Recorder, rep Reporter, r *http.Request, handler func(x *Exchange, w http.ResponseWriter)) *httptest.ResponseRecorder {
	rw := httptest.NewRecorder()
	x := rec.Begin(rw, r, rep)
	handler(x, x)
	x.End()
	return rw
}

func TestRequestMetricsAndLog(t *testing.T) {
	rg := newRig(t)
	rec := rg.tel.For(Peer{Workload: "productpage", Namespace: "shop"}, func() string { return "spiffe://weft/ns/shop/sa/pp" })
	upstream := func(x *Exchange, w http.ResponseWriter) {
		x.Service("reviews", "shop")
		x.Route("shop/reviews/0")
		x.Cluster("reviews-v2.shop:9080")
		x.Upstream("shop/reviews-v2-1", "10.0.0.7:9080")
		x.UpstreamResponse(&http.Response{StatusCode: 200})
		w.Header().Set(FlagHeader, "not-ours") // an upstream's header is not a flag of this proxy
		w.WriteHeader(200)
		w.Write([]byte("hello"))
	}
	for i := 0; i < 7; i++ {
		serve(rec, Client, httptest.NewRequest("POST", "http://reviews:9080/r/1?x=1", strings.NewReader("abc")), upstream)
	}
	fault := func(x *Exchange, w http.ResponseWriter) {
		x.Service("reviews", "shop")
		x.Route("shop/reviews/1")
		w.Header().Set(FlagHeader, "fault-abort") // fault.go's gRPC abort sets it without Flag
		w.WriteHeader(503)
	}
	for i := 0; i < 3; i++ {
		serve(rec, Client, httptest.NewRequest("GET", "http://reviews:9080/", nil), fault)
	}
	serve(rec, Client, httptest.NewRequest("GET", "http://nowhere/", nil), func(x *Exchange, w http.ResponseWriter) {
		x.Flag("unknown-service")
		w.WriteHeader(404)
	})
	src := map[string]string{"source_workload": "productpage", "source_namespace": "shop", "source_principal": "spiffe://weft/ns/shop/sa/pp"}
	with := func(kv map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range src {
			out[k] = v
		}
		for k, v := range kv {
			out[k] = v
		}
		return out
	}
	want := map[string]float64{
		labels(with(map[string]string{"destination_service": "reviews-v2.shop", "destination_workload": "reviews-v2-1", "destination_namespace": "shop", "route": "shop/reviews/0"})):               7,
		labels(with(map[string]string{"destination_service": "reviews.shop", "destination_namespace": "shop", "route": "shop/reviews/1", "response_code": "503", "response_flags": "fault-abort"})): 3,
		labels(with(map[string]string{"response_code": "404", "response_flags": "unknown-service"})):                                                                                                1,
	}
	for _, name := range []string{"weft_requests_total", "weft_request_duration_seconds"} {
		got := rg.series(t, name)
		if len(got) != len(want) {
			t.Errorf("%s: %d series; want %d:\n%v", name, len(got), len(want), got)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s{%s} = %v; want %v", name, k, got[k], v)
			}
		}
	}

	rg.tel.Flush()
	lines := rg.log.lines(t)
	if len(lines) != 11 {
		t.Fatalf("%d log lines; want 11", len(lines))
	}
	l := lines[0]
	for k, v := range map[string]any{
		"reporter": "client", "method": "POST", "authority": "reviews:9080", "path": "/r/1?x=1", "protocol": "HTTP/1.1",
		"status": 200.0, "response_flags": "-", "bytes_sent": 5.0, "upstream_host": "10.0.0.7:9080", "attempts": 1.0,
		"route": "shop/reviews/0", "upstream_cluster": "reviews-v2.shop:9080", "destination_service": "reviews-v2.shop",
		"destination_workload": "reviews-v2-1", "source_workload": "productpage", "connection_security_policy": "none",
	} {
		if l[k] != v {
			t.Errorf("log %s = %#v; want %#v", k, l[k], v)
		}
	}
	for _, k := range []string{"start_time", "duration_ms", "upstream_ms", "trace_id", "span_id", "request_id", "bytes_received"} {
		if _, ok := l[k]; !ok {
			t.Errorf("log line lacks %s: %v", k, l)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, l["start_time"].(string)); err != nil {
		t.Errorf("start_time: %v", err)
	}
	if lines[7]["response_flags"] != "fault-abort" || lines[10]["response_flags"] != "unknown-service" {
		t.Errorf("flags in log: %v, %v", lines[7]["response_flags"], lines[10]["response_flags"])
	}
}

func TestRequestBodyCounted(t *testing.T) {
	rg := newRig(t)
	rec := rg.tel.For(Peer{}, nil)
	body := strings.Repeat("x", 1000)
	serve(rec, Client, httptest.NewRequest("PUT", "http://a/", strings.NewReader(body)), func(x *Exchange, w http.ResponseWriter) {
		var buf [300]byte
		for {
			if _, err := x.req.Body.Read(buf[:]); err != nil {
				break
			}
		}
		w.WriteHeader(204)
	})
	rg.tel.Flush()
	if got := rg.log.lines(t)[0]["bytes_received"]; got != 1000.0 {
		t.Errorf("bytes_received %v; want 1000", got)
	}
}

func TestGRPCStatusAndServerSide(t *testing.T) {
	rg := newRig(t)
	rec := rg.tel.For(Peer{Workload: "reviews-1", Namespace: "shop"}, nil)
	r := httptest.NewRequest("POST", "http://reviews/pkg.Svc/Call", nil)
	r.Header.Set("Content-Type", "application/grpc")
	serve(rec, Server, r, func(x *Exchange, w http.ResponseWriter) {
		x.SetSource(Peer{Namespace: "shop", Principal: "spiffe://weft/ns/shop/sa/pp"})
		x.SetMutualTLS(true)
		w.WriteHeader(200)
		w.Write([]byte{0, 0, 0, 0, 0})
		// An unannounced trailer, as ReverseProxy copies it.
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "5")
		w.Header().Set(FlagHeader, "from-the-app") // the server side never reads flags from headers
	})
	got := rg.series(t, "weft_requests_total")
	want := labels(map[string]string{
		"reporter": "server", "source_namespace": "shop", "source_principal": "spiffe://weft/ns/shop/sa/pp",
		"destination_workload": "reviews-1", "destination_namespace": "shop", "request_protocol": "grpc", "grpc_status": "5",
		"connection_security_policy": "mutual_tls",
	})
	if got[want] != 1 || len(got) != 1 {
		t.Errorf("series %v; want {%s} 1", got, want)
	}
}

func TestClientClosedAndDefaultStatus(t *testing.T) {
	rg := newRig(t)
	rec := rg.tel.For(Peer{}, nil)
	r := httptest.NewRequest("GET", "http://a/", nil)
	ctx, cancel := contextWithCancel(r)
	cancel()
	serve(rec, Client, r.WithContext(ctx), func(*Exchange, http.ResponseWriter) {})
	serve(rec, Client, httptest.NewRequest("GET", "http://a/", nil), func(*Exchange, http.ResponseWriter) {})
	got := rg.series(t, "weft_requests_total")
	if got[labels(map[string]string{"response_code": "0", "response_flags": FlagClientClosed})] != 1 ||
		got[labels(map[string]string{"response_code": "200"})] != 1 {
		t.Errorf("series %v", got)
	}
}

func TestTCPMetricsAndLog(t *testing.T) {
	rg := newRig(t)
	rec := rg.tel.For(Peer{Workload: "client-1", Namespace: "ns"}, nil)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := rec.BeginTCP(a, Client)
	c.Destination("db", "ns", "ns/db-route/0", "db.ns:5432")
	c.Connected("ns/db-1", "10.0.0.9:5432")
	open := rg.series(t, "weft_tcp_connections_opened_total")
	c.Bytes(100, 2000)
	c.End()
	refused := rec.BeginTCP(a, Client)
	refused.Destination("db", "ns", "ns/db-route/0", "db.ns:5432")
	refused.Flag("circuit-open")
	refused.End()

	tcpLabels := func(kv map[string]string) string {
		m := map[string]string{"request_protocol": "\x00", "response_code": "\x00", "grpc_status": "\x00",
			"source_workload": "client-1", "source_namespace": "ns", "destination_service": "db.ns", "destination_namespace": "ns",
			"route": "ns/db-route/0"}
		for k, v := range kv {
			m[k] = v
		}
		return labels(m)
	}
	ok := tcpLabels(map[string]string{"destination_workload": "db-1"})
	flagged := tcpLabels(map[string]string{"response_flags": "circuit-open"})
	if open[ok] != 1 {
		t.Errorf("opened before close: %v; want {%s} 1", open, ok)
	}
	for name, want := range map[string]map[string]float64{
		"weft_tcp_connections_opened_total": {ok: 1, flagged: 1},
		"weft_tcp_connections_closed_total": {ok: 1, flagged: 1},
		"weft_tcp_received_bytes_total":     {ok: 100, flagged: 0},
		"weft_tcp_sent_bytes_total":         {ok: 2000, flagged: 0},
	} {
		got := rg.series(t, name)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s{%s} = %v; want %v (all: %v)", name, k, got[k], v, got)
			}
		}
	}
	rg.tel.Flush()
	lines := rg.log.lines(t)
	if len(lines) != 2 || lines[0]["protocol"] != "tcp" || lines[0]["bytes_sent"] != 2000.0 || lines[0]["upstream_host"] != "10.0.0.9:5432" ||
		lines[1]["response_flags"] != "circuit-open" {
		t.Errorf("tcp log lines: %v", lines)
	}
}

func TestNilRecorder(t *testing.T) {
	var rec *Recorder
	r := httptest.NewRequest("GET", "http://a/", nil)
	if x := rec.Begin(httptest.NewRecorder(), r, Client); x != nil {
		t.Fatal("nil recorder made an exchange")
	}
	var x *Exchange
	x.Service("a", "b")
	x.Route("r")
	x.Cluster("c")
	x.Upstream("w", "a")
	x.UpstreamResponse(nil)
	x.Flag("f")
	x.End()
	c := rec.BeginTCP(nil, Client)
	c.Destination("a", "b", "c", "d")
	c.Connected("w", "a")
	c.Bytes(1, 2)
	c.End()
	if len(r.Header) != 0 {
		t.Errorf("headers touched without telemetry: %v", r.Header)
	}
}

// The cached path resolves no labels and allocates nothing.
func TestMetricsHitAllocatesNothing(t *testing.T) {
	rg := newRig(t)
	k := requestKey{labelKey: labelKey{reporter: Client, src: Peer{Workload: "a", Namespace: "b"}, d: dest{svcName: "s", svcNamespace: "n", cluster: "s.n:80", route: "n/s/0", workload: "n/s-1"}, flags: noFlags}, code: 200, grpcStatus: -1}
	rg.tel.metrics.request(&k, time.Millisecond)
	if n := testing.AllocsPerRun(100, func() { rg.tel.metrics.request(&k, time.Millisecond) }); n != 0 {
		t.Errorf("%v allocations per cached observation; want 0", n)
	}
}

func contextWithCancel(r *http.Request) (ctx context.Context, cancel func()) {
	return context.WithCancel(r.Context())
}

type wrapper struct{ http.ResponseWriter }

func (w wrapper) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestExchangeOfUnwraps(t *testing.T) {
	rg := newRig(t)
	x := rg.tel.For(Peer{}, nil).Begin(httptest.NewRecorder(), httptest.NewRequest("GET", "http://a/", nil), Client)
	if got := ExchangeOf(wrapper{wrapper{x}}); got != x {
		t.Errorf("ExchangeOf through two wrappers: %p; want %p", got, x)
	}
	if got := ExchangeOf(httptest.NewRecorder()); got != nil {
		t.Errorf("ExchangeOf(recorder) = %p", got)
	}
	x.End()
}
