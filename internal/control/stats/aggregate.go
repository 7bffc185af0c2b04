package stats

import (
	"slices"
	"sync"
	"time"

	telemetryv1 "weft.dev/weft/api/telemetry/v1"
)

// The aggregator turns proxies' cumulative reports into per-slot traffic:
// for each proxy run (a proxy process, told apart by its start time) it
// keeps the last totals per destination and route, and adds the
// difference of each new report to the series.

// freshStart is how young a proxy run may be for its first report seen to
// count from zero. An older run (this replica restarted, or the proxy moved
// here from another replica) only sets a baseline: its past traffic was
// counted elsewhere, or is lost, but never counted twice.
const freshStart = 30 * time.Second

// runExpiry is how long the totals of a run that stopped reporting are
// kept, so that a proxy that reconnects continues where it left off.
const runExpiry = 15 * time.Minute

type routeKey struct{ service, route string }

type runKey struct {
	namespace, name string
	started         int64
}

type runState struct {
	reqs map[routeKey]counts
	tcps map[routeKey]counts
	seen time.Time
}

type aggregator struct {
	series *series
	now    func() time.Time
	// caller names the graph node of a reporting proxy.
	caller func(namespace, name string, labels map[string]string) string

	mu     sync.Mutex
	runs   map[runKey]*runState
	bounds []float64 // latency bucket bounds, from the first Hello
}

func newAggregator(s *series, now func() time.Time, caller func(namespace, name string, labels map[string]string) string) *aggregator {
	return &aggregator{series: s, now: now, caller: caller, runs: map[runKey]*runState{}}
}

// setBounds records the proxies' latency buckets and reports whether h's
// match them: reports with other buckets (a proxy of another version)
// still count requests, not latencies.
func (a *aggregator) setBounds(b []float64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bounds == nil {
		a.bounds = slices.Clone(b)
		return true
	}
	return slices.Equal(a.bounds, b)
}

func (a *aggregator) latencyBounds() []float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bounds
}

// report adds one Stats message of the proxy h.
func (a *aggregator) report(h *telemetryv1.Hello, bucketsOK bool, st *telemetryv1.Stats) {
	now := a.now()
	rk := runKey{h.Namespace, h.Name, h.StartedUnixNano}
	a.mu.Lock()
	run := a.runs[rk]
	fresh := false
	if run == nil {
		run = &runState{reqs: map[routeKey]counts{}, tcps: map[routeKey]counts{}}
		a.runs[rk] = run
		fresh = now.Sub(time.Unix(0, h.StartedUnixNano)) < freshStart
	} else {
		// A series that is new in a known run started from zero since the
		// last report.
		fresh = true
	}
	run.seen = now
	type delta struct {
		k routeKey
		c counts
	}
	var deltas []delta
	for _, r := range st.Requests {
		k := routeKey{r.DestinationService, r.Route}
		cur := counts{requests: r.Requests, errors: r.Errors, durSum: r.DurationSumSeconds}
		if bucketsOK {
			cur.buckets = r.Buckets
		}
		copy(cur.classes[:], r.StatusClasses)
		prev, ok := run.reqs[k]
		run.reqs[k] = cur
		if !ok && !fresh {
			continue
		}
		if d, ok := diff(cur, prev); ok && !d.empty() {
			deltas = append(deltas, delta{k, d})
		}
	}
	for _, t := range st.Tcp {
		k := routeKey{t.DestinationService, t.Route}
		cur := counts{tcpOpened: t.Opened, tcpClosed: t.Closed, tcpSent: t.SentBytes, tcpRecv: t.ReceivedBytes}
		prev, ok := run.tcps[k]
		run.tcps[k] = cur
		if !ok && !fresh {
			continue
		}
		if d, ok := diff(cur, prev); ok && !d.empty() {
			deltas = append(deltas, delta{k, d})
		}
	}
	for k, r := range a.runs {
		if now.Sub(r.seen) > runExpiry {
			delete(a.runs, k)
		}
	}
	a.mu.Unlock()
	if len(deltas) == 0 {
		return
	}
	src := a.caller(h.Namespace, h.Name, h.Labels)
	for _, d := range deltas {
		a.series.add(now, edgeKey{src: src, service: d.k.service, route: d.k.route}, &d.c)
	}
}

// diff is cur - prev; when any counter went down the proxy's counters
// restarted under the same run (they should not), and cur is the delta.
func diff(cur, prev counts) (counts, bool) {
	reset := cur.requests < prev.requests || cur.errors < prev.errors ||
		cur.tcpOpened < prev.tcpOpened || cur.tcpClosed < prev.tcpClosed ||
		cur.tcpSent < prev.tcpSent || cur.tcpRecv < prev.tcpRecv
	for i := range cur.classes {
		reset = reset || cur.classes[i] < prev.classes[i]
	}
	if len(prev.buckets) != 0 && len(prev.buckets) != len(cur.buckets) {
		reset = true
	}
	for i := range prev.buckets {
		if i < len(cur.buckets) && cur.buckets[i] < prev.buckets[i] {
			reset = true
		}
	}
	if reset {
		c := cur
		c.buckets = slices.Clone(cur.buckets)
		return c, true
	}
	d := counts{
		requests: cur.requests - prev.requests, errors: cur.errors - prev.errors,
		durSum:    cur.durSum - prev.durSum,
		tcpOpened: cur.tcpOpened - prev.tcpOpened, tcpClosed: cur.tcpClosed - prev.tcpClosed,
		tcpSent: cur.tcpSent - prev.tcpSent, tcpRecv: cur.tcpRecv - prev.tcpRecv,
	}
	for i := range d.classes {
		d.classes[i] = cur.classes[i] - prev.classes[i]
	}
	if len(cur.buckets) > 0 {
		d.buckets = make([]uint64, len(cur.buckets))
		for i := range cur.buckets {
			d.buckets[i] = cur.buckets[i]
			if i < len(prev.buckets) {
				d.buckets[i] -= prev.buckets[i]
			}
		}
	}
	return d, true
}
