package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const (
	tid   = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid   = "00f067aa0ba902b7"
	tpOK  = "00-" + tid + "-" + sid + "-01"
	tpOff = "00-" + tid + "-" + sid + "-00"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestExtract(t *testing.T) {
	tests := []struct {
		name    string
		h       http.Header
		valid   bool
		trace   string // hex, when valid
		span    string
		sampled bool
		decided bool
		formats uint8
	}{
		{"none", hdr(), false, "", "", false, false, 0},
		{"w3c sampled", hdr("traceparent", tpOK), true, tid, sid, true, true, fmtW3C},
		{"w3c not sampled", hdr("traceparent", tpOff), true, tid, sid, false, true, fmtW3C},
		{"w3c future version with more fields", hdr("traceparent", "cc-"+tid+"-"+sid+"-01-what-the-future-holds"), true, tid, sid, true, true, fmtW3C},
		{"w3c future version, no dash after flags", hdr("traceparent", "cc-"+tid+"-"+sid+"-01x"), false, "", "", false, false, fmtW3C},
		{"w3c version ff", hdr("traceparent", "ff-"+tid+"-"+sid+"-01"), false, "", "", false, false, fmtW3C},
		{"w3c version 00 too long", hdr("traceparent", tpOK+"-x"), false, "", "", false, false, fmtW3C},
		{"w3c upper case", hdr("traceparent", "00-"+strings.ToUpper(tid)+"-"+sid+"-01"), false, "", "", false, false, fmtW3C},
		{"w3c zero trace id", hdr("traceparent", "00-"+strings.Repeat("0", 32)+"-"+sid+"-01"), false, "", "", false, false, fmtW3C},
		{"w3c zero span id", hdr("traceparent", "00-"+tid+"-"+strings.Repeat("0", 16)+"-01"), false, "", "", false, false, fmtW3C},
		{"w3c garbage", hdr("traceparent", "hello"), false, "", "", false, false, fmtW3C},
		{"w3c twice", hdr("traceparent", tpOK, "traceparent", tpOK), false, "", "", false, false, fmtW3C},
		{"b3 single", hdr("b3", tid+"-"+sid+"-1"), true, tid, sid, true, true, fmtB3Single},
		{"b3 single with parent", hdr("b3", tid+"-"+sid+"-0-"+"05e3ac9a4f6e3b90"), true, tid, sid, false, true, fmtB3Single},
		{"b3 single ids only", hdr("b3", tid+"-"+sid), true, tid, sid, false, false, fmtB3Single},
		{"b3 single 64-bit trace", hdr("b3", "a3ce929d0e0e4736-"+sid+"-d"), true, "0000000000000000a3ce929d0e0e4736", sid, true, true, fmtB3Single},
		{"b3 single deny only", hdr("b3", "0"), false, "", "", false, true, fmtB3Single},
		{"b3 single bad sampled", hdr("b3", tid+"-"+sid+"-x"), false, "", "", false, false, fmtB3Single},
		{"b3 single bad span", hdr("b3", tid+"-zz"), false, "", "", false, false, fmtB3Single},
		{"b3 multi", hdr("X-B3-TraceId", tid, "X-B3-SpanId", sid, "X-B3-Sampled", "1"), true, tid, sid, true, true, fmtB3Multi},
		{"b3 multi flags debug", hdr("X-B3-TraceId", tid, "X-B3-SpanId", sid, "X-B3-Flags", "1"), true, tid, sid, true, true, fmtB3Multi},
		{"b3 multi upper case", hdr("X-B3-TraceId", strings.ToUpper(tid), "X-B3-SpanId", sid), true, tid, sid, false, false, fmtB3Multi},
		{"b3 multi missing span", hdr("X-B3-TraceId", tid), false, "", "", false, false, fmtB3Multi},
		{"b3 multi sampled only", hdr("X-B3-Sampled", "0"), false, "", "", false, true, fmtB3Multi},
		{"w3c wins over b3", hdr("traceparent", tpOK, "b3", "a3ce929d0e0e4736a3ce929d0e0e4736-"+sid+"-0"), true, tid, sid, true, true, fmtW3C | fmtB3Single},
		{"bad w3c falls back to b3", hdr("traceparent", "junk", "b3", tid+"-"+sid+"-1"), true, tid, sid, true, true, fmtW3C | fmtB3Single},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, formats := extract(tt.h)
			if sc.valid != tt.valid || formats != tt.formats || sc.decided != tt.decided {
				t.Fatalf("valid %v formats %b decided %v; want %v %b %v", sc.valid, formats, sc.decided, tt.valid, tt.formats, tt.decided)
			}
			if !tt.valid {
				return
			}
			if sc.traceID.String() != tt.trace || sc.spanID.String() != tt.span || sc.sampled != tt.sampled {
				t.Fatalf("got %s %s sampled=%v; want %s %s %v", sc.traceID, sc.spanID, sc.sampled, tt.trace, tt.span, tt.sampled)
			}
		})
	}
}

