package compile

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Route kinds, in the order they break a tie between routes of the same
// namespace/name (the Gateway API does not define one; any fixed order keeps
// the output deterministic).
const (
	kindHTTPRoute = iota
	kindGRPCRoute
)

// routeMeta is what precedence and rule names need to know about a route.
type routeMeta struct {
	kind     int
	ns, name string
	created  time.Time
}

func (m routeMeta) ruleName(rule int) string { return fmt.Sprintf("%s/%s/%d", m.ns, m.name, rule) }

// candidate is one (rule, match) pair of a route attached to a port. Rules
// are flattened to one match each so that every match takes its own place in
// the precedence order while keeping its rule's filters and backends.
type candidate struct {
	rule *HTTPRule
	key  precedence
	// The rule's own timeouts, when set; they override the policy's.
	timeout, backendTimeout *Duration
}

// Path ranks: the Gateway API puts Exact before PathPrefix and leaves
// RegularExpression to the implementation; weft puts it after PathPrefix.
// A gRPC match without a method (or a GRPCRoute rule without matches) has no
// path at all and comes last: GRPCRoute precedence counts the characters of
// the matched service and method, so any method match beats none. (An
// HTTPRoute match without a path is PathPrefix "/", its API default.)
const (
	rankExact = iota
	rankPrefix
	rankRegex
	rankNone
)

// precedence orders candidates across all routes of a port, as the Gateway
// API asks (HTTPRouteRule.Matches): Exact path, longest prefix, method,
// most headers, most query params; then the oldest route, then
// "namespace/name"; then, within a route, rule order and match order.
type precedence struct {
	pathRank       int
	pathLen        int
	method         bool
	headers, query int
	created        time.Time
	route          string // namespace/name
	kind           int
	rule, match    int
}

func (a precedence) before(b precedence) bool {
	if a.pathRank != b.pathRank {
		return a.pathRank < b.pathRank
	}
	if (a.pathRank == rankExact || a.pathRank == rankPrefix) && a.pathLen != b.pathLen {
		return a.pathLen > b.pathLen
	}
	if a.method != b.method {
		return a.method
	}
	if a.headers != b.headers {
		return a.headers > b.headers
	}
	if a.query != b.query {
		return a.query > b.query
	}
	if !a.created.Equal(b.created) {
		return a.created.Before(b.created)
	}
	if a.route != b.route {
		return a.route < b.route
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	if a.rule != b.rule {
		return a.rule < b.rule
	}
	return a.match < b.match
}

func sortCandidates(cs []candidate) {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].key.before(cs[j].key) })
}

// olderThan orders objects by creation time, then by name: the Gateway API's
// tie-break between routes, and weft's between conflicting policies.
func olderThan(ta, tb time.Time, ka, kb string) bool {
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return ka < kb
}

// keyOf computes the precedence of a match. A nil match (a rule without
// matches) of an HTTPRoute counts as PathPrefix "/", the Gateway API default;
// of a GRPCRoute, as no path.
func keyOf(meta routeMeta, rule, match int, m *HTTPMatch) precedence {
	k := precedence{pathRank: rankPrefix, pathLen: 1, created: meta.created,
		route: meta.ns + "/" + meta.name, kind: meta.kind, rule: rule, match: match}
	if meta.kind == kindGRPCRoute && (m == nil || m.PathType == "") {
		k.pathRank, k.pathLen = rankNone, 0
	}
	if m == nil {
		return k
	}
	switch m.PathType {
	case PathExact:
		k.pathRank, k.pathLen = rankExact, len(m.Path)
	case PathPrefix:
		k.pathLen = len(m.Path)
	case PathRegex:
		k.pathRank, k.pathLen = rankRegex, 0
	}
	k.method = m.Method != ""
	k.headers, k.query = len(m.Headers), len(m.Query)
	return k
}

