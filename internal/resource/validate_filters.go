package resource

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// filterField names, per filter type, the field that must carry the filter's
// configuration (and the only one that may be set).
var filterField = map[gwv1.HTTPRouteFilterType]string{
	gwv1.HTTPRouteFilterRequestHeaderModifier:  "requestHeaderModifier",
	gwv1.HTTPRouteFilterResponseHeaderModifier: "responseHeaderModifier",
	gwv1.HTTPRouteFilterRequestRedirect:        "requestRedirect",
	gwv1.HTTPRouteFilterURLRewrite:             "urlRewrite",
	gwv1.HTTPRouteFilterRequestMirror:          "requestMirror",
	gwv1.HTTPRouteFilterCORS:                   "cors",
	gwv1.HTTPRouteFilterExternalAuth:           "externalAuth",
	gwv1.HTTPRouteFilterExtensionRef:           "extensionRef",
}

// The filter types weft implements. ExternalAuth is valid Gateway API but
// weft has no implementation; accepting it would silently drop it. CORS is
// applied by the gateway, so only edge routes may use it (validateEdgeRoute).
var (
	httpFilterTypes = []gwv1.HTTPRouteFilterType{
		gwv1.HTTPRouteFilterRequestHeaderModifier, gwv1.HTTPRouteFilterResponseHeaderModifier,
		gwv1.HTTPRouteFilterRequestRedirect, gwv1.HTTPRouteFilterURLRewrite,
		gwv1.HTTPRouteFilterRequestMirror, gwv1.HTTPRouteFilterExtensionRef,
		gwv1.HTTPRouteFilterCORS,
	}
	grpcFilterTypes = []gwv1.HTTPRouteFilterType{
		gwv1.HTTPRouteFilterRequestHeaderModifier, gwv1.HTTPRouteFilterResponseHeaderModifier,
		gwv1.HTTPRouteFilterRequestMirror, gwv1.HTTPRouteFilterExtensionRef,
	}
)

// setFields lists the configuration fields a filter has set, in the order of
// the API type.
func setFields(flt gwv1.HTTPRouteFilter) []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, name)
		}
	}
	add(flt.RequestHeaderModifier != nil, "requestHeaderModifier")
	add(flt.ResponseHeaderModifier != nil, "responseHeaderModifier")
	add(flt.RequestRedirect != nil, "requestRedirect")
	add(flt.URLRewrite != nil, "urlRewrite")
	add(flt.RequestMirror != nil, "requestMirror")
	add(flt.CORS != nil, "cors")
	add(flt.ExternalAuth != nil, "externalAuth")
	add(flt.ExtensionRef != nil, "extensionRef")
	return out
}