// beginWith runs Begin on a request with headers h and returns what is
// forwarded.
func beginWith(t *testing.T, tel *Telemetry, h http.Header) (*Exchange, http.Header) {
	t.Helper()
	r := httptest.NewRequest("GET", "http://web/", nil)
	r.Header = h
	x := tel.For(Peer{}, nil).Begin(httptest.NewRecorder(), r, Client)
	t.Cleanup(x.End)
	return x, r.Header
}

func propagationOnly(t *testing.T) *Telemetry {
	tel, err := New(Options{TraceSampling: 1})
	if err != nil {
		t.Fatal(err)
	}
	return tel
}

func TestPropagationOnly(t *testing.T) {
	t.Run("traceparent passes through untouched", func(t *testing.T) {
		x, h := beginWith(t, propagationOnly(t), hdr("traceparent", tpOK, "tracestate", "vendor=1"))
		if got := h.Get("traceparent"); got != tpOK {
			t.Errorf("traceparent %q; want %q (no span of ours without an exporter)", got, tpOK)
		}
		if h.Get("tracestate") != "vendor=1" {
			t.Errorf("tracestate %q; want it kept", h.Get("tracestate"))
		}
		if x.TraceID().String() != tid {
			t.Errorf("trace id %s", x.TraceID())
		}
	})
	t.Run("no context starts a trace and a request id", func(t *testing.T) {
		x, h := beginWith(t, propagationOnly(t), hdr())
		sc := parseTraceparent(h.Get("traceparent"))
		if !sc.valid || !sc.sampled || sc.traceID != x.TraceID() {
			t.Errorf("traceparent %q: want a new sampled trace %s", h.Get("traceparent"), x.TraceID())
		}
		if id := h.Get("x-request-id"); len(id) != 36 || id[14] != '4' || id != x.RequestID() {
			t.Errorf("x-request-id %q; want a UUIDv4", id)
		}
	})
	t.Run("request id kept", func(t *testing.T) {
		_, h := beginWith(t, propagationOnly(t), hdr("x-request-id", "abc"))
		if h.Get("x-request-id") != "abc" {
			t.Errorf("x-request-id %q", h.Get("x-request-id"))
		}
	})
	t.Run("b3 single gains traceparent, b3 untouched", func(t *testing.T) {
		b3 := tid + "-" + sid + "-1-05e3ac9a4f6e3b90"
		_, h := beginWith(t, propagationOnly(t), hdr("b3", b3))
		if h.Get("traceparent") != tpOK || h.Get("b3") != b3 {
			t.Errorf("traceparent %q b3 %q", h.Get("traceparent"), h.Get("b3"))
		}
	})
	t.Run("b3 multi gains traceparent", func(t *testing.T) {
		_, h := beginWith(t, propagationOnly(t), hdr("X-B3-TraceId", tid, "X-B3-SpanId", sid, "X-B3-Sampled", "0"))
		if h.Get("traceparent") != tpOff || h.Get("X-B3-SpanId") != sid {
			t.Errorf("traceparent %q x-b3-spanid %q", h.Get("traceparent"), h.Get("X-B3-SpanId"))
		}
	})
	t.Run("malformed starts a new trace and drops tracestate", func(t *testing.T) {
		x, h := beginWith(t, propagationOnly(t), hdr("traceparent", "00-nothex-"+sid+"-01", "tracestate", "vendor=1"))
		sc := parseTraceparent(h.Get("traceparent"))
		if !sc.valid || sc.traceID != x.TraceID() || x.TraceID().String() == tid {
			t.Errorf("traceparent %q; want a new trace", h.Get("traceparent"))
		}
		if _, ok := h["Tracestate"]; ok {
			t.Errorf("tracestate kept for a trace context that could not be read")
		}
	})
	t.Run("malformed b3 rewritten for the new trace", func(t *testing.T) {
		x, h := beginWith(t, propagationOnly(t), hdr("b3", "nonsense-value"))
		if got, want := h.Get("b3"), x.TraceID().String()+"-"; !strings.HasPrefix(got, want) {
			t.Errorf("b3 %q; want the new trace %s", got, want)
		}
	})
	t.Run("b3 deny keeps the decision", func(t *testing.T) {
		_, h := beginWith(t, propagationOnly(t), hdr("b3", "0"))
		if sc := parseTraceparent(h.Get("traceparent")); !sc.valid || sc.sampled {
			t.Errorf("traceparent %q; want a new unsampled trace", h.Get("traceparent"))
		}
	})
	t.Run("sampling 0 marks new traces unsampled", func(t *testing.T) {
		tel, _ := New(Options{TraceSampling: 0})
		_, h := beginWith(t, tel, hdr())
		if sc := parseTraceparent(h.Get("traceparent")); !sc.valid || sc.sampled {
			t.Errorf("traceparent %q; want unsampled", h.Get("traceparent"))
		}
	})
}

