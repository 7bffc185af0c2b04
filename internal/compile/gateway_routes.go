package compile

import (
	"fmt"
	"sort"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"weft.dev/weft/internal/resource"
)

// build compiles the routing of one served listener from its attached
// routes.
func (g *gatewayCompiler) build(l *listenerState) {
	switch l.out.Protocol {
	case ListenerHTTP, ListenerHTTPS:
		g.buildHTTP(l)
	case ListenerTLS:
		g.buildTLS(l)
	case ListenerTCP:
		g.buildTCP(l)
	}
}

// edgeCandidate is a flattened rule with the one hostname it answers for.
type edgeCandidate struct {
	candidate
	host string
}

// hostRank orders rules by the hostname they match, as the Gateway API
// asks: exact hostnames before wildcards, longer before shorter, rules
// without a hostname last.
func hostRank(h string) (int, int) {
	switch {
	case h == "":
		return 2, 0
	case strings.HasPrefix(h, "*."):
		return 1, -len(h)
	}
	return 0, -len(h)
}

func (g *gatewayCompiler) buildHTTP(l *listenerState) {
	var cands []edgeCandidate
	l.out.Edge = map[string]*EdgePolicy{}
	for _, a := range l.routes {
		var cs []candidate
		switch {
		case a.route.http != nil:
			cs = g.edgeHTTPRules(l, a)
		case a.route.grpc != nil:
			cs = g.edgeGRPCRules(l, a)
		}
		for _, cd := range cs {
			g.edgeTimeouts(&cd)
			if len(cd.rule.Hostnames) == 0 {
				cands = append(cands, edgeCandidate{candidate: cd})
				continue
			}
			for _, h := range cd.rule.Hostnames {
				r := *cd.rule
				r.Hostnames = []string{h}
				c := cd
				c.rule = &r
				cands = append(cands, edgeCandidate{candidate: c, host: h})
			}
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		ci, li := hostRank(cands[i].host)
		cj, lj := hostRank(cands[j].host)
		if ci != cj {
			return ci < cj
		}
		if li != lj {
			return li < lj
		}
		if cands[i].host != cands[j].host {
			return cands[i].host < cands[j].host
		}
		return cands[i].key.before(cands[j].key)
	})
	rules := make([]*HTTPRule, 0, len(cands))
	for _, cd := range cands {
		rules = append(rules, cd.rule)
		for _, b := range cd.rule.Backends {
			g.recordRetry(b.Cluster)
		}
		for _, m := range cd.rule.Mirrors {
			g.recordRetry(m.Cluster)
		}
	}
	l.out.HTTP = &HTTPRouting{Rules: rules}
	if len(l.out.Edge) == 0 {
		l.out.Edge = nil
	}
}

// recordRetry notes the retry policy of a cluster's Service.
func (g *gatewayCompiler) recordRetry(cluster string) {
	ref, ok := g.refs[cluster]
	if !ok {
		return
	}
	if r, _ := httpPolicy(g.policies[g.key(ref.ns, ref.name)]); r != nil {
		g.out.Retries[cluster] = r
	}
}

// edgeTimeouts sets a rule's timeouts: its own, else those of the
// TrafficPolicy of its first backend's Service, the Service a sidecar would
// have called.
func (g *gatewayCompiler) edgeTimeouts(cd *candidate) {
	r := cd.rule
	if len(r.Backends) > 0 {
		if ref, ok := g.refs[r.Backends[0].Cluster]; ok {
			retry, timeout := httpPolicy(g.policies[g.key(ref.ns, ref.name)])
			r.Timeout = timeout
			if retry != nil {
				r.BackendTimeout = retry.PerTryTimeout
			}
		}
	}
	if cd.timeout != nil {
		r.Timeout = *cd.timeout
	}
	if cd.backendTimeout != nil {
		r.BackendTimeout = *cd.backendTimeout
	}
}

