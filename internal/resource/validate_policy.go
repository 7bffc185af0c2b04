package resource

import (
	"fmt"
	"math"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() {
	kindValidators[KindTrafficPolicy] = func(v *validator, o any) { validateTrafficPolicy(v, o.(*TrafficPolicy)) }
	kindValidators[KindFaultInjection] = func(v *validator, o any) { validateFaultInjection(v, o.(*FaultInjection)) }
}

var (
	lbTypes = []string{LBRoundRobin, LBLeastRequest, LBRingHash, LBRandom}
	retryOn = []string{"5xx", "gateway-error", "reset", "connect-failure", "retriable-status-codes"}
)

// maxRetryAttempts bounds retries: beyond a few, retries only amplify an
// outage, and the retry budget is the better tool.
const maxRetryAttempts = 10

func validateTrafficPolicy(v *validator, p *TrafficPolicy) {
	s := p.Spec
	validateTargetRef(v, "spec.targetRef", s.TargetRef)
	if lb := s.LoadBalancer; lb != nil {
		validateLoadBalancer(v, "spec.loadBalancer", lb)
	}
	if cp := s.ConnectionPool; cp != nil {
		v.nonNegative("spec.connectionPool.maxConnections", int64(cp.MaxConnections))
		v.nonNegative("spec.connectionPool.maxPendingRequests", int64(cp.MaxPendingRequests))
		v.nonNegative("spec.connectionPool.maxRequests", int64(cp.MaxRequests))
	}
	v.positive("spec.timeout", s.Timeout)
	if r := s.Retry; r != nil {
		validateRetry(v, "spec.retry", r, s.Timeout)
	}
	if o := s.OutlierDetection; o != nil {
		f := "spec.outlierDetection"
		v.nonNegative(f+".consecutive5xx", int64(o.Consecutive5xx))
		v.nonNegative(f+".consecutiveGatewayErrors", int64(o.ConsecutiveGatewayErrors))
		v.nonNegative(f+".consecutiveConnectErrors", int64(o.ConsecutiveConnectErrors))
		v.positive(f+".interval", o.Interval)
		v.positive(f+".baseEjectionTime", o.BaseEjectionTime)
		v.positive(f+".maxEjectionTime", o.MaxEjectionTime)
		v.ordered(f+".baseEjectionTime", o.BaseEjectionTime, f+".maxEjectionTime", o.MaxEjectionTime)
		if o.MaxEjectionPercent != nil {
			v.inRange(f+".maxEjectionPercent", int64(*o.MaxEjectionPercent), 0, 100)
		}
	}
	if h := s.HealthCheck; h != nil {
		f := "spec.healthCheck"
		if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
			v.addf(f+".path", "must start with \"/\", got %q", h.Path)
		}
		v.positive(f+".interval", h.Interval)
		v.positive(f+".timeout", h.Timeout)
		// Zero means "use the default"; a negative count can never be reached.
		if h.HealthyThreshold < 0 {
			v.addf(f+".healthyThreshold", "must be at least 1, got %d", h.HealthyThreshold)
		}
		if h.UnhealthyThreshold < 0 {
			v.addf(f+".unhealthyThreshold", "must be at least 1, got %d", h.UnhealthyThreshold)
		}
		for i, c := range h.ExpectedStatuses {
			v.inRange(idx(f+".expectedStatuses", i), int64(c), 100, 599)
		}
	}
	if z := s.ZoneAware; z != nil {
		v.inRange("spec.zoneAware.minHealthyPercent", int64(z.MinHealthyPercent), 0, 100)
	}
}

// validateTargetRef checks a policy's attachment: Services only, for now.
func validateTargetRef(v *validator, f string, t PolicyTargetRef) {
	if t.Group != "" && t.Group != "core" {
		v.addf(f+".group", "must be \"\" (the core group) for kind Service, got %q", t.Group)
	}
	switch t.Kind {
	case "":
		v.add(f+".kind", "required: Service")
	case KindService:
	default:
		v.addf(f+".kind", "unsupported target kind %q: policies attach to a Service", t.Kind)
	}
	v.dnsLabel(f+".name", t.Name)
}

func validateLoadBalancer(v *validator, f string, lb *LoadBalancer) {
	if lb.Type != "" {
		v.oneOf(f+".type", lb.Type, lbTypes...)
	}
	h := lb.HashOn
	if lb.Type != LBRingHash {
		if h != nil {
			v.addf(f+".hashOn", "only used with type RingHash (type is %q)", lb.Type)
		}
		return
	}
	if h == nil {
		v.add(f+".hashOn", "required with type RingHash: set one of header, cookie, sourceIP")
		return
	}
	n := 0
	for _, set := range []bool{h.Header != "", h.Cookie != "", h.SourceIP} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.addf(f+".hashOn", "set exactly one of header, cookie, sourceIP (%d are set)", n)
	}
	if h.Header != "" {
		v.headerName(f+".hashOn.header", h.Header)
	}
	if h.Cookie != "" && !isToken(h.Cookie) {
		v.addf(f+".hashOn.cookie", "invalid cookie name %q: must contain only letters, digits and !#$%%&'*+-.^_`|~", h.Cookie)
	}
}

