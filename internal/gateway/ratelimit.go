package gateway

import (
	"container/list"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/resource"
)

// limiter is one RateLimit: a token bucket per key, at most maxKeys of
// them, the least recently used dropped first. A dropped key that comes back
// starts with a full bucket, so maxKeys should exceed the number of clients
// active within a period or two.
type limiter struct {
	cfg   compile.RateLimit
	limit rate.Limit

	mu      sync.Mutex
	buckets map[string]*list.Element // of *bucket
	lru     list.List                // front: most recently used
}

type bucket struct {
	key string
	lim *rate.Limiter
}

func newLimiter(cfg compile.RateLimit) *limiter {
	per := cfg.Period.D()
	if per <= 0 {
		per = time.Second
	}
	l := &limiter{cfg: cfg, limit: rate.Limit(float64(cfg.Requests) / per.Seconds()), buckets: map[string]*list.Element{}}
	if l.cfg.Burst <= 0 {
		l.cfg.Burst = max(cfg.Requests, 1)
	}
	if l.cfg.MaxKeys <= 0 {
		l.cfg.MaxKeys = 10000
	}
	return l
}

// key is the bucket a request draws from.
func (l *limiter) key(r *http.Request, route string) string {
	switch l.cfg.Key {
	case resource.RateLimitKeyClientAddress:
		if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			return h
		}
		return r.RemoteAddr
	case resource.RateLimitKeyHeader:
		return r.Header.Get(l.cfg.Header)
	case resource.RateLimitKeyRoute:
		return route
	}
	return ""
}

// allow takes a token from key's bucket. When there is none it returns
// false and how long until there is.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	lim := l.bucket(key)
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return false, l.cfg.Period.D()
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (l *limiter) bucket(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.buckets[key]; ok {
		l.lru.MoveToFront(e)
		return e.Value.(*bucket).lim
	}
	b := &bucket{key: key, lim: rate.NewLimiter(l.limit, int(min(l.cfg.Burst, math.MaxInt32)))}
	l.buckets[key] = l.lru.PushFront(b)
	for len(l.buckets) > l.cfg.MaxKeys {
		last := l.lru.Back()
		l.lru.Remove(last)
		delete(l.buckets, last.Value.(*bucket).key)
	}
	return b.lim
}

// size is the number of buckets kept.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// retryAfter is the Retry-After value for a wait: whole seconds, at
// least 1.
func retryAfter(d time.Duration) int {
	return max(int(math.Ceil(d.Seconds())), 1)
}
