// Package upstream holds the data plane's view of backends: clusters of
// endpoints, how one is picked (load balancing, zone awareness), which are
// ejected (outlier detection, active health checks) and how many requests
// may be in flight (circuit breaking). Its state outlives config reloads:
// Manager.Update swaps the config of a cluster while keeping the counters
// and ejection state of endpoints that stay.
//
// Where things live, one concern per file:
//
//	upstream.go  Manager, Cluster and Endpoint, and state across reloads
//	balance.go   pickers: immutable snapshots, swapped atomically
//	zone.go      which endpoints a picker chooses among (zone-aware, panic)
//	outlier.go   passive ejection from request outcomes (End)
//	health.go    active HTTP health checks
//	circuit.go   Admit and AdmitConnection: Envoy-style limits
//	status.go    read-only stats for the admin page
//
// The request path touches only atomics and immutable snapshots: Pick,
// Begin, End and Admit take no lock unless an endpoint's state changes
// (an ejection, a lapsed ejection, a health flip), which rebuilds the
// cluster's picker under the cluster's mutex.
package upstream

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"weft.dev/weft/internal/compile"
)

// Errors a pick or an admission can fail with. The proxy maps them to 503
// with a reason header.
var (
	ErrNoCluster   = errors.New("no such cluster")
	ErrNoEndpoint  = errors.New("no healthy upstream")
	ErrOverflow    = errors.New("circuit open: too many pending requests")
	ErrMaxRequests = errors.New("circuit open: too many requests")
	// ErrAdmitAborted is returned by Admit when done closed while the
	// request waited for a connection slot.
	ErrAdmitAborted = errors.New("circuit: gave up waiting for a connection slot")
)

// Outcome classifies how a request to an endpoint ended, for outlier
// detection and least-request accounting.
type Outcome int

const (
	Success        Outcome = iota
	Status5xx              // any 5xx other than a gateway error
	GatewayError           // 502, 503, 504
	ConnectFailure         // dial failed or refused
	Reset                  // connection reset or closed mid-request
	Cancelled              // the caller went away; not the endpoint's fault
)

func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Status5xx:
		return "5xx"
	case GatewayError:
		return "gateway-error"
	case ConnectFailure:
		return "connect-failure"
	case Reset:
		return "reset"
	case Cancelled:
		return "cancelled"
	}
	return "unknown"
}

// Manager owns every cluster's runtime state.
//
// A cluster's state is made when the cluster is first used (Cluster), not
// when its config arrives: a sidecar holds the config of every service it
// may call, but calls few of them, and the state of a cluster (its
// endpoints' counters, a picker) costs more than its config. Clusters with
// active health checks are made at once, so that their checks run.
type Manager struct {
	mu sync.Mutex
	// clusters holds the clusters made so far; it is replaced, never
	// modified, so Cluster reads it without the lock.
	clusters atomic.Pointer[map[string]*Cluster]
	// configs is the config of every cluster, made or not (guarded by mu).
	configs map[string]*compile.Cluster
	// Zone is the local proxy's zone, for zone-aware balancing. Set it
	// before the first Update; each Update applies the current value.
	Zone string

	// Seams for tests; set before the first Update.
	clock clock
	rand  func() uint64
}

func NewManager(zone string) *Manager {
	m := &Manager{Zone: zone, clock: newMonoClock(), rand: rand.Uint64}
	empty := map[string]*Cluster{}
	m.clusters.Store(&empty)
	return m
}

// Update applies a new set of clusters; the map must not change after.
// Clusters and endpoints that remain keep their state; removed ones are
// closed (health checkers stopped).
func (m *Manager) Update(clusters map[string]*compile.Cluster) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.clusters.Load()
	next := make(map[string]*Cluster, len(old))
	for name, c := range old {
		if cc, ok := clusters[name]; ok {
			c.update(m.Zone, cc)
			next[name] = c
		}
	}
	for name, cc := range clusters {
		if cc != nil && cc.HealthCheck != nil && next[name] == nil {
			next[name] = m.newCluster(name, cc)
		}
	}
	m.configs = clusters
	m.clusters.Store(&next)
	for name, c := range old {
		if _, ok := next[name]; !ok {
			c.close()
		}
	}
}

