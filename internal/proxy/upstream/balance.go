package upstream

import (
	"cmp"
	"slices"
	"strconv"

	"weft.dev/weft/internal/compile"
)

// Load balancing. As in grpc-go's balancer API, a picker is an immutable
// snapshot built when endpoints or their health change and swapped in
// atomically; Pick reads the current snapshot and takes no lock. Only the
// rebuild allocates.

type lbKind uint8

const (
	lbRoundRobin lbKind = iota
	lbRandom
	lbLeastRequest
	lbRingHash
)

func lbKindOf(cc *compile.Cluster) lbKind {
	if cc == nil {
		return lbRoundRobin
	}
	switch cc.LoadBalancer.Type {
	case "Random":
		return lbRandom
	case "LeastRequest":
		return lbLeastRequest
	case "RingHash":
		return lbRingHash
	}
	return lbRoundRobin // the default, also for unknown types
}

func (k lbKind) String() string {
	return [...]string{"RoundRobin", "Random", "LeastRequest", "RingHash"}[k]
}

// picker is one immutable snapshot of whom to pick among.
type picker struct {
	lb  lbKind
	all []*Endpoint // every endpoint, config order
	// cands are the endpoints Pick chooses among (zone.go decides which).
	cands []*Endpoint
	// spare are eligible endpoints outside cands (other zones), used only
	// to honour PickInfo.Avoid when cands has no other endpoint.
	spare []*Endpoint
	// ring is the consistent-hash ring over cands, for RingHash.
	ring *ring
	// expiry is the earliest time (clock ns) an ejection in this snapshot
	// lapses; 0 when none is ejected. Pick rebuilds once it passes, so
	// unejection needs neither a timer nor a clock read while nothing is
	// ejected.
	expiry int64
	// panic: no endpoint was eligible, so cands holds every endpoint.
	panic bool
	// local: cands are the local zone's endpoints only.
	local bool
}

// Pick chooses an endpoint per the cluster's load balancer, skipping ejected
// and unhealthy endpoints; when none is eligible it picks among all of them
// (panic mode) rather than fail. It fails only when the cluster has no
// endpoints.
func (c *Cluster) Pick(info PickInfo) (*Endpoint, error) {
	p := c.picker.Load()
	if p.expiry != 0 && c.clock.Now() >= p.expiry {
		p = c.refresh(p)
	}
	n := len(p.cands)
	if n == 0 {
		return nil, ErrNoEndpoint
	}
	if n == 1 {
		e := p.cands[0]
		if e == info.Avoid && len(p.spare) > 0 {
			e = p.spare[c.rand()%uint64(len(p.spare))]
		}
		return e, nil
	}
	switch p.lb {
	case lbRandom:
		return p.nextAfter(int(c.rand()%uint64(n)), info.Avoid), nil
	case lbLeastRequest:
		return p.leastRequest(c.rand(), info.Avoid), nil
	case lbRingHash:
		if info.HashKey == "" {
			return p.nextAfter(int(c.rand()%uint64(n)), info.Avoid), nil
		}
		return p.ring.pick(p.all, hashString(info.HashKey), info.Avoid), nil
	default:
		return p.nextAfter(int(c.rr.Add(1)%uint64(n)), info.Avoid), nil
	}
}

// nextAfter returns cands[i], or the one after it when cands[i] is avoid.
// len(cands) >= 2.
func (p *picker) nextAfter(i int, avoid *Endpoint) *Endpoint {
	e := p.cands[i]
	if e == avoid {
		i++
		if i == len(p.cands) {
			i = 0
		}
		e = p.cands[i]
	}
	return e
}

// leastRequest is power of two choices: of two distinct random candidates,
// the one with fewer requests in flight. len(cands) >= 2.
func (p *picker) leastRequest(r uint64, avoid *Endpoint) *Endpoint {
	n := uint64(len(p.cands))
	// One 64-bit draw gives both indices: a in [0,n), b in [0,n) \ {a}.
	lo, hi := r&0xffffffff, r>>32
	a := lo % n
	b := hi % (n - 1)
	if b >= a {
		b++
	}
	ea, eb := p.cands[a], p.cands[b]
	switch {
	case ea == avoid:
		return eb
	case eb == avoid:
		return ea
	case eb.active.Load() < ea.active.Load():
		return eb
	}
	return ea
}

// refresh rebuilds the picker when an ejection in p has lapsed, unless
// another caller already did.
func (c *Cluster) refresh(p *picker) *picker {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.picker.Load(); cur != p {
		return cur
	}
	c.rebuildLocked()
	return c.picker.Load()
}

