package upstream

import (
	"sync/atomic"
	"time"

	"weft.dev/weft/internal/compile"
)

// Passive outlier detection, after Envoy's consecutive-failure detectors.
// End feeds each request's Outcome into per-endpoint streak counters; a
// streak reaching its threshold ejects the endpoint for BaseEjectionTime
// times the number of times it has been ejected, capped at MaxEjectionTime.
// Ejection lapses lazily: the picker snapshot remembers the earliest expiry
// and Pick rebuilds it once that passes.
//
// How outcomes count:
//
//	Success                 resets every streak
//	Status5xx               5xx streak; ends the gateway and connect streaks
//	GatewayError            5xx and gateway streaks; ends the connect streak
//	ConnectFailure, Reset   5xx, gateway and connect streaks
//	Cancelled               nothing: not the endpoint's fault
//
// Failures of requests that end while their endpoint is ejected count
// nothing. A threshold of 0 disables that detector; a config without any
// detector (or without Outlier) disables detection and unejects everyone.

// Defaults for zero values, as Envoy's.
const (
	defaultOutlierInterval    = 10 * time.Second
	defaultBaseEjectionTime   = 30 * time.Second
	defaultMaxEjectionTime    = 300 * time.Second
	defaultMaxEjectionPercent = 10
)

type outlierPolicy struct {
	consec5xx, consecGW, consecConn int32
	interval, base, max             int64 // ns
	maxPercent                      int
}

func newOutlierPolicy(o *compile.Outlier) *outlierPolicy {
	if o == nil || (o.Consecutive5xx <= 0 && o.ConsecutiveGatewayErrors <= 0 && o.ConsecutiveConnectErrors <= 0) {
		return nil
	}
	p := &outlierPolicy{
		consec5xx:  int32(max(o.Consecutive5xx, 0)),
		consecGW:   int32(max(o.ConsecutiveGatewayErrors, 0)),
		consecConn: int32(max(o.ConsecutiveConnectErrors, 0)),
		interval:   int64(o.Interval.D()),
		base:       int64(o.BaseEjectionTime.D()),
		max:        int64(o.MaxEjectionTime.D()),
		maxPercent: o.MaxEjectionPercent,
	}
	if p.interval <= 0 {
		p.interval = int64(defaultOutlierInterval)
	}
	if p.base <= 0 {
		p.base = int64(defaultBaseEjectionTime)
	}
	if p.max <= 0 {
		p.max = int64(defaultMaxEjectionTime)
	}
	p.max = max(p.max, p.base)
	if p.maxPercent <= 0 {
		p.maxPercent = defaultMaxEjectionPercent
	}
	p.maxPercent = min(p.maxPercent, 100)
	return p
}

// observe feeds one outcome to outlier detection.
func (c *Cluster) observe(e *Endpoint, o Outcome) {
	if o == Cancelled {
		return
	}
	p := c.outlier.Load()
	if p == nil {
		return
	}
	if o == Success {
		e.resetStreaks()
		return
	}
	// Failures of requests that were in flight when e was ejected say
	// nothing new; counting them would start the next streak early.
	if u := e.ejectedUntil.Load(); u != 0 && u > c.clock.Now() {
		return
	}
	var trip bool
	switch o {
	case Status5xx:
		clear32(&e.consecGW)
		clear32(&e.consecConn)
		trip = bump(&e.consec5xx, p.consec5xx)
	case GatewayError:
		clear32(&e.consecConn)
		trip = bump(&e.consec5xx, p.consec5xx)
		trip = bump(&e.consecGW, p.consecGW) || trip
	case ConnectFailure, Reset:
		trip = bump(&e.consec5xx, p.consec5xx)
		trip = bump(&e.consecGW, p.consecGW) || trip
		trip = bump(&e.consecConn, p.consecConn) || trip
	default:
		return
	}
	if trip {
		c.eject(e, p)
	}
}

// bump extends a streak and reports whether it just reached threshold.
// Only one caller sees the exact value, so a streak trips once.
func bump(ctr *atomic.Int32, threshold int32) bool {
	if threshold <= 0 {
		return false
	}
	return ctr.Add(1) == threshold
}

// clear32 stores 0 only when needed: on the success path every request
// would otherwise write the endpoint's cache line.
func clear32(ctr *atomic.Int32) {
	if ctr.Load() != 0 {
		ctr.Store(0)
	}
}

func (e *Endpoint) resetStreaks() {
	clear32(&e.consec5xx)
	clear32(&e.consecGW)
	clear32(&e.consecConn)
}

// eject ejects e unless it already is, it has left the cluster, or the
// cluster's MaxEjectionPercent is reached. A refused ejection resets e's
// streaks, so it is tried again after another full streak.
func (c *Cluster) eject(e *Endpoint, p *outlierPolicy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer e.resetStreaks()
	if c.closed || !c.hasLocked(e) {
		return
	}
	now := c.clock.Now()
	prev := e.ejectedUntil.Load()
	if prev > now {
		return
	}
	ejected := 0
	for _, x := range c.eps {
		if x.ejectedUntil.Load() > now {
			ejected++
		}
	}
	n := len(c.eps)
	atLeastOne := ejected == 0 && n >= 2
	if !atLeastOne && (ejected+1)*100 > p.maxPercent*n {
		return
	}
	// The multiplier decays by one for each full interval the endpoint
	// has stayed in since its last ejection ended (Envoy decrements it on
	// each interval tick; counting afterwards needs no timer).
	if e.ejections > 0 && prev > 0 {
		decay := (now - prev) / p.interval
		e.ejections = int(max(int64(e.ejections)-decay, 0))
	}
	e.ejections++
	d := p.base * int64(e.ejections)
	if d > p.max || d/int64(e.ejections) != p.base { // capped, or overflowed
		d = p.max
	}
	e.ejectedUntil.Store(now + d)
	c.rebuildLocked()
}

// applyOutlierLocked installs the outlier policy for o. Ejections and
// multipliers survive a reload that keeps detection on; turning detection
// off clears them, as nothing would otherwise count for or against an
// endpoint. c.mu must be held; the caller rebuilds the picker.
func (c *Cluster) applyOutlierLocked(o *compile.Outlier) {
	p := newOutlierPolicy(o)
	c.outlier.Store(p)
	if p != nil {
		return
	}
	for _, e := range c.eps {
		e.ejectedUntil.Store(0)
		e.ejections = 0
		e.resetStreaks()
	}
}