func validateRetry(v *validator, f string, r *Retry, timeout *metav1.Duration) {
	v.inRange(f+".attempts", int64(r.Attempts), 0, maxRetryAttempts)
	v.positive(f+".perTryTimeout", r.PerTryTimeout)
	if r.PerTryTimeout != nil && timeout != nil && timeout.Duration > 0 && r.PerTryTimeout.Duration > timeout.Duration {
		v.addf(f+".perTryTimeout", "%s is longer than spec.timeout %s: a try cannot outlast the request", r.PerTryTimeout.Duration, timeout.Duration)
	}
	codesOn := false
	seen := map[string]int{}
	for i, on := range r.RetryOn {
		rf := idx(f+".retryOn", i)
		if !v.oneOf(rf, on, retryOn...) {
			continue
		}
		if prev, dup := seen[on]; dup {
			v.addf(rf, "duplicate %q (also %s.retryOn[%d])", on, f, prev)
		}
		seen[on] = i
		codesOn = codesOn || on == "retriable-status-codes"
	}
	// The codes and the condition that enables them only make sense together.
	switch {
	case codesOn && len(r.RetriableStatusCodes) == 0:
		v.add(f+".retriableStatusCodes", "required when retryOn contains retriable-status-codes")
	case !codesOn && len(r.RetriableStatusCodes) > 0:
		v.add(f+".retriableStatusCodes", "only used when retryOn contains retriable-status-codes; add it to retryOn")
	}
	for i, c := range r.RetriableStatusCodes {
		v.inRange(idx(f+".retriableStatusCodes", i), int64(c), 100, 599)
	}
	if b := r.Backoff; b != nil {
		v.positive(f+".backoff.baseInterval", b.BaseInterval)
		v.positive(f+".backoff.maxInterval", b.MaxInterval)
		v.ordered(f+".backoff.baseInterval", b.BaseInterval, f+".backoff.maxInterval", b.MaxInterval)
	}
	if b := r.Budget; b != nil {
		v.inRange(f+".budget.percent", int64(b.Percent), 0, 100)
		v.nonNegative(f+".budget.minRetryConcurrency", int64(b.MinRetryConcurrency))
	}
	v.nonNegative(f+".maxBufferedBody", r.MaxBufferedBody)
}

func validateFaultInjection(v *validator, fi *FaultInjection) {
	s := fi.Spec
	if s.Delay == nil && s.Abort == nil {
		v.add("spec", "set delay, abort or both: a FaultInjection without either does nothing")
	}
	if d := s.Delay; d != nil {
		if d.FixedDelay.Duration <= 0 {
			v.addf("spec.delay.fixedDelay", "must be greater than 0, got %s", d.FixedDelay.Duration)
		}
		v.percentFloat("spec.delay.percent", d.Percent)
	}
	if a := s.Abort; a != nil {
		switch {
		case a.HTTPStatus != 0 && a.GRPCStatus != nil:
			v.add("spec.abort", "set httpStatus or grpcStatus, not both")
		case a.HTTPStatus == 0 && a.GRPCStatus == nil:
			v.add("spec.abort", "set httpStatus (for HTTP) or grpcStatus (for gRPC)")
		}
		if a.HTTPStatus != 0 {
			v.inRange("spec.abort.httpStatus", int64(a.HTTPStatus), 200, 599)
		}
		if a.GRPCStatus != nil {
			v.inRange("spec.abort.grpcStatus", int64(*a.GRPCStatus), 0, 16)
		}
		v.percentFloat("spec.abort.percent", a.Percent)
	}
}

// positive checks an optional duration: unset is fine, zero or negative is
// never what a user means.
func (v *validator) positive(field string, d *metav1.Duration) {
	if d != nil && d.Duration <= 0 {
		v.addf(field, "must be greater than 0, got %s", d.Duration)
	}
}

// ordered checks lo <= hi when both are set.
func (v *validator) ordered(loField string, lo *metav1.Duration, hiField string, hi *metav1.Duration) {
	if lo != nil && hi != nil && lo.Duration > hi.Duration {
		v.addf(loField, "%s is greater than %s %s", lo.Duration, hiField, hi.Duration)
	}
}

func (v *validator) percentFloat(field string, p float64) {
	if math.IsNaN(p) || p < 0 || p > 100 {
		v.addf(field, "must be between 0 and 100, got %s", fmt.Sprint(p))
	}
}
