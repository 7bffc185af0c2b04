package compile

import (
	"fmt"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"weft.dev/weft/internal/resource"
)

// statusFound is the Gateway API's default redirect status (spelled out so
// the compiler need not import net/http).
const statusFound = 302

// filter applies one route rule filter to r. m is the rule's match (nil for
// a rule without matches), needed by ReplacePrefixMatch. A filter that
// cannot be honoured returns why: the Gateway API requires the rule to fail
// rather than run without it.
func (c *compiler) filter(r *HTTPRule, routeNS string, f *gwv1.HTTPRouteFilter, m *HTTPMatch) string {
	missing := func(field string) string { return fmt.Sprintf("filter %s has no %s", f.Type, field) }
	switch f.Type {
	case gwv1.HTTPRouteFilterRequestHeaderModifier:
		if f.RequestHeaderModifier == nil {
			return missing("requestHeaderModifier")
		}
		r.RequestHeaders = mergeHeaders(r.RequestHeaders, f.RequestHeaderModifier)
	case gwv1.HTTPRouteFilterResponseHeaderModifier:
		if f.ResponseHeaderModifier == nil {
			return missing("responseHeaderModifier")
		}
		r.ResponseHeaders = mergeHeaders(r.ResponseHeaders, f.ResponseHeaderModifier)
	case gwv1.HTTPRouteFilterRequestRedirect:
		rd := f.RequestRedirect
		if rd == nil {
			return missing("requestRedirect")
		}
		out := &Redirect{StatusCode: statusFound}
		if rd.Scheme != nil {
			out.Scheme = *rd.Scheme
		}
		if rd.Hostname != nil {
			out.Hostname = string(*rd.Hostname)
		}
		if rd.Port != nil {
			out.Port = *rd.Port
		}
		if rd.StatusCode != nil {
			out.StatusCode = *rd.StatusCode
		}
		if rd.Path != nil {
			pr, problem := pathRewrite(rd.Path, m)
			if problem != "" {
				return problem
			}
			out.Path = pr
		}
		r.Redirect = out
	case gwv1.HTTPRouteFilterURLRewrite:
		rw := f.URLRewrite
		if rw == nil {
			return missing("urlRewrite")
		}
		out := &Rewrite{}
		if rw.Hostname != nil {
			out.Hostname = string(*rw.Hostname)
		}
		if rw.Path != nil {
			pr, problem := pathRewrite(rw.Path, m)
			if problem != "" {
				return problem
			}
			out.Path = pr
		}
		r.Rewrite = out
	case gwv1.HTTPRouteFilterRequestMirror:
		mr := f.RequestMirror
		if mr == nil {
			return missing("requestMirror")
		}
		cluster, problem := c.backendCluster(routeNS, &mr.BackendRef)
		if problem != "" {
			return "mirror " + problem
		}
		r.Mirrors = append(r.Mirrors, &Mirror{Cluster: cluster, Percent: mirrorPercent(mr)})
	case gwv1.HTTPRouteFilterExtensionRef:
		if f.ExtensionRef == nil {
			return missing("extensionRef")
		}
		return c.fault(r, routeNS, f.ExtensionRef)
	default:
		return fmt.Sprintf("filter type %q is not supported", f.Type)
	}
	return ""
}

// backend compiles one backendRef with its own header filters. It returns a
// nil Backend only when the reference names no service port at all; a
// service or port that does not exist still gives a Backend (its cluster
// has no endpoints: 503).
func (c *compiler) backend(routeNS string, br *gwv1.HTTPBackendRef) (*Backend, []string) {
	cluster, problem := c.backendCluster(routeNS, &br.BackendObjectReference)
	if problem != "" {
		return nil, []string{problem}
	}
	b := &Backend{Cluster: cluster, Weight: 1}
	if br.Weight != nil {
		b.Weight = max(*br.Weight, 0)
	}
	var problems []string
	for fi := range br.Filters {
		f := &br.Filters[fi]
		switch {
		case f.Type == gwv1.HTTPRouteFilterRequestHeaderModifier && f.RequestHeaderModifier != nil:
			b.RequestHeaders = mergeHeaders(b.RequestHeaders, f.RequestHeaderModifier)
		case f.Type == gwv1.HTTPRouteFilterResponseHeaderModifier && f.ResponseHeaderModifier != nil:
			b.ResponseHeaders = mergeHeaders(b.ResponseHeaders, f.ResponseHeaderModifier)
		default:
			problems = append(problems, fmt.Sprintf("filters[%d]: filter type %q is not supported on a backend", fi, f.Type))
		}
	}
	return b, problems
}

