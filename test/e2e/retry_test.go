package e2e

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Retries: on connection failures and resets, on 5xx, bounded by a budget,
// and never with a request body the proxy could not keep.

func TestRetryKillEndpointUnderLoad(t *testing.T) {
	t.Parallel()
	a, b := NewHTTPBackend(t, "a"), NewHTTPBackend(t, "b")
	// Requests take a moment, so some are in flight on b when it dies.
	a.SetDelay(5 * time.Millisecond)
	b.SetDelay(5 * time.Millisecond)
	p := balanced(t, `
retry:
  attempts: 3
  retryOn: [connect-failure, reset]
  backoff: {baseInterval: 5ms, maxInterval: 50ms}
  budget: {percent: 100, minRetryConcurrency: 100}
`, a, b)
	c := proxyClient(t, p)

	const workers = 20
	const duration = 3 * time.Second
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	stop := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				r, err := send(c, http.MethodGet, "http://web:80/steady", nil)
				if err == nil && r.Status == http.StatusOK {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				mu.Lock()
				if len(failures) < 5 {
					if err != nil {
						failures = append(failures, err.Error())
					} else {
						failures = append(failures, r.String())
					}
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(duration / 3) // let traffic reach both endpoints before the kill
	bBefore := b.Requests.Load()
	b.Kill()
	aAtKill := a.Requests.Load()
	wg.Wait()

	t.Logf("%d ok, %d failed; b served %d before it was killed; a served %d after", ok.Load(), failed.Load(), bBefore, a.Requests.Load()-aAtKill)
	if bBefore == 0 {
		t.Errorf("b served nothing before the kill; the test did not exercise failover")
	}
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed when one of two endpoints died; want 0 (retry on connect-failure/reset). First: %s",
			failed.Load(), ok.Load()+failed.Load(), strings.Join(failures, " | "))
	}
}

func TestRetryOn5xx(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a")
	a.SetFailEvery(2)
	p := balanced(t, `
retry: {attempts: 2, retryOn: [5xx], backoff: {baseInterval: 1ms, maxInterval: 5ms}}
`, a)
	c := proxyClient(t, p)
	const n = 50
	counts := countBackends(t, c, "http://web:80/flaky", n)
	if counts["a"] != n {
		t.Errorf("%d requests to a backend failing every other one: %v; want all 200 after retries", n, counts)
	}
	if got := a.Requests.Load(); got < n+n/2 {
		t.Errorf("backend saw %d attempts for %d requests; expected about %d with retries", got, n, 2*n)
	}
}

func TestRetryBudget(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a")
	a.SetStatus(http.StatusInternalServerError)
	a.SetDelay(200 * time.Millisecond)
	p := balanced(t, `
retry:
  attempts: 3
  retryOn: [5xx]
  backoff: {baseInterval: 1ms, maxInterval: 2ms}
  budget: {percent: 20, minRetryConcurrency: 2}
`, a)
	c := proxyClient(t, p)
	// All at once: 30 requests that each could be tried 4 times.
	const n = 30
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			send(c, http.MethodGet, "http://web:80/failing", nil)
		}()
	}
	close(start)
	wg.Wait()
	attempts := a.Requests.Load()
	t.Logf("%d requests made %d backend attempts (unbounded retries: %d)", n, attempts, n*4)
	if attempts > 2*n {
		t.Errorf("%d requests to an always-failing backend made %d attempts; want ≤ %d with a 20%% retry budget", n, attempts, 2*n)
	}
	if attempts <= n {
		t.Errorf("no retries at all (%d attempts for %d requests); the budget's minRetryConcurrency allows some", attempts, n)
	}
}

func TestRetryLargeBodyNotRetried(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a")
	a.SetStatus(http.StatusServiceUnavailable)
	p := balanced(t, `
retry: {attempts: 2, retryOn: [5xx], maxBufferedBody: 4096, backoff: {baseInterval: 1ms, maxInterval: 2ms}}
`, a)
	c := proxyClient(t, p)

	before := a.Requests.Load()
	r, err := send(c, http.MethodPost, "http://web:80/small", strings.NewReader(strings.Repeat("s", 1000)))
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Requests.Load() - before; got != 3 {
		t.Errorf("small POST (1000 B, under maxBufferedBody): %d attempts, want 3 (1 + 2 retries); %s", got, r)
	}

	const big = 100_000
	before = a.Requests.Load()
	r, err = send(c, http.MethodPost, "http://web:80/big", strings.NewReader(strings.Repeat("b", big)))
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Requests.Load() - before; got != 1 {
		t.Errorf("large POST (%d B, over maxBufferedBody 4096): %d attempts, want 1 (not replayable)", big, got)
	}
	if r.Status != http.StatusServiceUnavailable || r.Echo.BodyLen != big {
		t.Errorf("large POST: want the backend's own 503 after it read all %d bytes, got %s", big, r)
	}
}
