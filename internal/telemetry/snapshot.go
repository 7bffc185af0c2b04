package telemetry

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The golden numbers a proxy reports to the control plane (stats), read
// from the same Prometheus series /metrics serves. Reading them costs the
// request path nothing: the reader takes the series map's read lock only to
// copy the series pointers, then asks each histogram for its state as a
// scrape does.

// RequestTotals are one destination and route of the process's outbound
// (client reporter) requests, cumulative since the process started.
type RequestTotals struct {
	// Service is "name.namespace" of the backend's service, "unknown" when
	// the proxy could not route; Route is "namespace/name/rule" or "".
	Service string
	Route   string
	// Requests and Errors (see IsError).
	Requests, Errors uint64
	// Buckets are per-bucket (not cumulative) counts over DurationBuckets,
	// plus a last +Inf bucket.
	Buckets     []uint64
	DurationSum float64
	// StatusClasses counts requests by status class: 0 for no response,
	// 1..5 for 1xx..5xx.
	StatusClasses [6]uint64
}

// TCPTotals are one destination and route of outbound opaque TCP.
type TCPTotals struct {
	Service, Route         string
	Opened, Closed         uint64
	SentBytes, RecvedBytes uint64
}

// Snapshot is what Snapshot read, sorted by service and route.
type Snapshot struct {
	Requests []RequestTotals
	TCP      []TCPTotals
}

// IsError says whether a request counts against a service's success rate:
// a 5xx, a non-OK gRPC status, or no response at all unless the client went
// away first.
func IsError(code int, grpcStatus int32, flags string) bool {
	switch {
	case code >= 500:
		return true
	case grpcStatus > 0:
		return true
	case code == 0:
		return flags != FlagClientClosed
	}
	return false
}

type routeKey struct{ service, route string }

// Snapshot reads the outbound request and TCP totals; empty without
// metrics. It is meant to be called every few seconds, off the request
// path.
func (t *Telemetry) Snapshot() Snapshot {
	if t == nil || t.metrics == nil {
		return Snapshot{}
	}
	m := t.metrics
	type reqEntry struct {
		k requestKey
		s *requestSeries
	}
	type tcpEntry struct {
		k tcpKey
		s *tcpSeries
	}
	m.mu.RLock()
	reqs := make([]reqEntry, 0, len(m.reqs))
	for k, s := range m.reqs {
		if k.reporter == Client {
			reqs = append(reqs, reqEntry{k, s})
		}
	}
	tcps := make([]tcpEntry, 0, len(m.tcps))
	for k, s := range m.tcps {
		if k.reporter == Client {
			tcps = append(tcps, tcpEntry{k, s})
		}
	}
	m.mu.RUnlock()

	var out Snapshot
	byRoute := map[routeKey]int{}
	var pb dto.Metric
	for _, e := range reqs {
		h, ok := e.s.duration.(prometheus.Metric)
		if !ok {
			continue
		}
		pb.Reset()
		if h.Write(&pb) != nil || pb.Histogram == nil {
			continue
		}
		l := e.k.values()
		rk := routeKey{l.service, e.k.d.route}
		i, ok := byRoute[rk]
		if !ok {
			i = len(out.Requests)
			byRoute[rk] = i
			out.Requests = append(out.Requests, RequestTotals{Service: rk.service, Route: rk.route, Buckets: make([]uint64, len(DurationBuckets)+1)})
		}
		rt := &out.Requests[i]
		n := pb.Histogram.GetSampleCount()
		rt.Requests += n
		if IsError(int(e.k.code), e.k.grpcStatus, e.k.flags) {
			rt.Errors += n
		}
		class := int(e.k.code) / 100
		if class < 0 || class > 5 {
			class = 0
		}
		rt.StatusClasses[class] += n
		rt.DurationSum += pb.Histogram.GetSampleSum()
		var below uint64
		for j, b := range pb.Histogram.Bucket {
			if j >= len(DurationBuckets) {
				break
			}
			c := b.GetCumulativeCount()
			rt.Buckets[j] += c - below
			below = c
		}
		rt.Buckets[len(DurationBuckets)] += n - below
	}
	byTCP := map[routeKey]int{}
	for _, e := range tcps {
		l := e.k.values()
		rk := routeKey{l.service, e.k.d.route}
		i, ok := byTCP[rk]
		if !ok {
			i = len(out.TCP)
			byTCP[rk] = i
			out.TCP = append(out.TCP, TCPTotals{Service: rk.service, Route: rk.route})
		}
		tt := &out.TCP[i]
		tt.Opened += counterValue(e.s.opened)
		tt.Closed += counterValue(e.s.closed)
		tt.SentBytes += counterValue(e.s.sent)
		tt.RecvedBytes += counterValue(e.s.received)
	}
	sort.Slice(out.Requests, func(i, j int) bool {
		a, b := out.Requests[i], out.Requests[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		return a.Route < b.Route
	})
	sort.Slice(out.TCP, func(i, j int) bool {
		a, b := out.TCP[i], out.TCP[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		return a.Route < b.Route
	})
	return out
}

func counterValue(c prometheus.Counter) uint64 {
	var pb dto.Metric
	if c.Write(&pb) != nil || pb.Counter == nil {
		return 0
	}
	return uint64(pb.Counter.GetValue())
}
