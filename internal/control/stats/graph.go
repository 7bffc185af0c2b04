package stats

import (
	"context"
	"math"
	"sort"
	"strings"
	"time"

	"weft.dev/weft/internal/control/api"
)

// Queries over the series: the service graph and one service's metrics.

// span is a query's time range: slots from..to, and the seconds they
// cover (the current slot only as far as now).
type span struct {
	from, to int64
	seconds  float64
}

func (s *Stats) span(window time.Duration) span {
	now := s.opts.Now()
	res := s.opts.Resolution
	to := s.series.slotNumber(now)
	n := int64(window / res)
	if n < 1 {
		n = 1
	}
	from := to - n + 1
	secs := now.Sub(time.Unix(0, from*int64(res))).Seconds()
	return span{from: from, to: to, seconds: secs}
}

// nodeOfService is the node of a destination "name.namespace".
func nodeOfService(svc string) (id, ns, name string) {
	if svc == "" || svc == "unknown" {
		return api.NodeUnknown, "", "unknown"
	}
	name, ns, ok := strings.Cut(svc, ".")
	if !ok {
		return name, "", name
	}
	return ns + "/" + name, ns, name
}

// callerNode names the node of a reporting proxy: the service that
// selects its workload, else the workload itself.
func callerNode(mm *meshModel, ns, name string, labels map[string]string) string {
	if svc, ok := mm.serviceOf(ns, labels); ok {
		return ns + "/" + svc
	}
	return "workload:" + ns + "/" + name
}

// parseNode splits a caller node id into its kind, namespace and name.
func parseNode(id string) (kind, ns, name string) {
	if rest, ok := strings.CutPrefix(id, "workload:"); ok {
		ns, name, _ = strings.Cut(rest, "/")
		return api.NodeWorkload, ns, name
	}
	ns, name, _ = strings.Cut(id, "/")
	return api.NodeService, ns, name
}

func ms(seconds float64) *float64 {
	if math.IsNaN(seconds) {
		return nil
	}
	v := math.Round(seconds*1e6) / 1e3 // milliseconds, to the microsecond
	return &v
}

func golden(c *counts, seconds float64, bounds []float64) api.Golden {
	g := api.Golden{Requests: c.requests, Errors: c.errors}
	if seconds > 0 {
		g.RPS = float64(c.requests) / seconds
	}
	if c.requests > 0 {
		sr := 1 - float64(c.errors)/float64(c.requests)
		g.SuccessRate = &sr
		g.P50, g.P95, g.P99 = ms(c.quantile(0.5, bounds)), ms(c.quantile(0.95, bounds)), ms(c.quantile(0.99, bounds))
	}
	return g
}

func tcpGolden(c *counts, seconds float64) *api.TCPGolden {
	if c.tcpOpened == 0 && c.tcpClosed == 0 && c.tcpSent == 0 && c.tcpRecv == 0 {
		return nil
	}
	t := &api.TCPGolden{Opened: c.tcpOpened, Closed: c.tcpClosed, SentBytes: c.tcpSent, ReceivedBytes: c.tcpRecv}
	if seconds > 0 {
		t.ConnsPerSec = float64(c.tcpOpened) / seconds
	}
	return t
}

