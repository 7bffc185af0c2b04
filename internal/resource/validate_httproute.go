package resource

import (
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

func validateHTTPRoute(v *validator, r *gwv1.HTTPRoute) {
	validateParentRefs(v, r.Spec.ParentRefs)
	validateHostnames(v, r.Spec.Hostnames)
	validateEdgeRoute(v, r)
	names := map[string]int{}
	for i, rule := range r.Spec.Rules {
		f := idx("spec.rules", i)
		validateRuleName(v, f, rule.Name, names, i)
		for j, m := range rule.Matches {
			validateHTTPMatch(v, idx(f+".matches", j), m)
		}
		validateFilters(v, f+".filters", httpFilterTypes, rule.Filters, rule.Matches)
		for j, b := range rule.BackendRefs {
			bf := idx(f+".backendRefs", j)
			validateBackendRef(v, bf, b.BackendRef)
			validateFilters(v, bf+".filters", httpFilterTypes, b.Filters, rule.Matches)
		}
		// A redirect answers the request itself; backends would never be used.
		if len(rule.BackendRefs) > 0 {
			for j, flt := range rule.Filters {
				if flt.Type == gwv1.HTTPRouteFilterRequestRedirect {
					v.addf(idx(f+".filters", j), "a RequestRedirect filter cannot be used together with backendRefs (%s.backendRefs)", f)
				}
			}
		}
		if t := rule.Timeouts; t != nil {
			req, okReq := gatewayDuration(v, f+".timeouts.request", t.Request)
			be, okBe := gatewayDuration(v, f+".timeouts.backendRequest", t.BackendRequest)
			// "0s" means no request timeout, so any backend timeout fits.
			if okReq && okBe && req != 0 && be > req {
				v.addf(f+".timeouts.backendRequest", "%s is longer than timeouts.request %s: each backend try must fit within the whole request", *t.BackendRequest, *t.Request)
			}
		}
		if rt := rule.Retry; rt != nil {
			for k, c := range rt.Codes {
				v.inRange(idx(f+".retry.codes", k), int64(c), 400, 599)
			}
			if rt.Attempts != nil {
				v.nonNegative(f+".retry.attempts", int64(*rt.Attempts))
			}
			gatewayDuration(v, f+".retry.backoff", rt.Backoff)
		}
		if rule.SessionPersistence != nil {
			v.add(f+".sessionPersistence", "not supported by weft: use a TrafficPolicy with loadBalancer.type RingHash for affinity")
		}
	}
}

func validateHTTPMatch(v *validator, f string, m gwv1.HTTPRouteMatch) {
	if p := m.Path; p != nil {
		// Gateway API defaults: type PathPrefix, value "/".
		typ, val := gwv1.PathMatchPathPrefix, "/"
		if p.Type != nil {
			typ = *p.Type
		}
		if p.Value != nil {
			val = *p.Value
		}
		switch typ {
		case gwv1.PathMatchExact, gwv1.PathMatchPathPrefix:
			if !strings.HasPrefix(val, "/") {
				v.addf(f+".path.value", "must start with \"/\" for a %s match, got %q", typ, val)
			} else if strings.ContainsAny(val, "?#") {
				v.addf(f+".path.value", "must not contain '?' or '#' (query and fragment are not part of the path), got %q", val)
			}
		case gwv1.PathMatchRegularExpression:
			v.regex(f+".path.value", val)
		default:
			v.oneOf(f+".path.type", string(typ), string(gwv1.PathMatchExact), string(gwv1.PathMatchPathPrefix), string(gwv1.PathMatchRegularExpression))
		}
	}
	seen := map[string]int{}
	for i, h := range m.Headers {
		hf := idx(f+".headers", i)
		v.headerName(hf+".name", string(h.Name))
		// Header names are case-insensitive, so "X-A" and "x-a" collide.
		key := strings.ToLower(string(h.Name))
		if prev, dup := seen[key]; dup && key != "" {
			v.addf(hf+".name", "duplicate header %q (also %s.headers[%d]); header names are case-insensitive", h.Name, f, prev)
		} else {
			seen[key] = i
		}
		validateMatchValue(v, hf, (*string)(h.Type), h.Value)
	}
	seenQ := map[string]int{}
	for i, q := range m.QueryParams {
		qf := idx(f+".queryParams", i)
		v.headerName(qf+".name", string(q.Name))
		if prev, dup := seenQ[string(q.Name)]; dup && q.Name != "" {
			v.addf(qf+".name", "duplicate query parameter %q (also %s.queryParams[%d])", q.Name, f, prev)
		} else {
			seenQ[string(q.Name)] = i
		}
		validateMatchValue(v, qf, (*string)(q.Type), q.Value)
	}
	if m.Method != nil {
		v.oneOf(f+".method", string(*m.Method), httpMethods...)
	}
}

// validateMatchValue checks a header or query match: Exact (the default) or
// RegularExpression, whose pattern must compile.
func validateMatchValue(v *validator, f string, typ *string, value string) {
	if typ == nil {
		return
	}
	switch *typ {
	case "Exact":
	case "RegularExpression":
		v.regex(f+".value", value)
	default:
		v.oneOf(f+".type", *typ, "Exact", "RegularExpression")
	}
}
