package compile

import (
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"weft.dev/weft/internal/resource"
)

// Defaults of a TrafficPolicy, applied when a section is present but a field
// in it is not.
const (
	defaultBackoffBase          = 25 * time.Millisecond
	defaultBackoffMaxFactor     = 10 // × the base
	defaultBudgetPercent        = 20
	defaultBudgetMinConcurrency = 3
	defaultMaxBufferedBody      = 64 << 10

	defaultOutlierInterval    = 10 * time.Second
	defaultBaseEjectionTime   = 30 * time.Second
	defaultMaxEjectionTime    = 300 * time.Second
	defaultMaxEjectionPercent = 10
	defaultHealthInterval     = 10 * time.Second
	defaultHealthTimeout      = 1 * time.Second
	defaultHealthyThreshold   = 1
	defaultUnhealthyThreshold = 3
	defaultZoneMinHealthy     = 70
)

// defaultRetryOn are the conditions retried when a policy asks for retries
// without naming any: failures where the request surely did not reach the
// application, or the gateway said the upstream is away.
var defaultRetryOn = []string{RetryOnConnectFailure, RetryOnReset, RetryOnGatewayError}

// indexPolicies maps "namespace/name" of a Service to the TrafficPolicy that
// governs it. A policy targets a Service in its own namespace.
//
// If two TrafficPolicies target the same Service, the older one wins
// (creationTimestamp, then name), as the Gateway API settles conflicting
// policies: the one in force does not change when a newer one is added, and
// the newer is the one to report as conflicting.
func indexPolicies(ps []*resource.TrafficPolicy) map[string]*resource.TrafficPolicy {
	out := map[string]*resource.TrafficPolicy{}
	for _, p := range ps {
		if p == nil || !isServiceRef(p.Spec.TargetRef.Group, p.Spec.TargetRef.Kind) || p.Spec.TargetRef.Name == "" {
			continue
		}
		k := nsOf(p.Namespace) + "/" + p.Spec.TargetRef.Name
		if cur := out[k]; cur == nil || olderThan(p.CreationTimestamp.Time, cur.CreationTimestamp.Time, p.Name, cur.Name) {
			out[k] = p
		}
	}
	return out
}

// isServiceRef reports whether group and kind name a core v1 Service in a
// policy's targetRef.
func isServiceRef(group, kind string) bool {
	return kind == "Service" && (group == "" || group == "core")
}

// httpPolicy is the caller side of a policy: retries and the overall
// timeout, which belong to the port's HTTPRouting.
func httpPolicy(p *resource.TrafficPolicy) (*Retry, Duration) {
	if p == nil {
		return nil, 0
	}
	return retry(p.Spec.Retry), dur(p.Spec.Timeout)
}

func retry(r *resource.Retry) *Retry {
	if r == nil {
		return nil
	}
	out := &Retry{
		Attempts:             int(max(r.Attempts, 0)),
		PerTryTimeout:        dur(r.PerTryTimeout),
		RetryOn:              append([]string(nil), r.RetryOn...),
		BackoffBase:          Duration(defaultBackoffBase),
		BudgetPercent:        defaultBudgetPercent,
		BudgetMinConcurrency: defaultBudgetMinConcurrency,
		MaxBufferedBody:      defaultMaxBufferedBody,
	}
	if len(out.RetryOn) == 0 {
		out.RetryOn = append([]string(nil), defaultRetryOn...)
	}
	for _, code := range r.RetriableStatusCodes {
		out.RetriableStatusCodes = append(out.RetriableStatusCodes, int(code))
	}
	if b := r.Backoff; b != nil {
		if d := dur(b.BaseInterval); d > 0 {
			out.BackoffBase = d
		}
		out.BackoffMax = dur(b.MaxInterval)
	}
	if out.BackoffMax <= 0 {
		out.BackoffMax = out.BackoffBase * defaultBackoffMaxFactor
	}
	if b := r.Budget; b != nil {
		if b.Percent > 0 {
			out.BudgetPercent = int(b.Percent)
		}
		if b.MinRetryConcurrency > 0 {
			out.BudgetMinConcurrency = int(b.MinRetryConcurrency)
		}
	}
	if r.MaxBufferedBody > 0 {
		out.MaxBufferedBody = r.MaxBufferedBody
	}
	return out
}