// rebuildLocked builds and publishes a new picker from the endpoints'
// current state. c.mu must be held.
func (c *Cluster) rebuildLocked() {
	now := c.clock.Now()
	p := &picker{lb: lbKindOf(c.Config()), all: c.eps}
	// eligible shares c.eps, as all does, until an endpoint is left out:
	// a cluster whose endpoints are all eligible needs no copy.
	eligible, shared := c.eps, true
	for i, e := range c.eps {
		out := false
		if u := e.ejectedUntil.Load(); u > now {
			if p.expiry == 0 || u < p.expiry {
				p.expiry = u
			}
			out = true
		} else if e.unhealthy.Load() {
			out = true
		}
		switch {
		case out && shared:
			eligible, shared = append(make([]*Endpoint, 0, len(c.eps)-1), c.eps[:i]...), false
		case !out && !shared:
			eligible = append(eligible, e)
		}
	}
	p.cands, p.spare, p.local = c.zoneFilter(eligible)
	if len(p.cands) == 0 {
		p.cands, p.spare, p.panic = c.eps, nil, len(c.eps) > 0
	}
	if p.lb == lbRingHash && c.ring != nil {
		p.ring = c.ring.filter(c.eps, p.cands)
	}
	c.picker.Store(p)
}

// ring is a consistent-hash ring: vnodesPerEndpoint points per endpoint,
// sorted by hash, each owned by an index into the endpoint list it was
// built over. Parallel arrays keep it at 12 bytes a point.
type ring struct {
	hashes []uint64
	owners []int32
}

const vnodesPerEndpoint = 100

type ringPoint struct {
	h uint64
	i int32
}

// newRing places each endpoint by its address, so every proxy with the
// same endpoints builds the same ring and sends a key to the same place.
func newRing(eps []*Endpoint) *ring { return (*ring)(nil).update(nil, eps) }

// update returns the ring over eps, given r built over old (r may be nil).
// Points of endpoints in both are kept, not rehashed, and merged with the
// sorted points of new ones: a pod joining a 1000-endpoint cluster costs
// a linear merge, not a sort of 100,000 points.
func (r *ring) update(old, eps []*Endpoint) *ring {
	if r != nil && sameEndpoints(old, eps) {
		return r
	}
	idx := make(map[*Endpoint]int32, len(eps))
	for i, e := range eps {
		idx[e] = int32(i)
	}
	var remap []int32 // old index to new, -1 when gone
	if r != nil {
		remap = make([]int32, len(old))
		for i, e := range old {
			if j, ok := idx[e]; ok {
				remap[i] = j
				delete(idx, e) // what is left in idx is new
			} else {
				remap[i] = -1
			}
		}
	}
	fresh := make([]ringPoint, 0, len(idx)*vnodesPerEndpoint)
	var buf []byte
	for e, i := range idx {
		for v := range vnodesPerEndpoint {
			buf = append(buf[:0], e.Address...)
			buf = append(buf, '_')
			buf = strconv.AppendInt(buf, int64(v), 10)
			fresh = append(fresh, ringPoint{hashBytes(buf), i})
		}
	}
	slices.SortFunc(fresh, func(a, b ringPoint) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})

	n := len(eps) * vnodesPerEndpoint
	out := &ring{hashes: make([]uint64, 0, n), owners: make([]int32, 0, n)}
	k := 0
	if r != nil {
		for j, h := range r.hashes {
			o := remap[r.owners[j]]
			if o < 0 {
				continue
			}
			for k < len(fresh) && fresh[k].h < h {
				out.hashes = append(out.hashes, fresh[k].h)
				out.owners = append(out.owners, fresh[k].i)
				k++
			}
			out.hashes = append(out.hashes, h)
			out.owners = append(out.owners, o)
		}
	}
	for ; k < len(fresh); k++ {
		out.hashes = append(out.hashes, fresh[k].h)
		out.owners = append(out.owners, fresh[k].i)
	}
	return out
}

// filter returns the ring restricted to keep (a subset of all, the list
// the ring was built over). Keeping a subset of a sorted ring keeps it
// sorted, and a key moves only if its endpoint left: consistent hashing
// across ejections and health flips without re-sorting.
func (r *ring) filter(all, keep []*Endpoint) *ring {
	if len(keep) == len(all) {
		return r
	}
	in := make([]bool, len(all))
	j := 0
	for i, e := range all { // keep is in the same order as all
		if j < len(keep) && keep[j] == e {
			in[i] = true
			j++
		}
	}
	n := len(keep) * vnodesPerEndpoint
	out := &ring{hashes: make([]uint64, 0, n), owners: make([]int32, 0, n)}
	for i, o := range r.owners {
		if in[o] {
			out.hashes = append(out.hashes, r.hashes[i])
			out.owners = append(out.owners, o)
		}
	}
	return out
}

// pick returns the owner of the first point at or after h, skipping points
// owned by avoid. The ring holds at least two endpoints.
func (r *ring) pick(all []*Endpoint, h uint64, avoid *Endpoint) *Endpoint {
	// Binary search by hand: sort.Search's closure would cost a call per
	// probe.
	lo, hi := 0, len(r.hashes)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.hashes[m] < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for k := 0; k < len(r.owners); k++ {
		if lo == len(r.owners) {
			lo = 0
		}
		if e := all[r.owners[lo]]; e != avoid {
			return e
		}
		lo++
	}
	return all[r.owners[0]]
}

// FNV-1a 64 finished with murmur3's fmix64: FNV alone places similar short
// strings ("10.0.0.1:80_1", "_2", ...) too close together on the ring.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

func hashString(s string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return fmix64(h)
}

func hashBytes(b []byte) uint64 {
	h := uint64(fnvOffset64)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return fmix64(h)
}

func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