func withSDK(t *testing.T, sampling float64) (*Telemetry, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tel, err := New(Options{SpanExporter: exp, TraceSampling: sampling})
	if err != nil {
		t.Fatal(err)
	}
	return tel, exp
}

func spansOf(t *testing.T, tel *Telemetry, exp *tracetest.InMemoryExporter) tracetest.SpanStubs {
	t.Helper()
	// Not Close: the in-memory exporter forgets its spans on shutdown.
	if err := tel.tracer.tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return exp.GetSpans()
}

func TestSpans(t *testing.T) {
	t.Run("child of the caller, next hop child of ours", func(t *testing.T) {
		tel, exp := withSDK(t, 1)
		r := httptest.NewRequest("GET", "http://web/x", nil)
		r.Header = hdr("traceparent", tpOK, "b3", tid+"-"+sid+"-1", "X-B3-TraceId", tid, "X-B3-SpanId", sid)
		x := tel.For(Peer{Workload: "me", Namespace: "ns"}, nil).Begin(httptest.NewRecorder(), r, Client)
		x.Route("ns/web/0")
		x.Cluster("web.ns:80")
		x.End()
		out := parseTraceparent(r.Header.Get("traceparent"))
		if out.traceID.String() != tid || out.spanID.String() == sid || !out.sampled {
			t.Fatalf("forwarded traceparent %q: want trace %s with a new span id", r.Header.Get("traceparent"), tid)
		}
		if got, want := r.Header.Get("b3"), tid+"-"+out.spanID.String()+"-1-"+sid; got != want {
			t.Errorf("b3 %q; want %q", got, want)
		}
		if r.Header.Get("X-B3-SpanId") != out.spanID.String() || r.Header.Get("X-B3-ParentSpanId") != sid {
			t.Errorf("x-b3 span %q parent %q", r.Header.Get("X-B3-SpanId"), r.Header.Get("X-B3-ParentSpanId"))
		}
		spans := spansOf(t, tel, exp)
		if len(spans) != 1 {
			t.Fatalf("%d spans; want 1", len(spans))
		}
		s := spans[0]
		if s.SpanContext.TraceID().String() != tid || s.SpanContext.SpanID() != trace.SpanID(out.spanID) || s.Parent.SpanID().String() != sid {
			t.Errorf("span %s/%s parent %s", s.SpanContext.TraceID(), s.SpanContext.SpanID(), s.Parent.SpanID())
		}
		if s.SpanKind != trace.SpanKindClient || s.Name != "GET ns/web/0" {
			t.Errorf("kind %v name %q", s.SpanKind, s.Name)
		}
	})
	t.Run("server side, new trace", func(t *testing.T) {
		tel, exp := withSDK(t, 1)
		r := httptest.NewRequest("POST", "http://web/x", nil)
		x := tel.For(Peer{}, nil).Begin(httptest.NewRecorder(), r, Server)
		x.End()
		spans := spansOf(t, tel, exp)
		if len(spans) != 1 || spans[0].SpanKind != trace.SpanKindServer || spans[0].Parent.IsValid() {
			t.Fatalf("spans %+v; want one root server span", spans)
		}
		if out := parseTraceparent(r.Header.Get("traceparent")); out.spanID != SpanID(spans[0].SpanContext.SpanID()) {
			t.Errorf("forwarded span %s; want ours %s", out.spanID, spans[0].SpanContext.SpanID())
		}
	})
	t.Run("parent's no wins over sampling 1", func(t *testing.T) {
		tel, exp := withSDK(t, 1)
		_, h := beginWith(t, tel, hdr("traceparent", tpOff))
		if sc := parseTraceparent(h.Get("traceparent")); sc.sampled {
			t.Errorf("forwarded %q sampled", h.Get("traceparent"))
		}
		// beginWith ends the exchange at cleanup; close after it.
		t.Cleanup(func() {
			if n := len(spansOf(t, tel, exp)); n != 0 {
				t.Errorf("%d spans exported for an unsampled trace", n)
			}
		})
	})
}

var _ sdktrace.SpanExporter = (*tracetest.InMemoryExporter)(nil)

func FuzzTraceHeaders(f *testing.F) {
	f.Add(tpOK, "", "", "")
	f.Add("", tid+"-"+sid+"-1-"+sid, "", "")
	f.Add("", "", tid, sid)
	f.Add("cc-"+tid+"-"+sid+"-01-x", "0", "x", "")
	f.Fuzz(func(t *testing.T, tp, b3, mt, ms string) {
		h := http.Header{}
		for k, v := range map[string]string{hTraceparent: tp, hB3: b3, hB3TraceID: mt, hB3SpanID: ms} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		parent, formats := extract(h)
		sc := parent
		if !sc.valid {
			sc = spanContext{traceID: newTraceID(), spanID: newSpanID(), valid: true}
		}
		inject(h, sc, parent, formats)
		if got := parseTraceparent(h.Get(hTraceparent)); !got.valid || got.traceID != sc.traceID {
			t.Fatalf("injected traceparent %q does not parse back", h.Get(hTraceparent))
		}
	})
}
