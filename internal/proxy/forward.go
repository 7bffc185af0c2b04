package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy/upstream"
)

// forwarder is the ReverseProxy's transport: for one routed request it
// applies the circuit breaker, picks an endpoint, sends, and retries per the
// service's retry policy. Everything it holds for the request (circuit slot,
// endpoint accounting, per-try timer) is released when the response body is
// closed, so streaming responses keep their slot as long as they stream.
type forwarder struct{ p *Proxy }

func (f *forwarder) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	d := decisionFrom(ctx)
	c := f.p.upstreams.Cluster(d.backend.Cluster)
	if c == nil {
		closeBody(req)
		return nil, fmt.Errorf("cluster %s: %w", d.backend.Cluster, upstream.ErrNoCluster)
	}
	cfg := c.Config()
	release, err := c.Admit(ctx.Done())
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("cluster %s: %w", cfg.Name, err)
	}
	tr := f.p.tr.forProtocol(cfg.Protocol, req.ProtoMajor)
	retry := d.retry
	maxRetries := 0
	var body *replayBody
	if retry != nil && retry.Attempts > 0 && !isUpgrade(req) {
		maxRetries = retry.Attempts
		if req.Body != nil && req.Body != http.NoBody {
			body = newReplayBody(req.Body, retry.MaxBufferedBody)
		}
	}
	budget := f.p.budget(cfg.Name)
	budget.active.Add(1)
	retrying := false
	finish := func() {
		budget.active.Add(-1)
		if retrying {
			budget.retrying.Add(-1)
		}
		release()
	}
	hashKey := hashKeyFor(&cfg.LoadBalancer, req)
	var prev *upstream.Endpoint
	for attempt := 0; ; attempt++ {
		ep, err := c.Pick(upstream.PickInfo{HashKey: hashKey, Avoid: prev})
		if err != nil {
			finish()
			if body != nil {
				body.close()
			} else {
				closeBody(req)
			}
			return nil, fmt.Errorf("cluster %s: %w", cfg.Name, err)
		}
		try := newAttempt(ctx, d.perTry)
		out := req.WithContext(try.ctx)
		u := *req.URL
		u.Host = ep.Address
		out.URL = &u
		if body != nil {
			out.Body = body.view()
		}
		c.Begin(ep)
		f.p.recordAttempt(d.x, ep)
		resp, err := tr.RoundTrip(out)
		try.headersDone()
		d.x.UpstreamResponse(resp)
		outcome := classifyAttempt(ctx, try.ctx, resp, err)
		if attempt < maxRetries && shouldRetry(retry, outcome, resp) && ctx.Err() == nil &&
			(body == nil || body.rewind()) && budget.allow(retrying, retry) {
			if !retrying {
				retrying = true
				budget.retrying.Add(1)
			}
			if resp != nil {
				drainAndClose(resp.Body)
			}
			try.cancel()
			c.End(ep, outcome)
			prev = ep
			if !sleepCtx(ctx, backoff(retry, attempt)) {
				finish()
				if body != nil {
					body.close()
				}
				return nil, ctx.Err()
			}
			continue
		}
		if err != nil {
			perTry := try.timedOut()
			try.cancel()
			c.End(ep, outcome)
			finish()
			if body != nil {
				body.close()
			}
			if perTry {
				return nil, fmt.Errorf("%s after %s: %w", ep.Address, d.perTry, errPerTryTimeout)
			}
			return nil, fmt.Errorf("%s: %w", ep.Address, err)
		}
		var once sync.Once
		done := func() {
			once.Do(func() {
				try.cancel()
				c.End(ep, outcome)
				finish()
				if body != nil {
					body.close()
				}
			})
		}
		resp.Body = wrapBody(resp.Body, try.cancel, done)
		return resp, nil
	}
}

// attempt is one try's context. Its per-try timer covers the wait for
// response headers only: a stream that answered may then run as long as
// the route allows.
type attempt struct {
	ctx    context.Context
	cancel func()
	timer  *time.Timer
	mu     sync.Mutex
	fired  bool
}

func newAttempt(parent context.Context, perTry time.Duration) *attempt {
	ctx, cancel := context.WithCancelCause(parent)
	a := &attempt{ctx: ctx, cancel: func() { cancel(nil) }}
	if perTry > 0 {
		a.timer = time.AfterFunc(perTry, func() {
			a.mu.Lock()
			a.fired = true
			a.mu.Unlock()
			cancel(errPerTryTimeout)
		})
	}
	return a
}

func (a *attempt) headersDone() {
	if a.timer != nil {
		a.timer.Stop()
	}
}

func (a *attempt) timedOut() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fired
}

