package stats

import (
	"math"
	"sync"
	"time"
)

// The time series: a ring of fixed-width slots (Resolution wide, Slots of
// them, so Resolution*Slots is the window kept). Each slot holds, per edge
// key, the traffic that proxies reported during it (differences of their
// cumulative counters). A slot is reused when the ring comes round, so
// memory is bounded by slots x edges.

// edgeKey is one caller node to one destination service and route. The
// caller is resolved to its node (the service that selects its workload)
// when its report arrives, so the series grow with the mesh's edges, not
// with its proxies.
type edgeKey struct {
	src     string // caller node id: "namespace/service" or "workload:namespace/name"
	service string // "name.namespace" or "unknown"
	route   string
}

// counts are traffic numbers that add up.
type counts struct {
	requests, errors uint64
	buckets          []uint64 // per latency bucket, +Inf last
	durSum           float64
	classes          [6]uint64
	tcpOpened        uint64
	tcpClosed        uint64
	tcpSent          uint64
	tcpRecv          uint64
}

func (c *counts) add(o *counts) {
	c.requests += o.requests
	c.errors += o.errors
	if len(o.buckets) > 0 {
		if len(c.buckets) < len(o.buckets) {
			c.buckets = append(c.buckets, make([]uint64, len(o.buckets)-len(c.buckets))...)
		}
		for i, b := range o.buckets {
			c.buckets[i] += b
		}
	}
	c.durSum += o.durSum
	for i := range c.classes {
		c.classes[i] += o.classes[i]
	}
	c.tcpOpened += o.tcpOpened
	c.tcpClosed += o.tcpClosed
	c.tcpSent += o.tcpSent
	c.tcpRecv += o.tcpRecv
}

func (c *counts) empty() bool {
	return c.requests == 0 && c.tcpOpened == 0 && c.tcpClosed == 0 && c.tcpSent == 0 && c.tcpRecv == 0
}

// quantile estimates the q-quantile (0..1) in seconds from the buckets,
// interpolating linearly inside a bucket as Prometheus'
// histogram_quantile does; NaN without requests. bounds are the buckets'
// upper bounds, without +Inf.
func (c *counts) quantile(q float64, bounds []float64) float64 {
	var total uint64
	for _, b := range c.buckets {
		total += b
	}
	if total == 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	var cum uint64
	for i, b := range c.buckets {
		prev := cum
		cum += b
		if float64(cum) < rank || b == 0 {
			continue
		}
		if i >= len(bounds) {
			// In +Inf: the highest finite bound is all that is known.
			if len(bounds) == 0 {
				return math.NaN()
			}
			return bounds[len(bounds)-1]
		}
		lo := 0.0
		if i > 0 {
			lo = bounds[i-1]
		}
		return lo + (bounds[i]-lo)*(rank-float64(prev))/float64(b)
	}
	if len(bounds) > 0 {
		return bounds[len(bounds)-1]
	}
	return math.NaN()
}

type slot struct {
	n     int64 // slot number: unix time / resolution; 0 unused
	edges map[edgeKey]*counts
}

// series is the ring.
type series struct {
	res   time.Duration
	mu    sync.Mutex
	slots []slot
}

func newSeries(res time.Duration, n int) *series {
	return &series{res: res, slots: make([]slot, n)}
}

func (s *series) slotNumber(t time.Time) int64 { return t.UnixNano() / int64(s.res) }

// add records c for k in the slot of time t.
func (s *series) add(t time.Time, k edgeKey, c *counts) {
	n := s.slotNumber(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := &s.slots[int(n%int64(len(s.slots)))]
	if sl.n != n {
		sl.n, sl.edges = n, map[edgeKey]*counts{}
	}
	cur := sl.edges[k]
	if cur == nil {
		cur = &counts{}
		sl.edges[k] = cur
	}
	cur.add(c)
}

// window sums, per key that keep accepts (nil: all), the slots from..to
// (slot numbers, inclusive).
func (s *series) window(from, to int64, keep func(edgeKey) bool) map[edgeKey]*counts {
	out := map[edgeKey]*counts{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.n == 0 || sl.n < from || sl.n > to {
			continue
		}
		for k, c := range sl.edges {
			if keep != nil && !keep(k) {
				continue
			}
			sum := out[k]
			if sum == nil {
				sum = &counts{}
				out[k] = sum
			}
			sum.add(c)
		}
	}
	return out
}

// steps sums the slots from..to into runs of step slots each (the last
// ending at to), per group of the keys keep accepts: one counts per step,
// oldest first.
func (s *series) steps(from, to, step int64, keep func(edgeKey) bool, group func(edgeKey) string) map[string][]counts {
	nsteps := int((to - from + 1 + step - 1) / step)
	out := map[string][]counts{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.n == 0 || sl.n < from || sl.n > to {
			continue
		}
		idx := nsteps - 1 - int((to-sl.n)/step)
		if idx < 0 {
			continue
		}
		for k, c := range sl.edges {
			if keep != nil && !keep(k) {
				continue
			}
			g := group(k)
			st := out[g]
			if st == nil {
				st = make([]counts, nsteps)
				out[g] = st
			}
			st[idx].add(c)
		}
	}
	return out
}