// newCluster makes the state of cluster name with config cc.
func (m *Manager) newCluster(name string, cc *compile.Cluster) *Cluster {
	c := newCluster(name, m)
	c.update(m.Zone, cc)
	return c
}

// Cluster returns the named cluster, made on first use, or nil when the
// config has no such cluster.
func (m *Manager) Cluster(name string) *Cluster {
	if c := (*m.clusters.Load())[name]; c != nil {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := *m.clusters.Load()
	if c := cur[name]; c != nil {
		return c // made meanwhile
	}
	cc, ok := m.configs[name]
	if !ok {
		return nil
	}
	c := m.newCluster(name, cc)
	next := make(map[string]*Cluster, len(cur)+1)
	for n, x := range cur {
		next[n] = x
	}
	next[name] = c
	m.clusters.Store(&next)
	return c
}

// Close stops all background work.
func (m *Manager) Close() { m.Update(nil) }

// PickInfo carries what a balancer may key on.
type PickInfo struct {
	// HashKey is the ring-hash key (header, cookie or source address value)
	// the caller extracted per the cluster's LoadBalancer config.
	HashKey string
	// Avoid, when not nil, is skipped if any other endpoint is available
	// (retries go to a different endpoint).
	Avoid *Endpoint
}

// Endpoint is one backend address with its live state. The exported fields
// never change; an address whose zone or workload changes is a new backend
// and gets a new Endpoint.
type Endpoint struct {
	Address  string
	Zone     string
	Workload string

	active atomic.Int64

	// Passive outlier detection (outlier.go). Consecutive counters are
	// touched by End; ejection fields change under the cluster's mutex,
	// ejectedUntil is read without it.
	consec5xx    atomic.Int32
	consecGW     atomic.Int32
	consecConn   atomic.Int32
	ejectedUntil atomic.Int64 // clock ns; 0 never ejected
	ejections    int          // current multiplier, guarded by Cluster.mu

	// Active health checking (health.go).
	unhealthy atomic.Bool
	hcOK      atomic.Int32
	hcFail    atomic.Int32
}

// Active is the number of requests in flight to the endpoint.
func (e *Endpoint) Active() int64 { return e.active.Load() }

// Cluster is the live state of one compile.Cluster.
type Cluster struct {
	name  string
	clock clock
	rand  func() uint64

	// Read on the request path without locks.
	cfg     atomic.Pointer[compile.Cluster]
	picker  atomic.Pointer[picker]
	outlier atomic.Pointer[outlierPolicy]
	circuit atomic.Pointer[circuit]
	rr      atomic.Uint64

	// Circuit breaker counters; they outlive config reloads.
	requests atomic.Int64
	pending  atomic.Int64
	conns    atomic.Int64

	mu   sync.Mutex // guards the fields below and picker rebuilds
	zone string
	eps  []*Endpoint // in config order, deduplicated by address
	// byAddr indexes eps by address when there are more than
	// indexEndpointsAbove of them; smaller clusters, the common case, are
	// searched instead, which spares every cluster a map.
	byAddr map[string]*Endpoint
	ring   *ring // over eps; nil unless the balancer is RingHash
	health *healthChecker
	closed bool
}

// Snapshots every new cluster starts with: both are immutable, so all
// clusters share them until their first update.
var (
	noPicker  = &picker{}
	noCircuit = &circuit{}
)

func newCluster(name string, m *Manager) *Cluster {
	c := &Cluster{name: name, clock: m.clock, rand: m.rand}
	// Start round robin at a random offset so proxies that load the same
	// config at once do not all send their first request to one endpoint.
	c.rr.Store(c.rand())
	c.picker.Store(noPicker)
	c.circuit.Store(noCircuit)
	return c
}

// indexEndpointsAbove is the size from which a cluster indexes its
// endpoints by address (byAddr).
const indexEndpointsAbove = 16

// findEndpoint returns the endpoint of eps (indexed by byAddr, or nil when
// eps is small) with the given address, or nil.
func findEndpoint(eps []*Endpoint, byAddr map[string]*Endpoint, addr string) *Endpoint {
	if byAddr != nil {
		return byAddr[addr]
	}
	for _, e := range eps {
		if e.Address == addr {
			return e
		}
	}
	return nil
}

// hasLocked reports whether e is (still) one of the cluster's endpoints.
// c.mu must be held.
func (c *Cluster) hasLocked(e *Endpoint) bool {
	return findEndpoint(c.eps, c.byAddr, e.Address) == e
}

// update applies cc, keeping the Endpoint objects of addresses that stay.
func (c *Cluster) update(zone string, cc *compile.Cluster) {
	if cc == nil {
		cc = &compile.Cluster{Name: c.name}
	}
	c.mu.Lock()
	c.zone = zone
	oldEps, oldByAddr := c.eps, c.byAddr
	eps := make([]*Endpoint, 0, len(cc.Endpoints))
	var byAddr map[string]*Endpoint
	if len(cc.Endpoints) > indexEndpointsAbove {
		byAddr = make(map[string]*Endpoint, len(cc.Endpoints))
	}
	for _, ce := range cc.Endpoints {
		if ce == nil || findEndpoint(eps, byAddr, ce.Address) != nil {
			continue
		}
		e := findEndpoint(oldEps, oldByAddr, ce.Address)
		if e == nil || e.Zone != ce.Zone || e.Workload != ce.Workload {
			e = &Endpoint{Address: ce.Address, Zone: ce.Zone, Workload: ce.Workload}
		}
		eps = append(eps, e)
		if byAddr != nil {
			byAddr[ce.Address] = e
		}
	}
	c.eps, c.byAddr = eps, byAddr

	c.cfg.Store(cc)
	c.applyOutlierLocked(cc.Outlier)
	c.circuit.Store(c.circuit.Load().with(cc.Limits))
	if lbKindOf(cc) == lbRingHash {
		c.ring = c.ring.update(oldEps, eps) // nil-safe: builds afresh
	} else {
		c.ring = nil
	}
	c.rebuildLocked()
	stop := c.reconcileHealthLocked(cc.HealthCheck)
	c.mu.Unlock()

	// Outside the lock: a stopping checker may be waiting on c.mu to
	// record a result.
	if stop != nil {
		stop.stop()
	}
}

func (c *Cluster) close() {
	c.mu.Lock()
	c.closed = true
	h := c.health
	c.health = nil
	c.mu.Unlock()
	if h != nil {
		h.stop()
	}
}

func sameEndpoints(a, b []*Endpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Name is the cluster's key in the config.
func (c *Cluster) Name() string { return c.name }

// Config is the cluster's current config.
func (c *Cluster) Config() *compile.Cluster { return c.cfg.Load() }

// Endpoints returns the cluster's endpoints in config order. The slice is
// shared and must not be modified.
func (c *Cluster) Endpoints() []*Endpoint { return c.picker.Load().all }

// Endpoint returns the endpoint with the given address, or nil.
func (c *Cluster) Endpoint(address string) *Endpoint {
	for _, e := range c.picker.Load().all {
		if e.Address == address {
			return e
		}
	}
	return nil
}

// Begin marks a request to e as started; End reports how it ended. Every
// Begin must be matched by exactly one End.
func (c *Cluster) Begin(e *Endpoint) { e.active.Add(1) }

// End marks a request to e as finished and feeds outlier detection.
func (c *Cluster) End(e *Endpoint, o Outcome) {
	e.active.Add(-1)
	c.observe(e, o)
}

// clock is a monotonic clock in nanoseconds, with the wall time it started
// at for display.
type clock interface {
	Now() int64
	Wall(ns int64) time.Time
}

type monoClock struct{ epoch time.Time }

func newMonoClock() *monoClock { return &monoClock{epoch: time.Now()} }

// Now reads only the monotonic clock (time.Since), which is cheaper than
// a wall-clock read and immune to clock steps.
func (m *monoClock) Now() int64 { return int64(time.Since(m.epoch)) }

func (m *monoClock) Wall(ns int64) time.Time { return m.epoch.Add(time.Duration(ns)) }
