package gateway

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"weft.dev/weft/internal/compile"
)

func TestLimiterBucket(t *testing.T) {
	l := newLimiter(compile.RateLimit{Requests: 10, Period: compile.Duration(time.Second), Burst: 5})
	now := time.Now()
	for i := 0; i < 5; i++ {
		if ok, _ := l.allow("a", now); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.allow("a", now)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("sixth request: ok=%v wait=%v, want refused with a wait of up to 100ms", ok, wait)
	}
	// A refused request takes no token: after one token's time, one passes.
	if ok, _ := l.allow("a", now.Add(100*time.Millisecond)); !ok {
		t.Error("no token after 100ms at 10/s")
	}
	if ok, _ := l.allow("a", now.Add(100*time.Millisecond)); ok {
		t.Error("two tokens after 100ms at 10/s")
	}
	// Another key has its own bucket.
	if ok, _ := l.allow("b", now); !ok {
		t.Error("key b limited by key a")
	}
	// Over a simulated second of continuous demand, the rate holds.
	l2 := newLimiter(compile.RateLimit{Requests: 20, Period: compile.Duration(time.Second), Burst: 1})
	passed := 0
	for ms := 0; ms < 3000; ms++ {
		if ok, _ := l2.allow("k", now.Add(time.Duration(ms)*time.Millisecond)); ok {
			passed++
		}
	}
	if passed < 59 || passed > 61 {
		t.Errorf("%d passed in 3s at 20/s with burst 1, want 60±1", passed)
	}
	if got := retryAfter(30 * time.Millisecond); got != 1 {
		t.Errorf("Retry-After for 30ms = %d, want 1", got)
	}
	if got := retryAfter(2500 * time.Millisecond); got != 3 {
		t.Errorf("Retry-After for 2.5s = %d, want 3", got)
	}
}

// TestLimiterEviction: buckets are bounded; the least recently used go
// first and the active ones stay.
func TestLimiterEviction(t *testing.T) {
	l := newLimiter(compile.RateLimit{Requests: 1, Period: compile.Duration(time.Minute), MaxKeys: 100})
	now := time.Now()
	l.allow("hot", now)
	for i := 0; i < 10000; i++ {
		l.allow(fmt.Sprintf("client-%d", i), now)
		if i%50 == 0 {
			l.allow("hot", now) // keeps it recent (and refused: its token is spent)
		}
	}
	if n := l.size(); n != 100 {
		t.Errorf("%d buckets kept, want 100", n)
	}
	if ok, _ := l.allow("hot", now); ok {
		t.Error("the active key was evicted and got a fresh bucket")
	}
	if ok, _ := l.allow("client-0", now); !ok {
		t.Error("an evicted key should start over with a full bucket")
	}
}

func TestLimiterKeys(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.7:5555"
	r.Header.Set("X-Api-Key", "k1")
	for _, c := range []struct {
		key, header, want string
	}{
		{"ClientAddress", "", "192.0.2.7"},
		{"Header", "X-Api-Key", "k1"},
		{"Header", "X-Missing", ""},
		{"Route", "", "default/api"},
		{"", "", ""},
	} {
		l := newLimiter(compile.RateLimit{Requests: 1, Period: compile.Duration(time.Second), Key: c.key, Header: c.header})
		if got := l.key(r, "default/api"); got != c.want {
			t.Errorf("key %s/%s = %q, want %q", c.key, c.header, got, c.want)
		}
	}
}