// permittedBackends drops the backendRefs a route may not use and says
// why; a rule that lost one is made invalid (500), as the Gateway API asks
// for requests to a backend that cannot be resolved.
func (g *gatewayCompiler) permittedBackends(r *routeObj, ri int, bs []gwv1.HTTPBackendRef) ([]gwv1.HTTPBackendRef, []string) {
	var out []gwv1.HTTPBackendRef
	var problems []string
	for bi, b := range bs {
		if reason, msg := g.checkBackend(r.kind, r.ns, b.BackendObjectReference); reason == string(gwv1.RouteReasonRefNotPermitted) {
			problems = append(problems, fmt.Sprintf("spec.rules[%d].backendRefs[%d]: %s", ri, bi, msg))
			continue
		}
		out = append(out, b)
	}
	return out, problems
}

func (g *gatewayCompiler) edgeHTTPRules(l *listenerState, a *attachment) []candidate {
	rt := a.route.http
	meta := routeMeta{kind: kindHTTPRoute, ns: a.route.ns, name: rt.Name, created: rt.CreationTimestamp.Time}
	var out []candidate
	for ri := range rt.Spec.Rules {
		rule := &rt.Spec.Rules[ri]
		filters, cors := splitCORS(rule.Filters)
		backends, problems := g.permittedBackends(a.route, ri, rule.BackendRefs)
		spec := ruleSpec{meta: meta, index: ri, hostnames: a.hostnames, filters: filters, backends: backends, timeouts: rule.Timeouts}
		if p := g.edgePolicy(a.route, cors); p != nil {
			l.out.Edge[meta.ruleName(ri)] = p
		}
		if len(rule.Matches) == 0 {
			out = append(out, invalidate(g.candidate(spec, 0, nil, ""), problems))
		}
		for mi := range rule.Matches {
			m, problem := httpMatch(&rule.Matches[mi])
			if problem != "" {
				problem = fmt.Sprintf("spec.rules[%d].matches[%d]: %s", ri, mi, problem)
			}
			out = append(out, invalidate(g.candidate(spec, mi, m, problem), problems))
		}
	}
	return out
}

func (g *gatewayCompiler) edgeGRPCRules(l *listenerState, a *attachment) []candidate {
	rt := a.route.grpc
	meta := routeMeta{kind: kindGRPCRoute, ns: a.route.ns, name: rt.Name, created: rt.CreationTimestamp.Time}
	var out []candidate
	for ri := range rt.Spec.Rules {
		rule := &rt.Spec.Rules[ri]
		backends, problems := g.permittedBackends(a.route, ri, grpcBackends(rule.BackendRefs))
		spec := ruleSpec{meta: meta, index: ri, hostnames: a.hostnames, filters: grpcFilters(rule.Filters), backends: backends}
		if p := g.edgePolicy(a.route, nil); p != nil {
			l.out.Edge[meta.ruleName(ri)] = p
		}
		if len(rule.Matches) == 0 {
			out = append(out, invalidate(g.candidate(spec, 0, nil, ""), problems))
		}
		for mi := range rule.Matches {
			m, problem := grpcMatch(&rule.Matches[mi])
			if problem != "" {
				problem = fmt.Sprintf("spec.rules[%d].matches[%d]: %s", ri, mi, problem)
			}
			out = append(out, invalidate(g.candidate(spec, mi, m, problem), problems))
		}
	}
	return out
}

func invalidate(cd candidate, problems []string) candidate {
	if len(problems) == 0 {
		return cd
	}
	if cd.rule.Invalid != "" {
		problems = append([]string{cd.rule.Invalid}, problems...)
	}
	cd.rule.Invalid = strings.Join(problems, "; ")
	return cd
}

// splitCORS takes the CORS filter out of a rule's filters: the gateway
// applies it, not the engine's route table.
func splitCORS(fs []gwv1.HTTPRouteFilter) ([]gwv1.HTTPRouteFilter, *gwv1.HTTPCORSFilter) {
	var cors *gwv1.HTTPCORSFilter
	out := make([]gwv1.HTTPRouteFilter, 0, len(fs))
	for _, f := range fs {
		if f.Type == gwv1.HTTPRouteFilterCORS {
			cors = f.CORS
			continue
		}
		out = append(out, f)
	}
	return out, cors
}

