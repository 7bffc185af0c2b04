package resource

import (
	"regexp"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The Gateway API's own patterns for exact gRPC service and method names.
var (
	grpcServiceRE = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	grpcMethodRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
)

func validateGRPCRoute(v *validator, r *gwv1.GRPCRoute) {
	validateParentRefs(v, r.Spec.ParentRefs)
	validateHostnames(v, r.Spec.Hostnames)
	names := map[string]int{}
	for i, rule := range r.Spec.Rules {
		f := idx("spec.rules", i)
		validateRuleName(v, f, rule.Name, names, i)
		for j, m := range rule.Matches {
			validateGRPCMatch(v, idx(f+".matches", j), m)
		}
		validateFilters(v, f+".filters", grpcFilterTypes, grpcFilters(rule.Filters), nil)
		for j, b := range rule.BackendRefs {
			bf := idx(f+".backendRefs", j)
			validateBackendRef(v, bf, b.BackendRef)
			validateFilters(v, bf+".filters", grpcFilterTypes, grpcFilters(b.Filters), nil)
		}
		if rule.SessionPersistence != nil {
			v.add(f+".sessionPersistence", "not supported by weft: use a TrafficPolicy with loadBalancer.type RingHash for affinity")
		}
	}
}

// grpcFilters views gRPC filters as HTTP ones: the fields they share have the
// same types, so one validator serves both.
func grpcFilters(in []gwv1.GRPCRouteFilter) []gwv1.HTTPRouteFilter {
	out := make([]gwv1.HTTPRouteFilter, len(in))
	for i, g := range in {
		out[i] = gwv1.HTTPRouteFilter{
			Type:                   gwv1.HTTPRouteFilterType(g.Type),
			RequestHeaderModifier:  g.RequestHeaderModifier,
			ResponseHeaderModifier: g.ResponseHeaderModifier,
			RequestMirror:          g.RequestMirror,
			ExtensionRef:           g.ExtensionRef,
		}
	}
	return out
}

func validateGRPCMatch(v *validator, f string, m gwv1.GRPCRouteMatch) {
	if mm := m.Method; mm != nil {
		typ := gwv1.GRPCMethodMatchExact
		if mm.Type != nil {
			typ = *mm.Type
		}
		svc, method := deref(mm.Service), deref(mm.Method)
		switch typ {
		case gwv1.GRPCMethodMatchExact:
			if svc == "" && method == "" {
				v.add(f+".method", "set service, method or both")
			}
			if svc != "" && !grpcServiceRE.MatchString(svc) {
				v.addf(f+".method.service", "invalid gRPC service %q: must be a dotted name such as \"helloworld.Greeter\"", svc)
			}
			if method != "" && !grpcMethodRE.MatchString(method) {
				v.addf(f+".method.method", "invalid gRPC method %q: must be a name such as \"SayHello\"", method)
			}
		case gwv1.GRPCMethodMatchRegularExpression:
			if svc == "" && method == "" {
				v.add(f+".method", "set service, method or both")
			}
			if mm.Service != nil {
				v.regex(f+".method.service", svc)
			}
			if mm.Method != nil {
				v.regex(f+".method.method", method)
			}
		default:
			v.oneOf(f+".method.type", string(typ), string(gwv1.GRPCMethodMatchExact), string(gwv1.GRPCMethodMatchRegularExpression))
		}
	}
	seen := map[string]int{}
	for i, h := range m.Headers {
		hf := idx(f+".headers", i)
		v.headerName(hf+".name", string(h.Name))
		key := strings.ToLower(string(h.Name))
		if prev, dup := seen[key]; dup && key != "" {
			v.addf(hf+".name", "duplicate header %q (also %s.headers[%d]); header names are case-insensitive", h.Name, f, prev)
		} else {
			seen[key] = i
		}
		validateMatchValue(v, hf, (*string)(h.Type), h.Value)
	}
}