// applyClusterPolicy sets the upstream side of a policy on a cluster: how
// its endpoints are balanced, limited, ejected and checked.
func applyClusterPolicy(cl *Cluster, p *resource.TrafficPolicy) {
	if p == nil {
		return
	}
	s := &p.Spec
	if lb := s.LoadBalancer; lb != nil {
		cl.LoadBalancer = loadBalancer(lb)
	}
	if cp := s.ConnectionPool; cp != nil {
		cl.Limits = Limits{
			MaxConnections:     int(max(cp.MaxConnections, 0)),
			MaxPendingRequests: int(max(cp.MaxPendingRequests, 0)),
			MaxRequests:        int(max(cp.MaxRequests, 0)),
		}
	}
	if o := s.OutlierDetection; o != nil {
		out := &Outlier{
			Consecutive5xx:           int(max(o.Consecutive5xx, 0)),
			ConsecutiveGatewayErrors: int(max(o.ConsecutiveGatewayErrors, 0)),
			ConsecutiveConnectErrors: int(max(o.ConsecutiveConnectErrors, 0)),
			Interval:                 durOr(o.Interval, defaultOutlierInterval),
			BaseEjectionTime:         durOr(o.BaseEjectionTime, defaultBaseEjectionTime),
			MaxEjectionTime:          durOr(o.MaxEjectionTime, defaultMaxEjectionTime),
			MaxEjectionPercent:       defaultMaxEjectionPercent,
		}
		// Explicit 0 is kept: the data plane still lets one endpoint be
		// ejected, and that floor is its job, not the compiler's.
		if o.MaxEjectionPercent != nil {
			out.MaxEjectionPercent = int(min(max(*o.MaxEjectionPercent, 0), 100))
		}
		cl.Outlier = out
	}
	if h := s.HealthCheck; h != nil {
		out := &HealthCheck{
			Path:               h.Path,
			Interval:           durOr(h.Interval, defaultHealthInterval),
			Timeout:            durOr(h.Timeout, defaultHealthTimeout),
			HealthyThreshold:   defaultHealthyThreshold,
			UnhealthyThreshold: defaultUnhealthyThreshold,
		}
		if h.HealthyThreshold > 0 {
			out.HealthyThreshold = int(h.HealthyThreshold)
		}
		if h.UnhealthyThreshold > 0 {
			out.UnhealthyThreshold = int(h.UnhealthyThreshold)
		}
		for _, st := range h.ExpectedStatuses {
			out.ExpectedStatuses = append(out.ExpectedStatuses, int(st))
		}
		cl.HealthCheck = out
	}
	if z := s.ZoneAware; z != nil && z.Enabled {
		out := &ZoneAware{MinHealthyPercent: defaultZoneMinHealthy}
		if z.MinHealthyPercent > 0 {
			out.MinHealthyPercent = int(min(z.MinHealthyPercent, 100))
		}
		cl.ZoneAware = out
	}
}

func loadBalancer(lb *resource.LoadBalancer) LoadBalancer {
	switch lb.Type {
	case resource.LBLeastRequest, resource.LBRandom:
		return LoadBalancer{Type: lb.Type}
	case resource.LBRingHash:
		out := LoadBalancer{Type: lb.Type}
		if h := lb.HashOn; h != nil {
			switch {
			case h.Header != "":
				out.HashHeader = strings.ToLower(h.Header)
			case h.Cookie != "":
				out.HashCookie = h.Cookie // cookie names are case-sensitive
			case h.SourceIP:
				out.HashSource = true
			}
		}
		if out.HashHeader == "" && out.HashCookie == "" {
			// A ring needs a key; the client's address is the one always
			// there.
			out.HashSource = true
		}
		return out
	default:
		return LoadBalancer{Type: resource.LBRoundRobin}
	}
}

func dur(d *metav1.Duration) Duration {
	if d == nil || d.Duration < 0 {
		return 0
	}
	return Duration(d.Duration)
}

func durOr(d *metav1.Duration, def time.Duration) Duration {
	if v := dur(d); v > 0 {
		return v
	}
	return Duration(def)
}
