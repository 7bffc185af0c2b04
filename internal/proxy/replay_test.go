package proxy

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestReplayBodyRewinds(t *testing.T) {
	b := newReplayBody(io.NopCloser(strings.NewReader("hello world")), 64)
	v1 := b.view()
	p := make([]byte, 5)
	if n, _ := v1.Read(p); string(p[:n]) != "hello" {
		t.Fatalf("first read %q", p[:n])
	}
	if !b.rewind() {
		t.Fatal("rewind refused under the limit")
	}
	if _, err := v1.Read(p); err != errStaleBody {
		t.Fatalf("stale view read err = %v, want errStaleBody", err)
	}
	got, err := io.ReadAll(b.view())
	if err != nil || string(got) != "hello world" {
		t.Fatalf("replayed %q, %v", got, err)
	}
	if !b.rewind() {
		t.Fatal("second rewind refused")
	}
	if got, _ := io.ReadAll(b.view()); string(got) != "hello world" {
		t.Fatalf("second replay %q", got)
	}
}

func TestReplayBodyOverflowStopsRetries(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 1000)
	b := newReplayBody(io.NopCloser(bytes.NewReader(data)), 100)
	got, err := io.ReadAll(b.view())
	if err != nil || len(got) != len(data) {
		t.Fatalf("streamed %d bytes, %v; want %d", len(got), err, len(data))
	}
	if b.rewind() {
		t.Fatal("rewind allowed after the body outgrew the buffer")
	}
}