// classifyAttempt says how an attempt ended, for retries and outlier
// detection.
func classifyAttempt(reqCtx, tryCtx context.Context, resp *http.Response, err error) upstream.Outcome {
	if err == nil {
		switch {
		case resp.StatusCode == http.StatusBadGateway, resp.StatusCode == http.StatusServiceUnavailable,
			resp.StatusCode == http.StatusGatewayTimeout:
			return upstream.GatewayError
		case resp.StatusCode >= 500:
			return upstream.Status5xx
		}
		return upstream.Success
	}
	if reqCtx.Err() != nil {
		return upstream.Cancelled
	}
	if errors.Is(context.Cause(tryCtx), errPerTryTimeout) {
		return upstream.GatewayError
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return upstream.ConnectFailure
	}
	return upstream.Reset
}

// shouldRetry applies retryOn. Following Envoy, 5xx and gateway-error also
// cover connect failures, resets and per-try timeouts: to the caller these
// are all a gateway failing.
func shouldRetry(r *compile.Retry, o upstream.Outcome, resp *http.Response) bool {
	if r == nil || o == upstream.Success && resp == nil || o == upstream.Cancelled {
		return false
	}
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	for _, on := range r.RetryOn {
		switch on {
		case compile.RetryOn5xx:
			if status >= 500 || resp == nil {
				return true
			}
		case compile.RetryOnGatewayError:
			if o == upstream.GatewayError || resp == nil {
				return true
			}
		case compile.RetryOnReset:
			if o == upstream.Reset {
				return true
			}
		case compile.RetryOnConnectFailure:
			if o == upstream.ConnectFailure {
				return true
			}
		case compile.RetryOnRetriableCodes:
			for _, c := range r.RetriableStatusCodes {
				if status == c {
					return true
				}
			}
		}
	}
	return false
}

// backoff is fully jittered exponential backoff: a random wait in
// [0, min(max, base*2^attempt)].
func backoff(r *compile.Retry, attempt int) time.Duration {
	base, max := r.BackoffBase.D(), r.BackoffMax.D()
	if base <= 0 {
		base = 25 * time.Millisecond
	}
	if max <= 0 {
		max = 10 * base
	}
	ceil := base << min(attempt, 20)
	if ceil > max || ceil <= 0 {
		ceil = max
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func hashKeyFor(lb *compile.LoadBalancer, req *http.Request) string {
	switch {
	case lb.Type != "RingHash":
		return ""
	case lb.HashHeader != "":
		return req.Header.Get(lb.HashHeader)
	case lb.HashCookie != "":
		if c, err := req.Cookie(lb.HashCookie); err == nil {
			return c.Value
		}
	case lb.HashSource:
		if h, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
			return h
		}
		return req.RemoteAddr
	}
	return ""
}

func isUpgrade(req *http.Request) bool { return req.Header.Get("Upgrade") != "" }

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// drainAndClose reads a little of a discarded response so its connection
// can be reused, then closes it.
func drainAndClose(b io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, b, 64*1024)
	b.Close()
}

// wrapBody calls done when the body is closed. A 101 response's body is the
// upgraded connection and must stay writable.
func wrapBody(b io.ReadCloser, cancel, done func()) io.ReadCloser {
	if rwc, ok := b.(io.ReadWriteCloser); ok {
		return &rwcBody{ReadWriteCloser: rwc, done: done}
	}
	return &doneBody{ReadCloser: b, cancel: cancel, done: done}
}

type doneBody struct {
	io.ReadCloser
	cancel func()
	done   func()
}

// Close ends the attempt before closing the body: once the response is
// over, an HTTP/2 request stream whose upload is still open (a bidi gRPC
// call the server ended first) must be reset, or closing the body waits
// for an upload the client will never finish.
func (b *doneBody) Close() error {
	b.cancel()
	err := b.ReadCloser.Close()
	b.done()
	return err
}

type rwcBody struct {
	io.ReadWriteCloser
	done func()
}

func (b *rwcBody) Close() error {
	err := b.ReadWriteCloser.Close()
	b.done()
	return err
}

// retryBudget caps concurrent retrying requests per cluster at a share of
// active requests, so retries cannot multiply the load on a failing service.
type retryBudget struct {
	active   atomicInt
	retrying atomicInt
}

func (p *Proxy) budget(cluster string) *retryBudget {
	if b, ok := p.budgets.Load(cluster); ok {
		return b.(*retryBudget)
	}
	b, _ := p.budgets.LoadOrStore(cluster, &retryBudget{})
	return b.(*retryBudget)
}

// allow says whether one more request may start retrying. A request already
// retrying keeps its place.
func (b *retryBudget) allow(already bool, r *compile.Retry) bool {
	if already {
		return true
	}
	limit := int64(r.BudgetPercent) * b.active.Load() / 100
	if m := int64(r.BudgetMinConcurrency); limit < m {
		limit = m
	}
	return b.retrying.Load() < limit
}
