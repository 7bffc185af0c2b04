package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

const (
	inTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	inSpan  = "00f067aa0ba902b7"
)

// lastHeaders are the trace headers of the backend's latest request.
func lastHeaders(t *testing.T, b *HTTPBackend) map[string]string {
	t.Helper()
	log := b.Log()
	if len(log) == 0 {
		t.Fatal("backend got no request")
	}
	h := log[len(log)-1].Header
	out := map[string]string{}
	for _, k := range []string{"Traceparent", "Tracestate", "B3", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "X-Request-Id"} {
		out[k] = h.Get(k)
	}
	return out
}

func hexID(b []byte) string { return fmt.Sprintf("%x", b) }

// TestTelemetryTracePropagation: without an exporter the proxy joins the
// caller's trace and passes it on; it starts one when there is none.
func TestTelemetryTracePropagation(t *testing.T) {
	t.Parallel()
	p, web := telemetryMesh(t)
	c := proxyClient(t, p)

	t.Run("w3c passes through", func(t *testing.T) {
		tp := "00-" + inTrace + "-" + inSpan + "-01"
		mustOK(t, c, "http://web/tp", "traceparent", tp, "tracestate", "vendor=x")
		h := lastHeaders(t, web)
		if h["Traceparent"] != tp || h["Tracestate"] != "vendor=x" {
			t.Errorf("backend got traceparent %q tracestate %q; want them unchanged", h["Traceparent"], h["Tracestate"])
		}
		if len(h["X-Request-Id"]) != 36 {
			t.Errorf("x-request-id %q; want a UUID", h["X-Request-Id"])
		}
	})
	t.Run("none starts a trace", func(t *testing.T) {
		mustOK(t, c, "http://web/none")
		h := lastHeaders(t, web)
		traceID, _, flags := traceparentParts(t, h["Traceparent"])
		if traceID == inTrace || flags != "01" {
			t.Errorf("traceparent %q; want a new sampled trace", h["Traceparent"])
		}
	})
	t.Run("b3 single", func(t *testing.T) {
		mustOK(t, c, "http://web/b3", "b3", inTrace+"-"+inSpan+"-1")
		h := lastHeaders(t, web)
		if h["Traceparent"] != "00-"+inTrace+"-"+inSpan+"-01" || h["B3"] != inTrace+"-"+inSpan+"-1" {
			t.Errorf("traceparent %q b3 %q", h["Traceparent"], h["B3"])
		}
	})
	t.Run("b3 multi, 64-bit trace id", func(t *testing.T) {
		mustOK(t, c, "http://web/b3m", "X-B3-TraceId", inTrace[16:], "X-B3-SpanId", inSpan, "X-B3-Sampled", "0")
		h := lastHeaders(t, web)
		if h["Traceparent"] != "00-0000000000000000"+inTrace[16:]+"-"+inSpan+"-00" || h["X-B3-Traceid"] != inTrace[16:] {
			t.Errorf("traceparent %q x-b3-traceid %q", h["Traceparent"], h["X-B3-Traceid"])
		}
	})
	t.Run("malformed starts a trace", func(t *testing.T) {
		mustOK(t, c, "http://web/bad", "traceparent", "00-"+strings.ToUpper(inTrace)+"-"+inSpan+"-01", "tracestate", "vendor=x")
		h := lastHeaders(t, web)
		traceID, _, _ := traceparentParts(t, h["Traceparent"])
		if strings.EqualFold(traceID, inTrace) || h["Tracestate"] != "" {
			t.Errorf("traceparent %q tracestate %q; want a new trace without the old state", h["Traceparent"], h["Tracestate"])
		}
	})
}

