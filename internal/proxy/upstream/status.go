package upstream

import (
	"sort"
	"time"
)

// Read-only stats for the admin page. Nothing here is on the request path.

// ClusterStatus is a point-in-time view of one cluster.
type ClusterStatus struct {
	Name         string `json:"name"`
	LoadBalancer string `json:"loadBalancer"`
	// Panic: no endpoint is eligible, so picks go to any of them.
	Panic bool `json:"panic,omitempty"`
	// LocalZone: zone-aware picks stay in the proxy's zone.
	LocalZone bool `json:"localZone,omitempty"`
	// Circuit breaker counters, kept only while the cluster has limits.
	Requests    int64            `json:"requests"`
	Pending     int64            `json:"pending"`
	Connections int64            `json:"connections"`
	Endpoints   []EndpointStatus `json:"endpoints"`
}

// EndpointStatus is a point-in-time view of one endpoint.
type EndpointStatus struct {
	Address  string `json:"address"`
	Zone     string `json:"zone,omitempty"`
	Workload string `json:"workload,omitempty"`
	Active   int64  `json:"active"`
	// Healthy per active health checks (always true without them).
	Healthy bool `json:"healthy"`
	// Ejected by outlier detection until EjectedUntil.
	Ejected      bool      `json:"ejected"`
	EjectedUntil time.Time `json:"ejectedUntil,omitzero"`
	// Ejections is the current ejection-time multiplier.
	Ejections int `json:"ejections,omitempty"`
}

// Snapshot returns the cluster's current state.
func (c *Cluster) Snapshot() ClusterStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.picker.Load()
	now := c.clock.Now()
	s := ClusterStatus{
		Name:         c.name,
		LoadBalancer: lbKindOf(c.Config()).String(),
		Panic:        p.panic,
		LocalZone:    p.local,
		Requests:     c.requests.Load(),
		Pending:      c.pending.Load(),
		Connections:  c.conns.Load(),
		Endpoints:    make([]EndpointStatus, 0, len(c.eps)),
	}
	for _, e := range c.eps {
		es := EndpointStatus{
			Address:   e.Address,
			Zone:      e.Zone,
			Workload:  e.Workload,
			Active:    e.active.Load(),
			Healthy:   !e.unhealthy.Load(),
			Ejections: e.ejections,
		}
		if u := e.ejectedUntil.Load(); u > now {
			es.Ejected = true
			es.EjectedUntil = c.clock.Wall(u)
		}
		s.Endpoints = append(s.Endpoints, es)
	}
	return s
}

// Status is Snapshot, under the name the admin page calls.
func (c *Cluster) Status() ClusterStatus { return c.Snapshot() }

// Snapshot returns every cluster's state, sorted by name. A cluster not
// used yet shows the state it would start with.
func (m *Manager) Snapshot() []ClusterStatus {
	m.mu.Lock()
	cs, configs := *m.clusters.Load(), m.configs
	m.mu.Unlock()
	out := make([]ClusterStatus, 0, len(configs))
	for name, cc := range configs {
		c := cs[name]
		if c == nil {
			// A throwaway: clusters made here have no health checks, so
			// nothing runs for it.
			c = newCluster(name, m)
			c.update(m.Zone, cc)
		}
		out = append(out, c.Snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