// backendCluster resolves a reference to a core Service port, in the route's
// namespace unless it names another, and records the cluster. Cross-namespace
// references are allowed: weft has no ReferenceGrant yet.
func (c *compiler) backendCluster(routeNS string, ref *gwv1.BackendObjectReference) (string, string) {
	group, kind := "", "Service" // the Gateway API defaults for a backend
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	if !isServiceRef(group, kind) {
		return "", fmt.Sprintf("backend kind %q (group %q) is not supported, only Service", kind, group)
	}
	if ref.Name == "" {
		return "", "backend has no name"
	}
	if ref.Port == nil || *ref.Port <= 0 {
		return "", fmt.Sprintf("backend Service %q has no port", ref.Name)
	}
	ns := nsOf(routeNS)
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	return c.ref(ns, string(ref.Name), *ref.Port), ""
}

// mergeHeaders adds a header filter to a modifier. Header names are
// lower-cased: they are case-insensitive, and one spelling keeps dumps and
// map keys stable.
func mergeHeaders(h *HeaderModifier, f *gwv1.HTTPHeaderFilter) *HeaderModifier {
	if h == nil {
		h = &HeaderModifier{}
	}
	for _, s := range f.Set {
		if h.Set == nil {
			h.Set = map[string]string{}
		}
		h.Set[strings.ToLower(string(s.Name))] = s.Value
	}
	for _, a := range f.Add {
		if h.Add == nil {
			h.Add = map[string]string{}
		}
		h.Add[strings.ToLower(string(a.Name))] = a.Value
	}
	for _, n := range f.Remove {
		h.Remove = append(h.Remove, strings.ToLower(n))
	}
	return h
}

// pathRewrite converts a path modifier. For ReplacePrefixMatch the data plane
// needs the prefix that matched: the rule is flattened to one match, so it
// is that match's path (or "/" for a rule without matches), carried in
// PrefixMatch, with the replacement in FullPath.
func pathRewrite(pm *gwv1.HTTPPathModifier, m *HTTPMatch) (*PathRewrite, string) {
	switch pm.Type {
	case gwv1.FullPathHTTPPathModifier:
		if pm.ReplaceFullPath == nil {
			return nil, "path modifier ReplaceFullPath has no replaceFullPath"
		}
		return &PathRewrite{FullPath: *pm.ReplaceFullPath}, ""
	case gwv1.PrefixMatchHTTPPathModifier:
		if pm.ReplacePrefixMatch == nil {
			return nil, "path modifier ReplacePrefixMatch has no replacePrefixMatch"
		}
		prefix := "/"
		if m != nil {
			if m.PathType != PathPrefix {
				return nil, fmt.Sprintf("ReplacePrefixMatch needs a PathPrefix match, not %s", m.PathType)
			}
			prefix = m.Path
		}
		return &PathRewrite{FullPath: *pm.ReplacePrefixMatch, PrefixMatch: prefix, ReplacePrefix: true}, ""
	default:
		return nil, fmt.Sprintf("path modifier type %q is not supported", pm.Type)
	}
}

// mirrorPercent reads percent, else fraction (denominator default 100), else
// 100.
func mirrorPercent(mr *gwv1.HTTPRequestMirrorFilter) float64 {
	p := 100.0
	switch {
	case mr.Percent != nil:
		p = float64(*mr.Percent)
	case mr.Fraction != nil:
		den := int32(100)
		if mr.Fraction.Denominator != nil && *mr.Fraction.Denominator > 0 {
			den = *mr.Fraction.Denominator
		}
		p = 100 * float64(mr.Fraction.Numerator) / float64(den)
	}
	return clampPercent(p)
}

func clampPercent(p float64) float64 { return min(max(p, 0), 100) }

// fault resolves an ExtensionRef filter to a FaultInjection in the route's
// namespace and adds it to the rule. A second FaultInjection on one rule
// overrides the delay or abort it sets.
func (c *compiler) fault(r *HTTPRule, routeNS string, ref *gwv1.LocalObjectReference) string {
	if string(ref.Group) != resource.Group || string(ref.Kind) != resource.KindFaultInjection {
		return fmt.Sprintf("extensionRef %s %q (group %q) is not supported, only %s.%s",
			ref.Kind, ref.Name, ref.Group, resource.KindFaultInjection, resource.Group)
	}
	fi := c.faults[c.key(routeNS, string(ref.Name))]
	if fi == nil {
		return fmt.Sprintf("FaultInjection %s/%s not found", nsOf(routeNS), ref.Name)
	}
	if r.Fault == nil {
		r.Fault = &Fault{}
	}
	f := r.Fault
	if d := fi.Spec.Delay; d != nil {
		f.Delay = Duration(max(d.FixedDelay.Duration, 0))
		f.DelayPercent = clampPercent(d.Percent)
	}
	if a := fi.Spec.Abort; a != nil {
		f.AbortPercent = clampPercent(a.Percent)
		// 0 (a gRPC-only abort) is left for the data plane, which answers
		// plain HTTP requests 503.
		f.AbortStatus = int(a.HTTPStatus)
		f.AbortGRPCStatus = nil
		if a.GRPCStatus != nil {
			s := int(*a.GRPCStatus)
			f.AbortGRPCStatus = &s
		}
	}
	return ""
}