// attaches reports whether any parentRef of a route in routeNS names port p
// of service ns/name. sectionName, for a Service, is a port name.
//
// The Gateway API infers group gateway.networking.k8s.io when it is unset, so
// strictly a Service parent must write group "". weft's validation accepts
// kind Service without a group (there is no other Service kind), so the
// compiler attaches it too: a route that validates must not silently do
// nothing.
func attaches(refs []gwv1.ParentReference, routeNS, ns, name string, p *corev1.ServicePort) bool {
	for _, ref := range refs {
		if ref.Kind == nil {
			continue // unset kind is Gateway: an edge route
		}
		group := ""
		if ref.Group != nil {
			group = string(*ref.Group)
		}
		if !isServiceRef(group, string(*ref.Kind)) {
			continue
		}
		refNS := nsOf(routeNS)
		if ref.Namespace != nil && *ref.Namespace != "" {
			refNS = string(*ref.Namespace)
		}
		if refNS != ns || string(ref.Name) != name {
			continue
		}
		if ref.Port != nil && *ref.Port != p.Port {
			continue
		}
		if ref.SectionName != nil && *ref.SectionName != "" && string(*ref.SectionName) != p.Name {
			continue
		}
		return true
	}
	return false
}

// httpRouting builds the route table of one HTTP-capable (or sniffed) port:
// every attached HTTPRoute and GRPCRoute rule in precedence order. A port
// no route attaches to gets one default rule to its own cluster. Once a
// route attaches, it owns the port: a request no rule matches gets 404, as
// the Gateway API (and GAMMA) specify, rather than slipping past the route
// to the service. Retries and timeouts come from the called service's
// TrafficPolicy.
func (c *compiler) httpRouting(ns, name string, p *corev1.ServicePort, own []*Backend) *HTTPRouting {
	var cands []candidate
	for _, rt := range c.httpRoutes {
		if attaches(rt.Spec.ParentRefs, rt.Namespace, ns, name, p) {
			cands = append(cands, c.httpRouteRules(rt)...)
		}
	}
	for _, rt := range c.grpcRoutes {
		if attaches(rt.Spec.ParentRefs, rt.Namespace, ns, name, p) {
			cands = append(cands, c.grpcRouteRules(rt)...)
		}
	}
	sortCandidates(cands)

	retry, timeout := httpPolicy(c.policies[ns+"/"+name])
	var perTry Duration
	if retry != nil {
		perTry = retry.PerTryTimeout
	}
	rules := make([]*HTTPRule, 0, len(cands)+1)
	for _, cd := range cands {
		r := cd.rule
		r.Timeout, r.BackendTimeout = timeout, perTry
		if cd.timeout != nil {
			r.Timeout = *cd.timeout
		}
		if cd.backendTimeout != nil {
			r.BackendTimeout = *cd.backendTimeout
		}
		rules = append(rules, r)
	}
	if len(cands) == 0 {
		rules = append(rules, &HTTPRule{
			Route:          "", // no route: the service's own default
			Backends:       own,
			Timeout:        timeout,
			BackendTimeout: perTry,
		})
	}
	return &HTTPRouting{Rules: rules, Retry: retry, Timeout: timeout}
}

// ruleSpec is a route rule in the shape HTTPRoute and GRPCRoute share.
type ruleSpec struct {
	meta      routeMeta
	index     int
	hostnames []string
	filters   []gwv1.HTTPRouteFilter
	backends  []gwv1.HTTPBackendRef
	timeouts  *gwv1.HTTPRouteTimeouts
}

func (c *compiler) httpRouteRules(rt *gwv1.HTTPRoute) []candidate {
	meta := routeMeta{kind: kindHTTPRoute, ns: nsOf(rt.Namespace), name: rt.Name, created: rt.CreationTimestamp.Time}
	var out []candidate
	for ri := range rt.Spec.Rules {
		rule := &rt.Spec.Rules[ri]
		spec := ruleSpec{meta: meta, index: ri, hostnames: hostnames(rt.Spec.Hostnames),
			filters: rule.Filters, backends: rule.BackendRefs, timeouts: rule.Timeouts}
		if len(rule.Matches) == 0 {
			out = append(out, c.candidate(spec, 0, nil, ""))
		}
		for mi := range rule.Matches {
			m, problem := httpMatch(&rule.Matches[mi])
			if problem != "" {
				problem = fmt.Sprintf("spec.rules[%d].matches[%d]: %s", ri, mi, problem)
			}
			out = append(out, c.candidate(spec, mi, m, problem))
		}
	}
	return out
}

