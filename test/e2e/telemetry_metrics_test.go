package e2e

import (
	"bytes"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// telemetryMesh: Service web (HTTP) with an HTTPRoute whose rule 0 aborts
// /fault with 503 and rule 1 sends the rest to web; Service grpc whose
// route aborts /grpc.testing.TestService/EmptyCall with gRPC status 14;
// Service tcp (opaque). The proxy is told it is workload frontend-1.
func telemetryMesh(t *testing.T, extraArgs ...string) (*Proxy, *HTTPBackend) {
	t.Helper()
	web := NewHTTPBackend(t, "a")
	g := NewGRPCBackend(t, "g1")
	tcp := NewTCPBackend(t, "t1", false)
	p := StartProxy(t, docs(
		serviceWith(t, "web", 80, "http", web),
		serviceWith(t, "grpc", 50051, "grpc", g),
		serviceWith(t, "tcp", 9000, "tcp", tcp),
		`apiVersion: weft.dev/v1alpha1
kind: FaultInjection
metadata: {name: abort}
spec:
  abort: {httpStatus: 503, percent: 100}
`,
		`apiVersion: weft.dev/v1alpha1
kind: FaultInjection
metadata: {name: abort-grpc}
spec:
  abort: {grpcStatus: 14, percent: 100}
`,
		httpRoute("web", "web", `
- matches: [{path: {type: PathPrefix, value: /fault}}]
  filters:
  - type: ExtensionRef
    extensionRef: {group: weft.dev, kind: FaultInjection, name: abort}
  backendRefs: [{name: web, port: 80}]
- backendRefs: [{name: web, port: 80}]
`),
		`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc}
spec:
  parentRefs: [{group: "", kind: Service, name: grpc}]
  rules:
  - matches: [{method: {service: grpc.testing.TestService, method: EmptyCall}}]
    filters:
    - type: ExtensionRef
      extensionRef: {group: weft.dev, kind: FaultInjection, name: abort-grpc}
    backendRefs: [{name: grpc, port: 50051}]
  - backendRefs: [{name: grpc, port: 50051}]
`), ProxyOptions{Upstreams: []string{"grpc"}, Args: append([]string{"--name", "frontend-1", "--namespace", "default"}, extraArgs...)})
	return p, web
}

// client labels every request of the frontend proxy carries.
func clientLabels(kv ...string) map[string]string {
	m := map[string]string{
		"reporter": "client", "source_workload": "frontend-1", "source_namespace": "default", "source_principal": "unknown",
		"connection_security_policy": "none",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestTelemetryRequestMetrics(t *testing.T) {
	t.Parallel()
	p, web := telemetryMesh(t)
	c := proxyClient(t, p)
	for i := 0; i < 7; i++ {
		mustOK(t, c, "http://web/ok")
	}
	for i := 0; i < 3; i++ {
		if r := get(t, c, "http://web/fault"); r.Status != 503 || r.WeftError() != "fault-abort" {
			t.Fatalf("fault: %s", r)
		}
	}
	for i := 0; i < 2; i++ {
		if r := get(t, c, "http://web/missing?status=404"); r.Status != 404 {
			t.Fatalf("app 404: %s", r)
		}
	}
	if r := get(t, c, "http://nosuch/"); r.Status != 404 || r.WeftError() != "unknown-service" {
		t.Fatalf("unknown service: %s", r)
	}
	if web.Requests.Load() != 9 {
		t.Fatalf("backend saw %d requests; want 9", web.Requests.Load())
	}

	ok := clientLabels("destination_service", "web.default", "destination_workload", "web-a", "destination_namespace", "default",
		"route", "default/web/1", "request_protocol", "http", "response_code", "200", "grpc_status", "", "response_flags", "-")
	faulted := clientLabels("destination_service", "web.default", "destination_workload", "unknown", "destination_namespace", "default",
		"route", "default/web/0", "request_protocol", "http", "response_code", "503", "grpc_status", "", "response_flags", "fault-abort")
	app404 := clientLabels("destination_service", "web.default", "destination_workload", "web-a", "destination_namespace", "default",
		"route", "default/web/1", "request_protocol", "http", "response_code", "404", "grpc_status", "", "response_flags", "-")
	unknownSvc := clientLabels("destination_service", "unknown", "destination_workload", "unknown", "destination_namespace", "unknown",
		"route", "unknown", "response_code", "404", "response_flags", "unknown-service")
	m := p.Scrape()
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{{ok, 7}, {faulted, 3}, {app404, 2}, {unknownSvc, 1}} {
		for _, name := range []string{"weft_requests_total", "weft_request_duration_seconds"} {
			if v, found := m.Value(t, name, tc.labels); !found || v != tc.want {
				t.Errorf("%s%v = %v (found %v); want %v;%s", name, tc.labels, v, found, tc.want, m.Dump(name))
			}
		}
	}
	if n := len(m["weft_requests_total"].Metric); n != 4 {
		t.Errorf("%d request series; want 4:%s", n, m.Dump("weft_requests_total"))
	}
	// Buckets from 0.5 ms to 10 s (and +Inf).
	h := m["weft_request_duration_seconds"].Metric[0].GetHistogram()
	if b := h.GetBucket(); h.GetSampleSum() <= 0 || len(b) != 15 || b[0].GetUpperBound() != 0.0005 || b[13].GetUpperBound() != 10 {
		t.Errorf("histogram: sum %v, %d buckets from %v", h.GetSampleSum(), len(h.GetBucket()), h.GetBucket()[0].GetUpperBound())
	}
}

func TestTelemetryGRPCMetrics(t *testing.T) {
	t.Parallel()
	p, _ := telemetryMesh(t)
	gc := grpcClient(t, p.Upstream["grpc"], nil)
	for i := 0; i < 4; i++ {
		if _, err := gc.UnaryCall(testContext(t, 5*time.Second), &grpc_testing.SimpleRequest{ResponseSize: 10}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		_, err := gc.EmptyCall(testContext(t, 5*time.Second), &grpc_testing.Empty{})
		if st := status.Convert(err); st.Code() != codes.Unavailable {
			t.Fatalf("EmptyCall through the abort: %v", err)
		}
	}
	base := []string{"destination_service", "grpc.default", "destination_namespace", "default", "request_protocol", "grpc", "response_code", "200"}
	p.WaitValue("weft_requests_total", clientLabels(append(base, "destination_workload", "grpc-g1", "route", "default/grpc/1",
		"grpc_status", "0", "response_flags", "-")...), 4)
	p.WaitValue("weft_requests_total", clientLabels(append(base, "destination_workload", "unknown", "route", "default/grpc/0",
		"grpc_status", "14", "response_flags", "fault-abort")...), 2)
}

func TestTelemetryTCPMetrics(t *testing.T) {
	t.Parallel()
	p, _ := telemetryMesh(t)
	msg := bytes.Repeat([]byte("0123456789"), 100) // 1000 bytes each way
	for i := 0; i < 2; i++ {
		conn, err := dialConnect(testContext(t, 5*time.Second), p.Outbound, "tcp:9000")
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write(msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo: %v", err)
		}
		conn.Close()
	}
	labels := clientLabels("destination_service", "tcp.default", "destination_workload", "tcp-t1", "destination_namespace", "default",
		"route", "unknown", "response_flags", "-")
	for name, want := range map[string]float64{
		"weft_tcp_connections_opened_total": 2,
		"weft_tcp_connections_closed_total": 2,
		"weft_tcp_received_bytes_total":     2000,
		"weft_tcp_sent_bytes_total":         2000,
	} {
		p.WaitValue(name, labels, want)
	}
	lines := p.WaitAccessLog(2, func(l map[string]any) bool { return l["protocol"] == "tcp" })
	for _, l := range lines {
		if l["bytes_received"] != 1000.0 || l["bytes_sent"] != 1000.0 || l["destination_workload"] != "tcp-t1" || l["upstream_host"] == nil {
			t.Errorf("tcp access log line: %v", l)
		}
	}
}

// TestTelemetryBothSides: a client sidecar calls a server sidecar over
// mutual TLS; each reports the same requests from its side, the server
// naming the client by its verified identity.
func TestTelemetryBothSides(t *testing.T) {
	t.Parallel()
	client, server, _, _ := mTLSMesh(t, "reviews", "--name", "reviews-1", "--namespace", "default")
	c := proxyClient(t, client)
	for i := 0; i < 5; i++ {
		mustOK(t, c, "http://reviews/both")
	}
	common := map[string]string{
		"destination_workload": "reviews-1", "destination_namespace": "default", "request_protocol": "http",
		"response_code": "200", "response_flags": "-", "connection_security_policy": "mutual_tls",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	client.WaitValue("weft_requests_total", with("reporter", "client", "source_principal", "spiffe://mesh.test/ns/default/sa/web",
		"destination_service", "reviews.default"), 5)
	server.WaitValue("weft_requests_total", with("reporter", "server", "source_principal", "spiffe://mesh.test/ns/default/sa/web",
		"source_namespace", "default", "source_workload", "unknown"), 5)
	// One trace per request across both sides, client span parent of nothing
	// here (no exporter): both log the same trace id.
	cl := client.WaitAccessLog(5, nil)
	sv := server.WaitAccessLog(5, nil)
	for i := range cl {
		if cl[i]["trace_id"] != sv[i]["trace_id"] || cl[i]["request_id"] != sv[i]["request_id"] {
			t.Errorf("request %d: client trace %v request %v, server trace %v request %v", i,
				cl[i]["trace_id"], cl[i]["request_id"], sv[i]["trace_id"], sv[i]["request_id"])
		}
	}
	if sv[0]["reporter"] != "server" || sv[0]["connection_security_policy"] != "mutual_tls" {
		t.Errorf("server log line: %v", sv[0])
	}
}
