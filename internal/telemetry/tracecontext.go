package telemetry

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
)

// Trace context propagation: W3C traceparent/tracestate
// (https://www.w3.org/TR/trace-context/) and Zipkin B3, both the single
// "b3" header and the X-B3-* headers. A request's context is read from
// traceparent first, then b3, then X-B3-*; one that is missing or malformed
// starts a new trace. The outgoing request carries traceparent always, and
// the B3 forms the caller used, all naming the same span.

// Canonical header keys, read straight from the map (no canonicalisation
// per request).
const (
	hTraceparent = "Traceparent"
	hTracestate  = "Tracestate"
	hB3          = "B3"
	hB3TraceID   = "X-B3-Traceid"
	hB3SpanID    = "X-B3-Spanid"
	hB3Parent    = "X-B3-Parentspanid"
	hB3Sampled   = "X-B3-Sampled"
	hB3Flags     = "X-B3-Flags"
	hRequestID   = "X-Request-Id"
)

// Formats a request carried its trace context in.
const (
	fmtW3C uint8 = 1 << iota
	fmtB3Single
	fmtB3Multi
)

// TraceID and SpanID are W3C trace and span ids.
type (
	TraceID [16]byte
	SpanID  [8]byte
)

func (t TraceID) String() string { return hex.EncodeToString(t[:]) }
func (s SpanID) String() string  { return hex.EncodeToString(s[:]) }

func (t TraceID) isZero() bool { return t == TraceID{} }
func (s SpanID) isZero() bool  { return s == SpanID{} }

// spanContext is one span's place in a trace.
type spanContext struct {
	traceID TraceID
	spanID  SpanID
	sampled bool
	// valid: trace and span ids are present and well formed.
	valid bool
	// decided: the caller made a sampling decision (possibly without ids,
	// as "b3: 0" does).
	decided bool
	// shortB3: the caller's B3 trace id had 64 bits; B3 headers written
	// back keep that width.
	shortB3 bool
	// w3c: read from a well-formed traceparent.
	w3c bool
}

// extract reads a request's trace context and which formats it came in.
// A format whose header is present counts even when malformed, so that it
// is rewritten for the new trace.
func extract(h http.Header) (sc spanContext, formats uint8) {
	if vs := h[hTraceparent]; len(vs) > 0 {
		formats |= fmtW3C
		if len(vs) == 1 {
			sc = parseTraceparent(vs[0])
		}
	}
	if vs := h[hB3]; len(vs) > 0 {
		formats |= fmtB3Single
		if !sc.valid && !sc.decided && len(vs) == 1 {
			sc = parseB3Single(vs[0])
		}
	}
	if vs := h[hB3TraceID]; len(vs) > 0 || len(h[hB3Sampled]) > 0 || len(h[hB3Flags]) > 0 {
		formats |= fmtB3Multi
		if !sc.valid && !sc.decided {
			sc = parseB3Multi(h)
		}
	}
	return sc, formats
}

// parseTraceparent parses "version-traceid-spanid-flags" strictly: lower
// case hex, non-zero ids, version ff invalid, version 00 exactly 55 bytes.
func parseTraceparent(v string) spanContext {
	var sc spanContext
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return sc
	}
	var ver, flags [1]byte
	if !decodeHex(ver[:], v[0:2], false) || ver[0] == 0xff {
		return sc
	}
	if ver[0] == 0 && len(v) != 55 || len(v) > 55 && v[55] != '-' {
		return sc
	}
	if !decodeHex(sc.traceID[:], v[3:35], false) || !decodeHex(sc.spanID[:], v[36:52], false) ||
		!decodeHex(flags[:], v[53:55], false) || sc.traceID.isZero() || sc.spanID.isZero() {
		return spanContext{}
	}
	sc.sampled = flags[0]&1 == 1
	sc.valid, sc.decided, sc.w3c = true, true, true
	return sc
}

// parseB3Single parses "traceid-spanid[-sampled[-parentspanid]]" or a lone
// sampling state ("0", "1", "d").
func parseB3Single(v string) spanContext {
	var sc spanContext
	if len(v) == 1 {
		sc.sampled, sc.decided = parseB3Sampled(v)
		return sc
	}
	tid, rest, ok := cut(v)
	if !ok {
		return sc
	}
	sid, rest, more := cut(rest)
	if !setB3IDs(&sc, tid, sid) {
		return spanContext{}
	}
	if more {
		state, parent, hasParent := cut(rest)
		sampled, ok := parseB3Sampled(state)
		if !ok {
			return spanContext{}
		}
		if hasParent {
			var p SpanID
			if !decodeHex(p[:], parent, true) {
				return spanContext{}
			}
		}
		sc.sampled, sc.decided = sampled, true
	}
	return sc
}

func parseB3Multi(h http.Header) spanContext {
	var sc spanContext
	if v := first(h, hB3TraceID); v != "" && !setB3IDs(&sc, v, first(h, hB3SpanID)) {
		return spanContext{}
	}
	if first(h, hB3Flags) == "1" {
		sc.sampled, sc.decided = true, true
	} else if v := first(h, hB3Sampled); v != "" {
		switch v {
		case "1", "true":
			sc.sampled, sc.decided = true, true
		case "0", "false":
			sc.decided = true
		}
	}
	return sc
}

