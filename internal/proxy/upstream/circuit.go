package upstream

import (
	"sync/atomic"

	"weft.dev/weft/internal/compile"
)

// Circuit breaking, after Envoy's per-cluster thresholds:
//
//   - MaxRequests bounds requests in flight; past it Admit fails at once
//     with ErrMaxRequests.
//   - MaxConnections bounds requests holding a connection slot (and opaque
//     TCP connections, AdmitConnection). A request that finds every slot
//     taken waits as a pending request, up to MaxPendingRequests of them;
//     past that Admit fails at once with ErrOverflow.
//
// 0 means unlimited. With no limit set Admit counts nothing and returns a
// shared no-op release, so an unlimited cluster pays nothing here.
//
// The counters live on the Cluster and outlive reloads; each release
// undoes exactly what its admission did, so they stay exact across a
// reload that changes the limits. The slot semaphore is kept while
// MaxConnections is unchanged, so slots held across a reload still count.

type circuit struct {
	maxRequests int64
	maxPending  int64
	maxConns    int
	slots       chan struct{} // a semaphore; nil when MaxConnections is 0
}

// with returns the circuit for limits l, reusing cur's semaphore when
// MaxConnections is unchanged.
func (cur *circuit) with(l compile.Limits) *circuit {
	n := &circuit{
		maxRequests: int64(max(l.MaxRequests, 0)),
		maxPending:  int64(max(l.MaxPendingRequests, 0)),
		maxConns:    max(l.MaxConnections, 0),
	}
	if n.maxConns > 0 {
		if cur != nil && cur.maxConns == n.maxConns {
			n.slots = cur.slots
		} else {
			n.slots = make(chan struct{}, n.maxConns)
		}
	}
	if cur != nil && *cur == *n {
		return cur
	}
	return n
}

func (cb *circuit) unlimited() bool { return cb.maxRequests == 0 && cb.slots == nil }

func noRelease() {}

// admission is what one successful Admit or AdmitConnection holds.
type admission struct {
	c        *Cluster
	slots    chan struct{} // the semaphore a slot was taken from, or nil
	request  bool          // counted in c.requests
	released atomic.Bool
}

// release gives back what the admission took; calls after the first do
// nothing.
func (a *admission) release() {
	if a.released.Swap(true) {
		return
	}
	if a.slots != nil {
		<-a.slots
		a.c.conns.Add(-1)
	}
	if a.request {
		a.c.requests.Add(-1)
	}
}

// Admit applies the circuit breaker before a request is sent. On success it
// returns a release func that must be called when the request ends; calling
// it again does nothing. It may block while the request is pending for a
// connection slot, up to the cluster's MaxPendingRequests; done aborts the
// wait with ErrAdmitAborted.
func (c *Cluster) Admit(done <-chan struct{}) (release func(), err error) {
	cb := c.circuit.Load()
	if cb.unlimited() {
		return noRelease, nil
	}
	if n := c.requests.Add(1); cb.maxRequests > 0 && n > cb.maxRequests {
		c.requests.Add(-1)
		return nil, ErrMaxRequests
	}
	if cb.slots != nil {
		select {
		case cb.slots <- struct{}{}:
		default:
			if n := c.pending.Add(1); cb.maxPending > 0 && n > cb.maxPending {
				c.pending.Add(-1)
				c.requests.Add(-1)
				return nil, ErrOverflow
			}
			select {
			case cb.slots <- struct{}{}:
				c.pending.Add(-1)
			case <-done:
				c.pending.Add(-1)
				c.requests.Add(-1)
				return nil, ErrAdmitAborted
			}
		}
		c.conns.Add(1)
	}
	a := &admission{c: c, slots: cb.slots, request: true}
	return a.release, nil
}

// AdmitConnection admits one opaque TCP connection against MaxConnections,
// failing at once with ErrOverflow when every slot is taken (a raw
// connection has no request to queue). The release func must be called
// when the connection closes; calling it again does nothing.
func (c *Cluster) AdmitConnection() (release func(), err error) {
	cb := c.circuit.Load()
	if cb.slots == nil {
		return noRelease, nil
	}
	select {
	case cb.slots <- struct{}{}:
	default:
		return nil, ErrOverflow
	}
	c.conns.Add(1)
	a := &admission{c: c, slots: cb.slots}
	return a.release, nil
}