// buildTLS routes a TLS listener by SNI: each attached TLSRoute's first rule,
// exact hostnames before wildcards, longer first, then the oldest route.
func (g *gatewayCompiler) buildTLS(l *listenerState) {
	type flat struct {
		rule *TLSRule
		host string
	}
	var all []flat
	for _, a := range l.routes {
		rt := a.route.tls
		if rt == nil || len(rt.Spec.Rules) == 0 {
			continue
		}
		var backends []*Backend
		for _, br := range rt.Spec.Rules[0].BackendRefs {
			if reason, _ := g.checkBackend(a.route.kind, a.route.ns, br.BackendObjectReference); reason == string(gwv1.RouteReasonRefNotPermitted) {
				continue
			}
			cluster, problem := g.backendCluster(a.route.ns, &br.BackendObjectReference)
			if problem != "" {
				continue
			}
			w := int32(1)
			if br.Weight != nil {
				w = max(*br.Weight, 0)
			}
			backends = append(backends, &Backend{Cluster: cluster, Weight: w})
		}
		route := a.route.key() + "/0"
		if len(a.hostnames) == 0 {
			all = append(all, flat{rule: &TLSRule{Route: route, Backends: backends}})
		}
		for _, h := range a.hostnames {
			all = append(all, flat{rule: &TLSRule{Route: route, Hostnames: []string{h}, Backends: backends}, host: h})
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		ci, li := hostRank(all[i].host)
		cj, lj := hostRank(all[j].host)
		if ci != cj {
			return ci < cj
		}
		return li < lj
	})
	for _, f := range all {
		l.out.TLS = append(l.out.TLS, f.rule)
	}
}

// buildTCP carries a TCP listener's connections to its one TCPRoute.
func (g *gatewayCompiler) buildTCP(l *listenerState) {
	out := &TCPRouting{Backends: []*Backend{}}
	if len(l.routes) > 0 && l.routes[0].route.tcp != nil && len(l.routes[0].route.tcp.Spec.Rules) > 0 {
		r := l.routes[0].route
		out.Route = r.key() + "/0"
		for _, br := range r.tcp.Spec.Rules[0].BackendRefs {
			if reason, _ := g.checkBackend(r.kind, r.ns, br.BackendObjectReference); reason == string(gwv1.RouteReasonRefNotPermitted) {
				continue
			}
			cluster, problem := g.backendCluster(r.ns, &br.BackendObjectReference)
			if problem != "" {
				continue
			}
			w := int32(1)
			if br.Weight != nil {
				w = max(*br.Weight, 0)
			}
			out.Backends = append(out.Backends, &Backend{Cluster: cluster, Weight: w})
		}
	}
	l.out.TCP = out
}

// edgePolicy is the edge policy of a rule of route r whose CORS filter is
// cors; nil when there is none.
func (g *gatewayCompiler) edgePolicy(r *routeObj, cors *gwv1.HTTPCORSFilter) *EdgePolicy {
	p := &EdgePolicy{}
	allowMissing, anyAuth := true, false
	for _, ra := range sortedByKey(g.set.RequestAuthentications, func(x *resource.RequestAuthentication) string { return nsOf(x.Namespace) + "/" + x.Name }) {
		if !g.targets(ra.Spec.TargetRef, nsOf(ra.Namespace), r) {
			continue
		}
		anyAuth = true
		allowMissing = allowMissing && ra.Spec.AllowMissing
		for i, jr := range ra.Spec.JWTRules {
			k := fmt.Sprintf("%s/%s/%d", nsOf(ra.Namespace), ra.Name, i)
			if g.out.JWTProviders[k] == nil {
				g.out.JWTProviders[k] = jwtProvider(jr)
			}
			p.JWT = append(p.JWT, k)
		}
	}
	p.AllowMissingToken = anyAuth && allowMissing
	for _, rl := range sortedByKey(g.set.RateLimitPolicies, func(x *resource.RateLimitPolicy) string { return nsOf(x.Namespace) + "/" + x.Name }) {
		if !g.targets(rl.Spec.TargetRef, nsOf(rl.Namespace), r) {
			continue
		}
		for i, l := range rl.Spec.Limits {
			k := fmt.Sprintf("%s/%s/%d", nsOf(rl.Namespace), rl.Name, i)
			if g.out.RateLimits[k] == nil {
				g.out.RateLimits[k] = rateLimit(l)
			}
			p.RateLimits = append(p.RateLimits, k)
		}
	}
	if cors != nil {
		p.CORS = corsPolicy(cors)
	}
	p.MaxRequestBody = g.bodyLimit(r)
	if len(p.JWT) == 0 && len(p.RateLimits) == 0 && p.CORS == nil && p.MaxRequestBody == 0 {
		return nil
	}
	return p
}