// TestTelemetrySpansOTLPHTTP: with --otlp-endpoint the proxy adds a client
// span: the backend's parent is that span, and the span reaches the
// receiver as a child of the caller's.
func TestTelemetrySpansOTLPHTTP(t *testing.T) {
	t.Parallel()
	rcv := NewOTLPReceiver(t, false)
	p, web := telemetryMesh(t, "--otlp-endpoint", rcv.Endpoint)
	c := proxyClient(t, p)

	for _, tc := range []struct{ name, header, value string }{
		{"w3c", "traceparent", "00-" + inTrace + "-" + inSpan + "-01"},
		{"b3 single", "b3", inTrace + "-" + inSpan + "-1"},
		{"b3 multi", "X-B3-TraceId", inTrace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each case its own trace id, so spans are told apart.
			trace := fmt.Sprintf("%s%02x", inTrace[:30], len(tc.name))
			hdr := []string{tc.header, strings.Replace(tc.value, inTrace, trace, 1)}
			if tc.header == "X-B3-TraceId" {
				hdr = append(hdr, "X-B3-SpanId", inSpan, "X-B3-Sampled", "1")
			}
			mustOK(t, c, "http://web/traced", hdr...)
			h := lastHeaders(t, web)
			traceID, spanID, flags := traceparentParts(t, h["Traceparent"])
			if traceID != trace || spanID == inSpan || flags != "01" {
				t.Fatalf("backend got traceparent %q; want trace %s, a new span id, sampled", h["Traceparent"], trace)
			}
			spans := rcv.WaitSpans(t, trace, 1)
			s := spans[0]
			if hexID(s.GetSpanId()) != spanID || hexID(s.GetParentSpanId()) != inSpan || s.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
				t.Errorf("span %s parent %s kind %v; want %s parent %s CLIENT", hexID(s.GetSpanId()), hexID(s.GetParentSpanId()), s.GetKind(), spanID, inSpan)
			}
			if s.GetName() != "GET default/web/1" || spanAttr(s, "http.response.status_code") != "200" || spanAttr(s, "weft.route") != "default/web/1" ||
				spanAttr(s, "weft.destination.workload") != "web-a" || spanAttr(s, "weft.request_id") != h["X-Request-Id"] {
				t.Errorf("span %q attributes %v", s.GetName(), s.GetAttributes())
			}
			if rcv.Service(spanID) != "frontend-1" {
				t.Errorf("resource service.name %q; want frontend-1", rcv.Service(spanID))
			}
			switch tc.header {
			case "b3":
				if want := trace + "-" + spanID + "-1-" + inSpan; h["B3"] != want {
					t.Errorf("b3 %q; want %q", h["B3"], want)
				}
			case "X-B3-TraceId":
				if h["X-B3-Spanid"] != spanID || h["X-B3-Parentspanid"] != inSpan || h["X-B3-Traceid"] != trace {
					t.Errorf("x-b3: trace %q span %q parent %q", h["X-B3-Traceid"], h["X-B3-Spanid"], h["X-B3-Parentspanid"])
				}
			}
		})
	}
	t.Run("fault abort span", func(t *testing.T) {
		trace := inTrace[:30] + "ff"
		get(t, c, "http://web/fault", "traceparent", "00-"+trace+"-"+inSpan+"-01")
		s := rcv.WaitSpans(t, trace, 1)[0]
		if spanAttr(s, "http.response.status_code") != "503" || spanAttr(s, "weft.response_flags") != "fault-abort" ||
			s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("fault span: status %v attributes %v", s.GetStatus(), s.GetAttributes())
		}
	})
	t.Run("unsampled caller, no span", func(t *testing.T) {
		trace := inTrace[:30] + "ee"
		mustOK(t, c, "http://web/unsampled", "traceparent", "00-"+trace+"-"+inSpan+"-00")
		if _, _, flags := traceparentParts(t, lastHeaders(t, web)["Traceparent"]); flags != "00" {
			t.Errorf("forwarded flags %s; want the caller's 00", flags)
		}
		// Spans of the other subtests arrive; this one never does.
		mustOK(t, c, "http://web/after", "traceparent", "00-"+inTrace[:30]+"dd-"+inSpan+"-01")
		rcv.WaitSpans(t, inTrace[:30]+"dd", 1)
		if n := len(rcv.Spans(trace)); n != 0 {
			t.Errorf("%d spans exported for an unsampled trace", n)
		}
	})
}

// TestTelemetryTraceThreeHops: app → client sidecar → server sidecar → app,
// both sidecars exporting over OTLP/gRPC: one trace, the server span a
// child of the client span, the backend a child of the server span.
func TestTelemetryTraceThreeHops(t *testing.T) {
	t.Parallel()
	rcv := NewOTLPReceiver(t, true)
	web := NewHTTPBackend(t, "reviews-1")
	inbound := freeAddr(t)
	StartProxy(t, "", ProxyOptions{Args: []string{"--inbound", inbound, "--app", "main=" + web.Addr,
		"--name", "reviews-1", "--otlp-endpoint", rcv.Endpoint}})
	_, port, _ := net.SplitHostPort(web.Addr)
	client := StartProxy(t, docs(service("reviews", 80, "http", ""), fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: reviews-1, labels: {app: reviews}}
spec:
  address: 127.0.0.1
  ports: [{name: main, port: %s}]
  inbound: %s
`, port, inbound)), ProxyOptions{Args: []string{"--name", "productpage-1", "--otlp-endpoint", rcv.Endpoint}})

	mustOK(t, proxyClient(t, client), "http://reviews/chain", "traceparent", "00-"+inTrace+"-"+inSpan+"-01")
	spans := rcv.WaitSpans(t, inTrace, 2)
	var cs, ss *tracepb.Span
	for _, s := range spans {
		switch s.GetKind() {
		case tracepb.Span_SPAN_KIND_CLIENT:
			cs = s
		case tracepb.Span_SPAN_KIND_SERVER:
			ss = s
		}
	}
	if cs == nil || ss == nil {
		t.Fatalf("spans %v; want one client and one server span", spans)
	}
	if hexID(cs.GetParentSpanId()) != inSpan || hexID(ss.GetParentSpanId()) != hexID(cs.GetSpanId()) {
		t.Errorf("client span parent %x (want %s); server span parent %x (want the client span %x)",
			cs.GetParentSpanId(), inSpan, ss.GetParentSpanId(), cs.GetSpanId())
	}
	if rcv.Service(hexID(cs.GetSpanId())) != "productpage-1" || rcv.Service(hexID(ss.GetSpanId())) != "reviews-1" {
		t.Errorf("services: client %q server %q", rcv.Service(hexID(cs.GetSpanId())), rcv.Service(hexID(ss.GetSpanId())))
	}
	traceID, parent, _ := traceparentParts(t, lastHeaders(t, web)["Traceparent"])
	if traceID != inTrace || parent != hexID(ss.GetSpanId()) {
		t.Errorf("app got trace %s parent %s; want %s parent %x (the server span)", traceID, parent, inTrace, ss.GetSpanId())
	}
}

// TestTelemetryExporterDown: a collector that is not there costs spans,
// never requests; a malformed endpoint is refused at start.
func TestTelemetryExporterDown(t *testing.T) {
	t.Parallel()
	dead := freeAddr(t)
	p, _ := telemetryMesh(t, "--otlp-endpoint", "http://"+dead)
	c := proxyClient(t, p)
	for i := 0; i < 5; i++ {
		mustOK(t, c, "http://web/nobody-collects")
	}
	p.WaitOutput(15*time.Second, "span export")

	out, err := runWeft(t, "proxy", "--config", "/dev/null", "--otlp-endpoint", "ftp://collector:4317")
	if err == nil || !strings.Contains(out, "OTLP endpoint") {
		t.Errorf("ftp endpoint: err %v, output %q", err, out)
	}
}