// Graph builds the service graph over window; namespace, when set, keeps
// the services of that namespace and the edges touching them.
func (s *Stats) Graph(ctx context.Context, namespace string, window time.Duration) (*api.GraphResponse, error) {
	mm, err := s.mesh.get(ctx)
	if err != nil {
		return nil, err
	}
	sp := s.span(window)
	bounds := s.agg.latencyBounds()
	sums := s.series.window(sp.from, sp.to, nil)

	type pair struct{ src, dst string }
	edges := map[pair]*counts{}
	inbound := map[string]*counts{}
	nodes := map[string]*api.GraphNode{}
	addNode := func(id, kind, ns, name string) {
		if nodes[id] == nil {
			nodes[id] = &api.GraphNode{ID: id, Kind: kind, Namespace: ns, Name: name}
		}
	}
	for _, svc := range mm.services {
		if namespace == "" || svc.namespace == namespace {
			addNode(svc.namespace+"/"+svc.name, api.NodeService, svc.namespace, svc.name)
		}
	}
	for k, c := range sums {
		srcID := k.src
		srcKind, srcNS, srcName := parseNode(srcID)
		dstID, dstNS, dstName := nodeOfService(k.service)
		if namespace != "" && srcNS != namespace && dstNS != namespace {
			continue
		}
		addNode(srcID, srcKind, srcNS, srcName)
		dstKind := api.NodeService
		if dstID == api.NodeUnknown {
			dstKind = api.NodeUnknown
		}
		addNode(dstID, dstKind, dstNS, dstName)
		p := pair{srcID, dstID}
		if edges[p] == nil {
			edges[p] = &counts{}
		}
		edges[p].add(c)
		if inbound[dstID] == nil {
			inbound[dstID] = &counts{}
		}
		inbound[dstID].add(c)
	}
	resp := &api.GraphResponse{
		Time: s.opts.Now().UTC(), Window: window.String(), WindowSeconds: sp.seconds, Replica: s.replica(),
		Nodes: []api.GraphNode{}, Edges: []api.GraphEdge{},
	}
	for _, id := range sortedKeys(nodes) {
		n := nodes[id]
		if n.Kind == api.NodeService {
			n.Workloads = len(mm.workloadsOf(n.Namespace, n.Name))
		}
		if c := inbound[id]; c != nil {
			n.Inbound = golden(c, sp.seconds, bounds)
			n.TCP = tcpGolden(c, sp.seconds)
		}
		resp.Nodes = append(resp.Nodes, *n)
	}
	for p, c := range edges {
		resp.Edges = append(resp.Edges, api.GraphEdge{Source: p.src, Target: p.dst, Golden: golden(c, sp.seconds, bounds), TCP: tcpGolden(c, sp.seconds)})
	}
	sort.Slice(resp.Edges, func(i, j int) bool {
		a, b := resp.Edges[i], resp.Edges[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		return a.Target < b.Target
	})
	return resp, nil
}

// ServiceMetrics is one service's traffic over window, in steps of step:
// in all, per route, per caller, and what it calls itself.
func (s *Stats) ServiceMetrics(ctx context.Context, namespace, name string, window, step time.Duration) (*api.ServiceMetricsResponse, error) {
	mm, err := s.mesh.get(ctx)
	if err != nil {
		return nil, err
	}
	res := s.opts.Resolution
	if step < res {
		step = res
	}
	step = step.Truncate(res)
	sp := s.span(window)
	bounds := s.agg.latencyBounds()
	target := name + "." + namespace
	into := func(k edgeKey) bool { return k.service == target }
	resp := &api.ServiceMetricsResponse{
		Namespace: namespace, Name: name, Time: s.opts.Now().UTC(), Window: window.String(), Step: step.String(),
		Routes: []api.RouteMetrics{}, Callers: []api.GraphEdge{}, Calls: []api.GraphEdge{},
		Workloads: mm.workloadsOf(namespace, name), ServiceExists: mm.hasService(namespace, name),
		Series: []api.Point{},
	}

	sums := s.series.window(sp.from, sp.to, nil)
	var total counts
	callers := map[string]*counts{}
	calls := map[string]*counts{}
	self := namespace + "/" + name
	for k, c := range sums {
		srcID := k.src
		if k.service == target {
			total.add(c)
			if callers[srcID] == nil {
				callers[srcID] = &counts{}
			}
			callers[srcID].add(c)
		}
		if srcID == self {
			dstID, _, _ := nodeOfService(k.service)
			if calls[dstID] == nil {
				calls[dstID] = &counts{}
			}
			calls[dstID].add(c)
		}
	}
	resp.Golden = golden(&total, sp.seconds, bounds)
	for _, id := range sortedKeys(callers) {
		resp.Callers = append(resp.Callers, api.GraphEdge{Source: id, Target: self, Golden: golden(callers[id], sp.seconds, bounds), TCP: tcpGolden(callers[id], sp.seconds)})
	}
	for _, id := range sortedKeys(calls) {
		resp.Calls = append(resp.Calls, api.GraphEdge{Source: self, Target: id, Golden: golden(calls[id], sp.seconds, bounds), TCP: tcpGolden(calls[id], sp.seconds)})
	}

	nstep := int64(step / res)
	// Align steps to end with the current slot.
	from := sp.to - ((sp.to-sp.from+1+nstep-1)/nstep)*nstep + 1
	bySteps := s.series.steps(from, sp.to, nstep, into, func(k edgeKey) string { return "\x00" + k.route })
	stepSecs := step.Seconds()
	now := s.opts.Now()
	points := func(st []counts) []api.Point {
		out := make([]api.Point, len(st))
		for i := range st {
			start := time.Unix(0, (from+int64(i)*nstep)*int64(res))
			secs := stepSecs
			if i == len(st)-1 {
				secs = now.Sub(start).Seconds() // the current step is partial
			}
			g := golden(&st[i], secs, bounds)
			out[i] = api.Point{T: start.UTC(), Requests: g.Requests, RPS: g.RPS, SuccessRate: g.SuccessRate, P50: g.P50, P95: g.P95, P99: g.P99}
		}
		return out
	}
	nsteps := int((sp.to - from + 1) / nstep)
	all := make([]counts, nsteps)
	for g, st := range bySteps {
		route := strings.TrimPrefix(g, "\x00")
		var sum counts
		for i := range st {
			all[i].add(&st[i])
			sum.add(&st[i])
		}
		resp.Routes = append(resp.Routes, api.RouteMetrics{Route: route, Golden: golden(&sum, sp.seconds, bounds), Series: points(st)})
	}
	sort.Slice(resp.Routes, func(i, j int) bool { return resp.Routes[i].Route < resp.Routes[j].Route })
	resp.Series = points(all)
	return resp, nil
}

// Proxies lists the connected proxies with their telemetry streams.
func (s *Stats) Proxies(ctx context.Context) api.ProxiesResponse {
	resp := api.ProxiesResponse{Proxies: []api.ProxyInfo{}}
	tel := s.telemetryOf()
	seen := map[string]bool{}
	if s.opts.Proxies != nil {
		ps, err := s.opts.Proxies.Proxies(ctx)
		if err != nil {
			resp.Error = err.Error()
		}
		for _, p := range ps {
			id := p.Namespace + "/" + p.Name
			seen[id] = true
			resp.Proxies = append(resp.Proxies, api.ProxyInfo{ProxyStatus: api.ProxyStatus{
				Name: p.Name, Namespace: p.Namespace, Replica: p.Replica,
				Address: p.Address, Peer: p.Peer, ConnectedSince: p.ConnectedSince,
				Dependencies: p.Dependencies, Learned: p.Learned, Services: p.Services,
				VersionSent: p.VersionSent, Revision: p.Revision, SentAt: p.SentAt,
				VersionAcked: p.VersionAcked, AckedAt: p.AckedAt,
				NackVersion: p.NackVersion, NackError: p.NackError, NackedAt: p.NackedAt,
			}, Telemetry: tel[id]})
		}
	}
	// Proxies that report telemetry without a config stream here (yet).
	for _, id := range sortedKeys(tel) {
		if seen[id] {
			continue
		}
		ns, name, _ := strings.Cut(id, "/")
		resp.Proxies = append(resp.Proxies, api.ProxyInfo{ProxyStatus: api.ProxyStatus{Name: name, Namespace: ns, Replica: s.replica()}, Telemetry: tel[id]})
	}
	return resp
}