// validateFilters checks a rule's (or a backendRef's) filters. matches are the
// rule's, needed because ReplacePrefixMatch depends on them.
func validateFilters(v *validator, f string, allowed []gwv1.HTTPRouteFilterType, filters []gwv1.HTTPRouteFilter, matches []gwv1.HTTPRouteMatch) {
	count := map[gwv1.HTTPRouteFilterType]int{}
	for i, flt := range filters {
		ff := idx(f, i)
		want, known := filterField[flt.Type]
		if !supported(allowed, flt.Type) {
			names := make([]string, len(allowed))
			for k, a := range allowed {
				names[k] = string(a)
			}
			what := "unknown"
			if known {
				what = "unsupported"
			}
			v.addf(ff+".type", "%s filter type %q: must be one of %s", what, flt.Type, strings.Join(names, ", "))
			continue
		}
		for _, name := range setFields(flt) {
			if name != want {
				v.addf(ff+"."+name, "must not be set when type is %s (it is the configuration of a different filter type)", flt.Type)
			}
		}
		count[flt.Type]++
		// Gateway API allows only mirrors and extensions to repeat; two
		// header modifiers or redirects would conflict.
		if count[flt.Type] == 2 && flt.Type != gwv1.HTTPRouteFilterRequestMirror && flt.Type != gwv1.HTTPRouteFilterExtensionRef {
			v.addf(ff+".type", "filter type %s may appear only once in a filter list", flt.Type)
		}
		missing := func() { v.addf(ff+"."+want, "required when type is %s", flt.Type) }
		switch flt.Type {
		case gwv1.HTTPRouteFilterRequestHeaderModifier:
			if flt.RequestHeaderModifier == nil {
				missing()
			} else {
				validateHeaderFilter(v, ff+"."+want, flt.RequestHeaderModifier)
			}
		case gwv1.HTTPRouteFilterResponseHeaderModifier:
			if flt.ResponseHeaderModifier == nil {
				missing()
			} else {
				validateHeaderFilter(v, ff+"."+want, flt.ResponseHeaderModifier)
			}
		case gwv1.HTTPRouteFilterRequestRedirect:
			if flt.RequestRedirect == nil {
				missing()
			} else {
				validateRedirect(v, ff+"."+want, flt.RequestRedirect, matches)
			}
		case gwv1.HTTPRouteFilterURLRewrite:
			if flt.URLRewrite == nil {
				missing()
			} else {
				validatePreciseHostname(v, ff+"."+want+".hostname", flt.URLRewrite.Hostname)
				validatePathModifier(v, ff+"."+want+".path", flt.URLRewrite.Path, matches)
			}
		case gwv1.HTTPRouteFilterRequestMirror:
			if flt.RequestMirror == nil {
				missing()
			} else {
				validateMirror(v, ff+"."+want, flt.RequestMirror)
			}
		case gwv1.HTTPRouteFilterExtensionRef:
			if flt.ExtensionRef == nil {
				missing()
			} else {
				validateExtensionRef(v, ff+"."+want, flt.ExtensionRef)
			}
		}
	}
	if count[gwv1.HTTPRouteFilterRequestRedirect] > 0 && count[gwv1.HTTPRouteFilterURLRewrite] > 0 {
		v.add(f, "RequestRedirect and URLRewrite cannot be combined: a redirect answers the request, a rewrite forwards it")
	}
}

func supported(allowed []gwv1.HTTPRouteFilterType, t gwv1.HTTPRouteFilterType) bool {
	for _, a := range allowed {
		if a == t {
			return true
		}
	}
	return false
}

func validateHeaderFilter(v *validator, f string, h *gwv1.HTTPHeaderFilter) {
	for _, list := range []struct {
		name    string
		headers []gwv1.HTTPHeader
	}{{"set", h.Set}, {"add", h.Add}} {
		seen := map[string]int{}
		for i, hd := range list.headers {
			hf := idx(f+"."+list.name, i)
			v.headerName(hf+".name", string(hd.Name))
			key := strings.ToLower(string(hd.Name))
			if prev, dup := seen[key]; dup && key != "" {
				v.addf(hf+".name", "duplicate header %q (also %s.%s[%d]); header names are case-insensitive", hd.Name, f, list.name, prev)
			} else {
				seen[key] = i
			}
		}
	}
	for i, name := range h.Remove {
		v.headerName(idx(f+".remove", i), name)
	}
}

var redirectCodes = map[int]bool{301: true, 302: true, 303: true, 307: true, 308: true}

func validateRedirect(v *validator, f string, r *gwv1.HTTPRequestRedirectFilter, matches []gwv1.HTTPRouteMatch) {
	if r.Scheme != nil {
		v.oneOf(f+".scheme", *r.Scheme, "http", "https")
	}
	validatePreciseHostname(v, f+".hostname", r.Hostname)
	validatePathModifier(v, f+".path", r.Path, matches)
	if r.Port != nil {
		v.portNumber(f+".port", *r.Port)
	}
	if r.StatusCode != nil && !redirectCodes[*r.StatusCode] {
		v.addf(f+".statusCode", "must be one of 301, 302, 303, 307, 308, got %d", *r.StatusCode)
	}
}

func validatePreciseHostname(v *validator, f string, h *gwv1.PreciseHostname) {
	if h == nil {
		return
	}
	if msgs := validation.IsDNS1123Subdomain(string(*h)); len(msgs) > 0 {
		v.addf(f, "invalid hostname %q: %s", *h, k8sReason(msgs))
	}
}

