package upstream

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"weft.dev/weft/internal/compile"
)

// Active health checking: one goroutine per cluster with a HealthCheck
// probes every endpoint each Interval with GET http://<address><Path>.
// UnhealthyThreshold consecutive failures mark an endpoint unhealthy,
// HealthyThreshold consecutive successes mark it healthy again; endpoints
// start healthy. A flip rebuilds the cluster's picker. The checker stops
// when the cluster is removed or the Manager closed, and restarts, keeping
// endpoint health, when the cluster's HealthCheck changes.

// Defaults for zero values.
const (
	defaultHealthInterval  = 10 * time.Second
	defaultHealthTimeout   = time.Second
	defaultHealthyThresh   = 1
	defaultUnhealthyThresh = 3
	// At most this many probes of one cluster run at once, so a large
	// cluster with dead endpoints still finishes a round near Timeout.
	healthConcurrency = 8
	// A probe reads at most this much of a response body before closing,
	// so the connection can be reused.
	healthMaxBody = 64 << 10
)

type healthPolicy struct {
	path               string
	interval, timeout  time.Duration
	healthy, unhealthy int32
	expected           []int // empty: 200-399
}

func newHealthPolicy(hc *compile.HealthCheck) *healthPolicy {
	if hc == nil {
		return nil
	}
	p := &healthPolicy{
		path:      hc.Path,
		interval:  hc.Interval.D(),
		timeout:   hc.Timeout.D(),
		healthy:   int32(hc.HealthyThreshold),
		unhealthy: int32(hc.UnhealthyThreshold),
		expected:  slices.Clone(hc.ExpectedStatuses),
	}
	if !strings.HasPrefix(p.path, "/") {
		p.path = "/" + p.path
	}
	if p.interval <= 0 {
		p.interval = defaultHealthInterval
	}
	if p.timeout <= 0 {
		p.timeout = defaultHealthTimeout
	}
	if p.healthy <= 0 {
		p.healthy = defaultHealthyThresh
	}
	if p.unhealthy <= 0 {
		p.unhealthy = defaultUnhealthyThresh
	}
	return p
}

func (p *healthPolicy) equal(q *healthPolicy) bool {
	return p.path == q.path && p.interval == q.interval && p.timeout == q.timeout &&
		p.healthy == q.healthy && p.unhealthy == q.unhealthy && slices.Equal(p.expected, q.expected)
}

func (p *healthPolicy) expect(status int) bool {
	if len(p.expected) == 0 {
		return status >= 200 && status < 400
	}
	return slices.Contains(p.expected, status)
}

type healthChecker struct {
	c      *Cluster
	pol    *healthPolicy
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// reconcileHealthLocked starts, restarts or stops the cluster's checker
// for hc. It returns the checker to stop, which the caller must stop after
// releasing c.mu. c.mu must be held.
func (c *Cluster) reconcileHealthLocked(hc *compile.HealthCheck) (stop *healthChecker) {
	pol := newHealthPolicy(hc)
	if c.health != nil && pol != nil && c.health.pol.equal(pol) {
		return nil
	}
	stop, c.health = c.health, nil
	if stop != nil {
		stop.cancel() // now, so it records nothing more; the caller waits
	}
	if pol == nil {
		if stop != nil {
			// Nothing will mark them healthy again.
			for _, e := range c.eps {
				e.unhealthy.Store(false)
				e.hcOK.Store(0)
				e.hcFail.Store(0)
			}
			c.rebuildLocked()
		}
		return stop
	}
	if c.closed {
		return stop
	}
	h := &healthChecker{c: c, pol: pol, done: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.client = &http.Client{
		Transport: &http.Transport{
			// Never through HTTP_PROXY: apps in the mesh point it at us.
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: pol.timeout}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     2*pol.interval + time.Second,
			DisableCompression:  true,
		},
		// A redirect is an answer: 3xx counts as healthy by default.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.health = h
	go h.run()
	return stop
}

// stop ends the checker and waits for its goroutine to exit.
func (h *healthChecker) stop() {
	h.cancel()
	<-h.done
	h.client.CloseIdleConnections()
}

func (h *healthChecker) run() {
	defer close(h.done)
	t := time.NewTicker(h.pol.interval)
	defer t.Stop()
	for {
		h.round()
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round probes every endpoint once, a few at a time, and returns when all
// probes have finished, so rounds never overlap.
func (h *healthChecker) round() {
	eps := h.c.picker.Load().all
	sem := make(chan struct{}, healthConcurrency)
	var wg sync.WaitGroup
	for _, e := range eps {
		select {
		case sem <- struct{}{}:
		case <-h.ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			ok := h.probe(e)
			if h.ctx.Err() == nil {
				h.c.recordHealth(h, e, ok)
			}
		})
	}
	wg.Wait()
}

func (h *healthChecker) probe(e *Endpoint) bool {
	ctx, cancel := context.WithTimeout(h.ctx, h.pol.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.Address+h.pol.path, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "weft-health-check")
	resp, err := h.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.CopyN(io.Discard, resp.Body, healthMaxBody)
	_ = resp.Body.Close()
	return h.pol.expect(resp.StatusCode)
}

// recordHealth counts one probe result and flips e's health at a threshold.
// Only the streak that can flip the state is counted.
func (c *Cluster) recordHealth(h *healthChecker, e *Endpoint, ok bool) {
	if ok {
		clear32(&e.hcFail)
		if e.unhealthy.Load() && e.hcOK.Add(1) >= h.pol.healthy {
			c.setHealth(h, e, true)
		}
		return
	}
	clear32(&e.hcOK)
	if !e.unhealthy.Load() && e.hcFail.Add(1) >= h.pol.unhealthy {
		c.setHealth(h, e, false)
	}
}

func (c *Cluster) setHealth(h *healthChecker, e *Endpoint, healthy bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.hcOK.Store(0)
	e.hcFail.Store(0)
	if c.health != h || !c.hasLocked(e) {
		return // a stale checker, or e left the cluster
	}
	e.unhealthy.Store(!healthy)
	c.rebuildLocked()
}