// targets reports whether a policy in policyNS with targetRef t applies to
// route r: it targets r itself, or this Gateway.
func (g *gatewayCompiler) targets(t resource.PolicyTargetRef, policyNS string, r *routeObj) bool {
	if t.Group != "" && t.Group != resource.GatewayGroup {
		return false
	}
	switch t.Kind {
	case resource.KindGateway:
		return policyNS == g.ns && t.Name == g.gw.Name
	case r.kind:
		return policyNS == r.ns && t.Name == r.name
	}
	return false
}

// bodyLimit is the route's max-request-body annotation, else the
// Gateway's; 0 when neither sets one (or it does not parse).
func (g *gatewayCompiler) bodyLimit(r *routeObj) int64 {
	for _, ann := range []map[string]string{r.annotations, g.gw.Annotations} {
		if s, ok := ann[resource.AnnotationMaxRequestBody]; ok {
			if n, err := resource.ParseBodyLimit(s); err == nil {
				return n
			}
		}
	}
	return 0
}

// Defaults of the edge policies.
const (
	defaultJWKSCache    = Duration(5 * 60 * 1e9)
	defaultRateLimitKey = 10000
)

func jwtProvider(r resource.JWTRule) *JWTProvider {
	p := &JWTProvider{Issuer: r.Issuer, Audiences: r.Audiences, JWKS: r.JWKS, JWKSFile: r.JWKSFile, JWKSURI: r.JWKSURI,
		CacheDuration: durOr(r.CacheDuration, defaultJWKSCache.D()), FromParams: r.FromParams, ForwardOriginalToken: r.ForwardOriginalToken}
	for _, h := range r.FromHeaders {
		p.FromHeaders = append(p.FromHeaders, JWTHeader{Name: h.Name, Prefix: h.Prefix})
	}
	if len(p.FromHeaders) == 0 && len(p.FromParams) == 0 {
		p.FromHeaders = []JWTHeader{{Name: "Authorization", Prefix: "Bearer "}}
	}
	for _, c := range r.ClaimsToHeaders {
		p.ClaimsToHeaders = append(p.ClaimsToHeaders, ClaimToHeader{Claim: c.Claim, Header: strings.ToLower(c.Header)})
	}
	return p
}

func rateLimit(l resource.RateLimit) *RateLimit {
	out := &RateLimit{Requests: l.Requests, Period: Duration(l.Period.Duration), Burst: l.Burst,
		Key: l.Key, Header: strings.ToLower(l.Header), MaxKeys: int(l.MaxKeys)}
	if out.Burst <= 0 {
		out.Burst = out.Requests
	}
	if out.MaxKeys <= 0 {
		out.MaxKeys = defaultRateLimitKey
	}
	return out
}

func corsPolicy(c *gwv1.HTTPCORSFilter) *CORS {
	out := &CORS{MaxAge: 5} // the Gateway API default
	for _, o := range c.AllowOrigins {
		out.AllowOrigins = append(out.AllowOrigins, string(o))
	}
	for _, m := range c.AllowMethods {
		out.AllowMethods = append(out.AllowMethods, string(m))
	}
	for _, h := range c.AllowHeaders {
		out.AllowHeaders = append(out.AllowHeaders, string(h))
	}
	for _, h := range c.ExposeHeaders {
		out.ExposeHeaders = append(out.ExposeHeaders, string(h))
	}
	if c.AllowCredentials != nil {
		out.AllowCredentials = *c.AllowCredentials
	}
	if c.MaxAge > 0 {
		out.MaxAge = int(c.MaxAge)
	}
	return out
}

// sortedByKey returns the non-nil items sorted by key, for output that
// does not depend on input order.
func sortedByKey[T any](items []*T, key func(*T) string) []*T {
	out := make([]*T, 0, len(items))
	for _, it := range items {
		if it != nil {
			out = append(out, it)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return key(out[i]) < key(out[j]) })
	return out
}
