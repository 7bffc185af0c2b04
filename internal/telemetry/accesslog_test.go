package telemetry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAppendStringIsJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/plain/path", "/plain/path"},
		{`/a"b\c`, `/a"b\c`},
		{"ctl\x00\x01\x1f\x7f\n\r\t", "ctl\x00\x01\x1f\x7f\n\r\t"},
		{"héllo ✓ 𝄞", "héllo ✓ 𝄞"},
		{"bad\xff\xfeutf8", "bad\ufffd\ufffdutf8"},
		{"\u2028\u2029", "\u2028\u2029"},
	}
	for _, tt := range tests {
		b := appendString(nil, tt.in)
		if !json.Valid(b) {
			t.Errorf("%q encodes to invalid JSON %s", tt.in, b)
			continue
		}
		var got string
		json.Unmarshal(b, &got)
		if got != tt.want {
			t.Errorf("%q round-trips to %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestAppendStringCuts(t *testing.T) {
	long := strings.Repeat("a", maxFieldBytes-1) + "é" + "tail" // é straddles the cut
	b := appendString(nil, long)
	var got string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(got, "...") || len(got) > maxFieldBytes+3 || !utf8.ValidString(got) || strings.Contains(got, "\ufffd") {
		t.Errorf("cut value: len %d, suffix %q", len(got), got[len(got)-8:])
	}
}

func TestLogLineEscapesRequestFields(t *testing.T) {
	rg := newRig(t)
	rec := rg.tel.For(Peer{}, nil)
	r := httptest.NewRequest("GET", "http://a/", nil)
	r.Host = "evil\"host\x01"
	r.URL.RawPath = ""
	r.URL.Path = "/p\"q\\r\x02"
	r.URL.RawQuery = "q=\"1\"\x03"
	r.Header.Set("User-Agent", "agent \"007\"\n")
	r.Header.Set("X-Request-Id", "id\"\x04")
	serve(rec, Client, r, func(x *Exchange, w http.ResponseWriter) { w.WriteHeader(200) })
	rg.tel.Flush()
	l := rg.log.lines(t)[0]
	if l["authority"] != "evil\"host\x01" || l["user_agent"] != "agent \"007\"\n" || l["request_id"] != "id\"\x04" {
		t.Errorf("fields: %q %q %q", l["authority"], l["user_agent"], l["request_id"])
	}
	if p := l["path"].(string); !strings.HasPrefix(p, "/p%22q%5Cr%02?q=\"1\"\x03") {
		t.Errorf("path %q", p)
	}
}

func TestAppendMillis(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0.000", 1500 * time.Microsecond: "1.500", 12*time.Second + 345*time.Microsecond: "12000.345", -1: "0.000"} {
		b := appendMillisField([]byte("{"), "d", d)
		if got := string(b); got != `{,"d":`+want {
			t.Errorf("%v: %s; want %s", d, got, want)
		}
	}
}

type countingWriter struct {
	mu     sync.Mutex
	writes int
	data   strings.Builder
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	c.data.Write(p)
	return len(p), nil
}

type line string

func (l line) appendLine(b []byte) []byte { return append(append(b, l...), '\n') }

func TestAccessLogBatches(t *testing.T) {
	w := &countingWriter{}
	l := newAccessLog(w, 1)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				l.write(line(`{"n":1}`))
			}
		}()
	}
	wg.Wait()
	l.close(context.Background())
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := strings.Count(w.data.String(), "{\"n\":1}\n"); n != 8000 {
		t.Fatalf("%d lines written; want 8000", n)
	}
	if w.writes > 8000*8/flushAt+16 {
		t.Errorf("%d writes for 8000 lines; want batches", w.writes)
	}
}

func TestAccessLogFlushesOnTimer(t *testing.T) {
	w := &countingWriter{}
	l := newAccessLog(w, 1)
	defer l.close(context.Background())
	l.write(line("one"))
	deadline := time.Now().Add(5 * flushEvery)
	for {
		w.mu.Lock()
		got := w.data.String()
		w.mu.Unlock()
		if got == "one\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("line not written after %v", 5*flushEvery)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSamplingByTraceID(t *testing.T) {
	l := newAccessLog(&countingWriter{}, 0.25)
	n := 0
	for i := 0; i < 20000; i++ {
		if l.sampled(newTraceID()) {
			n++
		}
	}
	if n < 4500 || n > 5500 {
		t.Errorf("%d of 20000 sampled at 0.25", n)
	}
	id := newTraceID()
	for i := 0; i < 10; i++ {
		if l.sampled(id) != l.sampled(id) {
			t.Fatal("sampling of one trace id is not stable")
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("/path?q=1")
	f.Add("\"\\\x00\xff\xc3")
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString([]byte(`{"k":`), s)
		b = append(b, '}')
		if !json.Valid(b) {
			t.Fatalf("%q encodes to invalid JSON %s", s, b)
		}
	})
}

// blockingWriter blocks every write until released.
type blockingWriter struct {
	release chan struct{}
	n       int
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	w.n += len(p)
	return len(p), nil
}

func TestAccessLogStuckSinkDropsLines(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	l := newAccessLog(w, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Far more than maxPending: every write returns although the sink
		// is stuck.
		for i := 0; i < 3*maxPending/100; i++ {
			l.write(line(strings.Repeat("x", 99)))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("requests blocked on a stuck access log sink")
	}
	l.mu.Lock()
	dropped := l.dropped
	l.mu.Unlock()
	if dropped == 0 {
		t.Error("no line dropped past maxPending")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.close(ctx); err == nil {
		t.Error("close returned while the sink is stuck")
	}
	close(w.release)
	if err := l.close(context.Background()); err != nil {
		t.Error(err)
	}
}