func (c *compiler) grpcRouteRules(rt *gwv1.GRPCRoute) []candidate {
	meta := routeMeta{kind: kindGRPCRoute, ns: nsOf(rt.Namespace), name: rt.Name, created: rt.CreationTimestamp.Time}
	var out []candidate
	for ri := range rt.Spec.Rules {
		rule := &rt.Spec.Rules[ri]
		spec := ruleSpec{meta: meta, index: ri, hostnames: hostnames(rt.Spec.Hostnames),
			filters: grpcFilters(rule.Filters), backends: grpcBackends(rule.BackendRefs)}
		if len(rule.Matches) == 0 {
			out = append(out, c.candidate(spec, 0, nil, ""))
		}
		for mi := range rule.Matches {
			m, problem := grpcMatch(&rule.Matches[mi])
			if problem != "" {
				problem = fmt.Sprintf("spec.rules[%d].matches[%d]: %s", ri, mi, problem)
			}
			out = append(out, c.candidate(spec, mi, m, problem))
		}
	}
	return out
}

// candidate builds one flattened rule for match m (nil: the rule has no
// matches and matches everything). Each call builds fresh values, so no two
// rules in a Config share a pointer.
func (c *compiler) candidate(s ruleSpec, mi int, m *HTTPMatch, problem string) candidate {
	r := &HTTPRule{Route: s.meta.ruleName(s.index)}
	if len(s.hostnames) > 0 {
		r.Hostnames = append([]string(nil), s.hostnames...)
	}
	if m != nil {
		r.Matches = []*HTTPMatch{m}
	}
	var problems []string
	if problem != "" {
		problems = append(problems, problem)
	}
	for fi := range s.filters {
		if p := c.filter(r, s.meta.ns, &s.filters[fi], m); p != "" {
			problems = append(problems, fmt.Sprintf("spec.rules[%d].filters[%d]: %s", s.index, fi, p))
		}
	}
	// A redirect is answered by the proxy: backends would never be used.
	if r.Redirect == nil {
		for bi := range s.backends {
			b, ps := c.backend(s.meta.ns, &s.backends[bi])
			for _, p := range ps {
				problems = append(problems, fmt.Sprintf("spec.rules[%d].backendRefs[%d]: %s", s.index, bi, p))
			}
			if b != nil {
				r.Backends = append(r.Backends, b)
			}
		}
	}
	cd := candidate{rule: r, key: keyOf(s.meta, s.index, mi, m)}
	if t := s.timeouts; t != nil {
		var p string
		if cd.timeout, p = gwDuration(t.Request); p != "" {
			problems = append(problems, fmt.Sprintf("spec.rules[%d].timeouts.request: %s", s.index, p))
		}
		if cd.backendTimeout, p = gwDuration(t.BackendRequest); p != "" {
			problems = append(problems, fmt.Sprintf("spec.rules[%d].timeouts.backendRequest: %s", s.index, p))
		}
	}
	if len(problems) > 0 {
		r.Invalid = strings.Join(problems, "; ")
	}
	return cd
}

func hostnames(hs []gwv1.Hostname) []string {
	var out []string
	for _, h := range hs {
		out = append(out, string(h))
	}
	return out
}

// httpMatch converts one HTTPRouteMatch, filling in the Gateway API default
// path (PathPrefix "/").
func httpMatch(m *gwv1.HTTPRouteMatch) (*HTTPMatch, string) {
	out := &HTTPMatch{PathType: PathPrefix, Path: "/"}
	if p := m.Path; p != nil {
		if p.Type != nil {
			switch t := string(*p.Type); t {
			case PathExact, PathPrefix, PathRegex:
				out.PathType = t
			default:
				return out, fmt.Sprintf("path type %q is not supported", t)
			}
		}
		if p.Value != nil && *p.Value != "" {
			out.Path = *p.Value
		}
	}
	if m.Method != nil {
		out.Method = string(*m.Method)
	}
	for _, h := range m.Headers {
		vm, ok := valueMatch(strings.ToLower(string(h.Name)), h.Value, (*string)(h.Type))
		if !ok {
			return out, fmt.Sprintf("header match type %q is not supported", *h.Type)
		}
		out.Headers = append(out.Headers, vm)
	}
	for _, q := range m.QueryParams {
		vm, ok := valueMatch(string(q.Name), q.Value, (*string)(q.Type))
		if !ok {
			return out, fmt.Sprintf("query param match type %q is not supported", *q.Type)
		}
		out.Query = append(out.Query, vm)
	}
	return out, ""
}