func setB3IDs(sc *spanContext, tid, sid string) bool {
	switch len(tid) {
	case 32:
		if !decodeHex(sc.traceID[:], tid, true) {
			return false
		}
	case 16:
		if !decodeHex(sc.traceID[8:], tid, true) {
			return false
		}
		sc.shortB3 = true
	default:
		return false
	}
	if len(sid) != 16 || !decodeHex(sc.spanID[:], sid, true) || sc.traceID.isZero() || sc.spanID.isZero() {
		return false
	}
	sc.valid = true
	return true
}

func parseB3Sampled(v string) (sampled, ok bool) {
	switch v {
	case "1", "d":
		return true, true
	case "0":
		return false, true
	}
	return false, false
}

func cut(s string) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func first(h http.Header, k string) string {
	if vs := h[k]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// decodeHex decodes len(dst)*2 hex digits, lower case only unless upper.
func decodeHex(dst []byte, s string, upper bool) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := fromHex(s[2*i], upper)
		lo, ok2 := fromHex(s[2*i+1], upper)
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHex(c byte, upper bool) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case upper && 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// newTraceID and newSpanID draw random non-zero ids. math/rand/v2's global
// source (ChaCha8, per-thread state) is unpredictable enough for ids and
// takes no lock.
func newTraceID() TraceID {
	var t TraceID
	for t.isZero() {
		putUint64(t[:8], rand.Uint64())
		putUint64(t[8:], rand.Uint64())
	}
	return t
}

func newSpanID() SpanID {
	var s SpanID
	for s.isZero() {
		putUint64(s[:], rand.Uint64())
	}
	return s
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

// lowUint64 is the trace id's last 8 bytes, the random part in both W3C
// and B3, for sampling decisions every hop makes alike.
func (t TraceID) lowUint64() uint64 {
	var v uint64
	for _, b := range t[8:] {
		v = v<<8 | uint64(b)
	}
	return v
}

// ratioBound is the largest lowUint64 a trace may have to be in a sample
// of ratio.
func ratioBound(ratio float64) uint64 {
	switch {
	case ratio >= 1:
		return ^uint64(0)
	case ratio <= 0:
		return 0
	}
	return uint64(ratio * (1 << 63) * 2)
}

func inSample(t TraceID, bound uint64) bool {
	if bound == ^uint64(0) {
		return true
	}
	return bound != 0 && t.lowUint64() < bound
}

// inject writes sc to the outgoing headers: traceparent always, and b3 /
// X-B3-* if the caller used them (see injectB3).
func inject(h http.Header, sc, parent spanContext, formats uint8) {
	var buf [traceparentLen]byte
	putTraceparent(buf[:], sc)
	setHeader(h, hTraceparent, string(buf[:]))
	injectB3(h, sc, parent, formats)
}

const traceparentLen = 55

// putTraceparent formats sc as a version 00 traceparent into b[:55].
func putTraceparent(b []byte, sc spanContext) {
	_ = b[traceparentLen-1]
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], sc.traceID[:])
	b[35] = '-'
	hex.Encode(b[36:52], sc.spanID[:])
	b[52], b[53], b[54] = '-', '0', '0'
	if sc.sampled {
		b[54] = '1'
	}
}

// injectB3 writes the B3 forms the caller used. parent is the caller's
// span, named as X-B3-ParentSpanId. A new trace drops the caller's
// tracestate, which belonged to a trace context that could not be read.
func injectB3(h http.Header, sc, parent spanContext, formats uint8) {
	if !parent.valid {
		delete(h, hTracestate)
	}
	if formats&(fmtB3Single|fmtB3Multi) == 0 {
		return
	}
	tid := sc.traceID.String()
	if parent.shortB3 && sc.traceID == parent.traceID {
		tid = tid[16:]
	}
	sid := sc.spanID.String()
	sampled := "0"
	if sc.sampled {
		sampled = "1"
	}
	if formats&fmtB3Single != 0 {
		v := tid + "-" + sid + "-" + sampled
		if parent.valid && parent.spanID != sc.spanID {
			v += "-" + parent.spanID.String()
		}
		setHeader(h, hB3, v)
	}
	if formats&fmtB3Multi != 0 {
		setHeader(h, hB3TraceID, tid)
		setHeader(h, hB3SpanID, sid)
		setHeader(h, hB3Sampled, sampled)
		delete(h, hB3Flags)
		if parent.valid && parent.spanID != sc.spanID {
			setHeader(h, hB3Parent, parent.spanID.String())
		} else {
			delete(h, hB3Parent)
		}
	}
}

// setHeader sets a canonical key, reusing the value slice when it has one
// element.
func setHeader(h http.Header, k, v string) {
	if vs := h[k]; len(vs) == 1 {
		vs[0] = v
		return
	}
	h[k] = []string{v}
}

// newRequestID is a random UUID (version 4) for x-request-id.
func newRequestID() string {
	var s [requestIDLen]byte
	putRequestID(s[:])
	return string(s[:])
}

const requestIDLen = 36

func putRequestID(s []byte) {
	var b [16]byte
	putUint64(b[:8], rand.Uint64())
	putUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	_ = s[requestIDLen-1]
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
}