func validatePathModifier(v *validator, f string, p *gwv1.HTTPPathModifier, matches []gwv1.HTTPRouteMatch) {
	if p == nil {
		return
	}
	slash := func(field string, s *string) {
		if s != nil && !strings.HasPrefix(*s, "/") {
			v.addf(field, "must start with \"/\", got %q", *s)
		}
	}
	switch p.Type {
	case gwv1.FullPathHTTPPathModifier:
		if p.ReplaceFullPath == nil {
			v.add(f+".replaceFullPath", "required when type is ReplaceFullPath")
		}
		slash(f+".replaceFullPath", p.ReplaceFullPath)
		if p.ReplacePrefixMatch != nil {
			v.add(f+".replacePrefixMatch", "must not be set when type is ReplaceFullPath")
		}
	case gwv1.PrefixMatchHTTPPathModifier:
		if p.ReplacePrefixMatch == nil {
			v.add(f+".replacePrefixMatch", "required when type is ReplacePrefixMatch")
		}
		slash(f+".replacePrefixMatch", p.ReplacePrefixMatch)
		if p.ReplaceFullPath != nil {
			v.add(f+".replaceFullPath", "must not be set when type is ReplacePrefixMatch")
		}
		if reason := prefixMatchProblem(matches); reason != "" {
			v.add(f+".type", reason)
		}
	case "":
		v.add(f+".type", "required: ReplaceFullPath or ReplacePrefixMatch")
	default:
		v.oneOf(f+".type", string(p.Type), string(gwv1.FullPathHTTPPathModifier), string(gwv1.PrefixMatchHTTPPathModifier))
	}
}

// prefixMatchProblem explains why ReplacePrefixMatch cannot be used with these
// matches. The prefix to replace must be unambiguous, so (as in the Gateway
// API) the rule needs exactly one match and it must be a PathPrefix match; no
// matches, or a match without a path, defaults to PathPrefix "/".
func prefixMatchProblem(matches []gwv1.HTTPRouteMatch) string {
	if len(matches) > 1 {
		return fmt.Sprintf("ReplacePrefixMatch requires the rule to have exactly one match, with a PathPrefix path; it has %d", len(matches))
	}
	if len(matches) == 1 && matches[0].Path != nil && matches[0].Path.Type != nil && *matches[0].Path.Type != gwv1.PathMatchPathPrefix {
		return fmt.Sprintf("ReplacePrefixMatch requires the rule's path match to be PathPrefix, got %s", *matches[0].Path.Type)
	}
	return ""
}

func validateMirror(v *validator, f string, m *gwv1.HTTPRequestMirrorFilter) {
	validateServiceRef(v, f+".backendRef", m.BackendRef)
	if m.Percent != nil && m.Fraction != nil {
		v.add(f, "set percent or fraction, not both")
	}
	if m.Percent != nil {
		v.inRange(f+".percent", int64(*m.Percent), 0, 100)
	}
	if fr := m.Fraction; fr != nil {
		den := int32(100)
		if fr.Denominator != nil {
			den = *fr.Denominator
			if den < 1 {
				v.addf(f+".fraction.denominator", "must be at least 1, got %d", den)
			}
		}
		if fr.Numerator < 0 || fr.Numerator > den {
			v.addf(f+".fraction.numerator", "must be between 0 and the denominator (%d), got %d", den, fr.Numerator)
		}
	}
}

// validateExtensionRef accepts the one extension weft has: a FaultInjection
// in the route's namespace.
func validateExtensionRef(v *validator, f string, r *gwv1.LocalObjectReference) {
	if r.Group != Group {
		v.addf(f+".group", "must be %s (the only extension weft has is a FaultInjection), got %q", Group, r.Group)
	}
	if r.Kind != KindFaultInjection {
		v.addf(f+".kind", "must be %s, got %q", KindFaultInjection, r.Kind)
	}
	v.dnsLabel(f+".name", string(r.Name))
}