// valueMatch builds a header or query match of type Exact (the default) or
// RegularExpression.
func valueMatch(name, value string, typ *string) (*ValueMatch, bool) {
	vm := &ValueMatch{Name: name, Value: value}
	if typ == nil {
		return vm, true
	}
	switch *typ {
	case "", "Exact":
		return vm, true
	case "RegularExpression":
		vm.Regex = true
		return vm, true
	}
	return vm, false
}

// grpcMatch turns a GRPCRouteMatch into an HTTP match on the request path
// "/package.Service/Method". Regular expressions are full matches, as the
// data plane anchors them.
func grpcMatch(m *gwv1.GRPCRouteMatch) (*HTTPMatch, string) {
	out := &HTTPMatch{}
	if mm := m.Method; mm != nil {
		var svc, method string
		if mm.Service != nil {
			svc = *mm.Service
		}
		if mm.Method != nil {
			method = *mm.Method
		}
		typ := gwv1.GRPCMethodMatchExact
		if mm.Type != nil {
			typ = *mm.Type
		}
		switch typ {
		case gwv1.GRPCMethodMatchExact:
			switch {
			case svc != "" && method != "":
				out.PathType, out.Path = PathExact, "/"+svc+"/"+method
			case svc != "":
				out.PathType, out.Path = PathPrefix, "/"+svc+"/"
			case method != "":
				out.PathType, out.Path = PathRegex, "/[^/]+/"+regexp.QuoteMeta(method)
			}
		case gwv1.GRPCMethodMatchRegularExpression:
			if svc == "" {
				svc = "[^/]+"
			}
			if method == "" {
				method = "[^/]+"
			}
			out.PathType, out.Path = PathRegex, "/(?:"+svc+")/(?:"+method+")"
		default:
			return out, fmt.Sprintf("method match type %q is not supported", typ)
		}
	}
	for _, h := range m.Headers {
		vm, ok := valueMatch(strings.ToLower(string(h.Name)), h.Value, (*string)(h.Type))
		if !ok {
			return out, fmt.Sprintf("header match type %q is not supported", *h.Type)
		}
		out.Headers = append(out.Headers, vm)
	}
	return out, ""
}

// grpcFilters and grpcBackends restate GRPCRoute filters in the HTTPRoute
// shape they share, so one code path compiles both. A filter type GRPCRoute
// lacks (RequestRedirect, URLRewrite) arrives without its body and makes the
// rule invalid.
func grpcFilters(fs []gwv1.GRPCRouteFilter) []gwv1.HTTPRouteFilter {
	out := make([]gwv1.HTTPRouteFilter, 0, len(fs))
	for _, f := range fs {
		out = append(out, gwv1.HTTPRouteFilter{
			Type:                   gwv1.HTTPRouteFilterType(f.Type),
			RequestHeaderModifier:  f.RequestHeaderModifier,
			ResponseHeaderModifier: f.ResponseHeaderModifier,
			RequestMirror:          f.RequestMirror,
			ExtensionRef:           f.ExtensionRef,
		})
	}
	return out
}

func grpcBackends(bs []gwv1.GRPCBackendRef) []gwv1.HTTPBackendRef {
	out := make([]gwv1.HTTPBackendRef, 0, len(bs))
	for _, b := range bs {
		out = append(out, gwv1.HTTPBackendRef{BackendRef: b.BackendRef, Filters: grpcFilters(b.Filters)})
	}
	return out
}

// gwDuration parses a Gateway API duration ("1h", "500ms"); nil when unset.
// "0s" is kept: it means no timeout, and it overrides the policy's.
func gwDuration(d *gwv1.Duration) (*Duration, string) {
	if d == nil {
		return nil, ""
	}
	v, err := time.ParseDuration(string(*d))
	if err != nil || v < 0 {
		return nil, fmt.Sprintf("invalid duration %q", string(*d))
	}
	out := Duration(v)
	return &out, ""
}
