package compile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"weft.dev/weft/internal/resource"
)

// GatewayOptions choose the Gateway resource a gateway runs as.
type GatewayOptions struct {
	// Name of the Gateway; empty means the only Gateway in the set.
	Name string
	// Namespace of the Gateway; empty matches any.
	Namespace string
}

// CompileGateway compiles the edge config of one Gateway: its listeners,
// the HTTPRoutes, GRPCRoutes, TLSRoutes and TCPRoutes attached to them, the
// edge policies of those routes, the clusters they reach, and the status of
// every route that names the Gateway. Like Compile it is a pure function:
// the same input in any order gives the same output and Version.
//
// Routes attach as the Gateway API says: a parentRef names the Gateway
// (optionally one listener by sectionName or port); the listener must allow
// the route's kind and namespace; the route's hostnames must intersect the
// listener's. A backend in another namespace needs a ReferenceGrant, and so
// does a certificate Secret in another namespace.
func CompileGateway(set *resource.Set, opts GatewayOptions) (*Gateway, error) {
	if set == nil {
		set = &resource.Set{}
	}
	gw, err := pickGateway(set.Gateways, opts)
	if err != nil {
		return nil, err
	}
	g := &gatewayCompiler{
		compiler: newCompiler(set),
		set:      set,
		gw:       gw,
		ns:       nsOf(gw.Namespace),
		secrets:  map[string]*corev1.Secret{},
		out: &Gateway{Name: gw.Name, Namespace: nsOf(gw.Namespace), Listeners: []*Listener{},
			Certificates: map[string]*Certificate{}, Clusters: map[string]*Cluster{}, Retries: map[string]*Retry{},
			JWTProviders: map[string]*JWTProvider{}, RateLimits: map[string]*RateLimit{},
			Status: &GatewayStatus{Listeners: []*ListenerStatus{}, Routes: []*RouteStatus{}}},
	}
	for _, s := range set.Secrets {
		if s != nil {
			g.secrets[g.key(s.Namespace, s.Name)] = s
		}
	}
	g.listeners()
	g.routes()
	for _, l := range g.ls {
		if l.ok {
			g.build(l)
			g.out.Listeners = append(g.out.Listeners, l.out)
		}
		g.out.Status.Listeners = append(g.out.Status.Listeners, l.status())
	}
	for name, ref := range g.refs {
		g.out.Clusters[name] = g.cluster(name, ref)
	}
	g.out.Status.Conditions = g.gatewayConditions()
	v, err := gatewayVersion(g.out)
	if err != nil {
		return nil, err
	}
	g.out.Version = v
	return g.out, nil
}

// pickGateway finds the Gateway by name (and namespace), or the only one.
func pickGateway(gws []*gwv1.Gateway, opts GatewayOptions) (*gwv1.Gateway, error) {
	var found []*gwv1.Gateway
	for _, gw := range gws {
		if gw == nil || (opts.Name != "" && gw.Name != opts.Name) || (opts.Namespace != "" && nsOf(gw.Namespace) != opts.Namespace) {
			continue
		}
		found = append(found, gw)
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && opts.Name != "":
		return nil, fmt.Errorf("compile: no Gateway named %q", opts.Name)
	case len(found) == 0:
		return nil, fmt.Errorf("compile: no Gateway resource: the gateway needs one (kind Gateway, apiVersion gateway.networking.k8s.io/v1)")
	}
	var names []string
	for _, gw := range found {
		names = append(names, nsOf(gw.Namespace)+"/"+gw.Name)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("compile: %d Gateways (%s): name the one to run", len(found), strings.Join(names, ", "))
}

type gatewayCompiler struct {
	*compiler
	set     *resource.Set
	gw      *gwv1.Gateway
	ns      string
	secrets map[string]*corev1.Secret
	ls      []*listenerState
	out     *Gateway
}

// listenerState is one spec listener while routes attach to it.
type listenerState struct {
	spec   *gwv1.Listener
	out    *Listener
	kinds  []string
	from   gwv1.FromNamespaces
	ok     bool // served: accepted, no conflict, usable certificates
	conds  []Condition
	routes []*attachment
}

// attachment is a route attached to a listener, with the hostnames it
// serves there.
type attachment struct {
	route     *routeObj
	hostnames []string
}

func (l *listenerState) status() *ListenerStatus {
	return &ListenerStatus{Name: string(l.spec.Name), SupportedKinds: l.kinds, AttachedRoutes: len(l.routes), Conditions: l.conds}
}

func family(proto string) string {
	switch proto {
	case ListenerHTTPS, ListenerTLS:
		return "tls"
	}
	return proto
}

// listeners checks every listener: conflicts, route kinds, certificates.
func (g *gatewayCompiler) listeners() {
	portFamily := map[int32]string{}
	tlsHosts := map[string]string{} // port/hostname -> listener name, over HTTPS and TLS
	for i := range g.gw.Spec.Listeners {
		spec := &g.gw.Spec.Listeners[i]
		proto := string(spec.Protocol)
		l := &listenerState{spec: spec, out: &Listener{Name: string(spec.Name), Port: spec.Port, Protocol: proto}, from: gwv1.NamespacesFromSame}
		g.ls = append(g.ls, l)
		if spec.Hostname != nil {
			l.out.Hostname = strings.ToLower(string(*spec.Hostname))
		}
		if ar := spec.AllowedRoutes; ar != nil && ar.Namespaces != nil && ar.Namespaces.From != nil {
			l.from = *ar.Namespaces.From
		}
		kindsOK, kindsMsg := g.routeKinds(l)

		conflict, conflictMsg := "", ""
		if f, seen := portFamily[spec.Port]; !seen {
			portFamily[spec.Port] = family(proto)
		} else if f != family(proto) {
			conflict, conflictMsg = string(gwv1.ListenerReasonProtocolConflict), fmt.Sprintf("port %d already serves another protocol family than %s", spec.Port, proto)
		}
		if conflict == "" && family(proto) == "tls" {
			k := fmt.Sprintf("%d/%s", spec.Port, l.out.Hostname)
			if other, dup := tlsHosts[k]; dup {
				conflict, conflictMsg = string(gwv1.ListenerReasonHostnameConflict), fmt.Sprintf("listener %s already takes TLS connections for this hostname on port %d", other, spec.Port)
			} else {
				tlsHosts[k] = string(spec.Name)
			}
		}

		refsOK, refsReason, refsMsg := true, string(gwv1.ListenerReasonResolvedRefs), ""
		if !kindsOK {
			refsOK, refsReason, refsMsg = false, string(gwv1.ListenerReasonInvalidRouteKinds), kindsMsg
		}
		certsOK := true
		if spec.TLS != nil {
			l.out.TLSMode = TLSTerminate
			if spec.TLS.Mode != nil {
				l.out.TLSMode = string(*spec.TLS.Mode)
			}
			if l.out.TLSMode == TLSTerminate {
				reason, msg := g.certificates(l)
				if reason != "" {
					refsOK, refsReason, refsMsg = false, reason, msg
				}
				certsOK = len(l.out.Certificates) > 0
			}
		}

		if conflict != "" {
			l.conds = append(l.conds, cond(string(gwv1.ListenerConditionAccepted), false, conflict, conflictMsg),
				cond(string(gwv1.ListenerConditionConflicted), true, conflict, conflictMsg))
		} else {
			l.conds = append(l.conds, cond(string(gwv1.ListenerConditionAccepted), true, string(gwv1.ListenerReasonAccepted), ""),
				cond(string(gwv1.ListenerConditionConflicted), false, string(gwv1.ListenerReasonNoConflicts), ""))
		}
		l.conds = append(l.conds, cond(string(gwv1.ListenerConditionResolvedRefs), refsOK, refsReason, refsMsg))
		l.ok = conflict == "" && certsOK
		switch {
		case l.ok:
			l.conds = append(l.conds, cond(string(gwv1.ListenerConditionProgrammed), true, string(gwv1.ListenerReasonProgrammed), ""))
		case !certsOK:
			l.conds = append(l.conds, cond(string(gwv1.ListenerConditionProgrammed), false, string(gwv1.ListenerReasonInvalid), "no usable certificate: "+refsMsg))
		default:
			l.conds = append(l.conds, cond(string(gwv1.ListenerConditionProgrammed), false, string(gwv1.ListenerReasonInvalid), conflictMsg))
		}
	}
}

// routeKinds sets the kinds a listener takes: its allowedRoutes.kinds that
// fit its protocol, else the protocol's defaults.
func (g *gatewayCompiler) routeKinds(l *listenerState) (bool, string) {
	var fit []string
	switch string(l.spec.Protocol) {
	case ListenerHTTP, ListenerHTTPS:
		fit = []string{resource.KindHTTPRoute, resource.KindGRPCRoute}
	case ListenerTLS:
		fit = []string{resource.KindTLSRoute}
	case ListenerTCP:
		fit = []string{resource.KindTCPRoute}
	}
	ar := l.spec.AllowedRoutes
	if ar == nil || len(ar.Kinds) == 0 {
		l.kinds = fit
		return true, ""
	}
	var bad []string
	l.kinds = []string{}
	for _, k := range ar.Kinds {
		if contains(fit, string(k.Kind)) && (k.Group == nil || string(*k.Group) == resource.GatewayGroup) {
			if !contains(l.kinds, string(k.Kind)) {
				l.kinds = append(l.kinds, string(k.Kind))
			}
		} else {
			bad = append(bad, string(k.Kind))
		}
	}
	if len(bad) > 0 {
		return false, fmt.Sprintf("route kinds %s do not fit protocol %s", strings.Join(bad, ", "), l.spec.Protocol)
	}
	return true, ""
}

// certificates resolves a terminating listener's certificateRefs. It
// returns the reason and message of the first problem.
func (g *gatewayCompiler) certificates(l *listenerState) (string, string) {
	var reason string
	var msgs []string
	fail := func(r, m string) {
		if reason == "" {
			reason = r
		}
		msgs = append(msgs, m)
	}
	for _, ref := range l.spec.TLS.CertificateRefs {
		ns := g.ns
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		name := string(ref.Name)
		if ref.Kind != nil && *ref.Kind != resource.KindSecret || ref.Group != nil && *ref.Group != "" && *ref.Group != "core" {
			fail(string(gwv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("certificateRef %s: only core Secrets are supported", name))
			continue
		}
		if !g.permitted(resource.KindGateway, g.ns, resource.KindSecret, ns, name) {
			fail(string(gwv1.ListenerReasonRefNotPermitted), fmt.Sprintf("Secret %s/%s: no ReferenceGrant in %s lets Gateways of %s use it", ns, name, ns, g.ns))
			continue
		}
		k := ns + "/" + name
		s := g.secrets[k]
		if s == nil {
			fail(string(gwv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("Secret %s not found", k))
			continue
		}
		cert, key := resource.SecretTLS(s)
		if len(cert) == 0 || len(key) == 0 {
			fail(string(gwv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("Secret %s has no tls.crt and tls.key", k))
			continue
		}
		if g.out.Certificates[k] == nil {
			g.out.Certificates[k] = &Certificate{Secret: k, Cert: cert, Key: key}
		}
		l.out.Certificates = append(l.out.Certificates, k)
	}
	return reason, strings.Join(msgs, "; ")
}

// permitted reports whether an object of fromKind in fromNS may refer to
// toKind toNS/toName: always within a namespace, across namespaces only by
// a ReferenceGrant in toNS.
func (g *gatewayCompiler) permitted(fromKind, fromNS, toKind, toNS, toName string) bool {
	if fromNS == toNS {
		return true
	}
	for _, rg := range g.set.ReferenceGrants {
		if rg == nil || nsOf(rg.Namespace) != toNS {
			continue
		}
		from := false
		for _, f := range rg.Spec.From {
			if string(f.Group) == resource.GatewayGroup && string(f.Kind) == fromKind && string(f.Namespace) == fromNS {
				from = true
			}
		}
		if !from {
			continue
		}
		for _, t := range rg.Spec.To {
			if (t.Group == "" || t.Group == "core") && string(t.Kind) == toKind && (t.Name == nil || string(*t.Name) == toName) {
				return true
			}
		}
	}
	return false
}

// routeObj is a route of any kind, in the shape attachment needs.
type routeObj struct {
	kind, ns, name string
	created        time.Time
	annotations    map[string]string
	parents        []gwv1.ParentReference
	hostnames      []string
	backends       []gwv1.BackendObjectReference // every backendRef, for ResolvedRefs
	http           *gwv1.HTTPRoute
	grpc           *gwv1.GRPCRoute
	tls            *gwv1.TLSRoute
	tcp            *gwv1.TCPRoute
}

func (r *routeObj) key() string { return r.ns + "/" + r.name }

// allRoutes lists every route, oldest first, then by namespace/name and kind,
// so that "the oldest route wins" has one answer.
func (g *gatewayCompiler) allRoutes() []*routeObj {
	var out []*routeObj
	add := func(r *routeObj) { out = append(out, r) }
	for _, rt := range g.set.HTTPRoutes {
		if rt == nil {
			continue
		}
		r := &routeObj{kind: resource.KindHTTPRoute, ns: nsOf(rt.Namespace), name: rt.Name, created: rt.CreationTimestamp.Time,
			annotations: rt.Annotations, parents: rt.Spec.ParentRefs, hostnames: hostnames(rt.Spec.Hostnames), http: rt}
		for _, rule := range rt.Spec.Rules {
			for _, b := range rule.BackendRefs {
				r.backends = append(r.backends, b.BackendObjectReference)
			}
			for _, f := range rule.Filters {
				if f.RequestMirror != nil {
					r.backends = append(r.backends, f.RequestMirror.BackendRef)
				}
			}
		}
		add(r)
	}
	for _, rt := range g.set.GRPCRoutes {
		if rt == nil {
			continue
		}
		r := &routeObj{kind: resource.KindGRPCRoute, ns: nsOf(rt.Namespace), name: rt.Name, created: rt.CreationTimestamp.Time,
			annotations: rt.Annotations, parents: rt.Spec.ParentRefs, hostnames: hostnames(rt.Spec.Hostnames), grpc: rt}
		for _, rule := range rt.Spec.Rules {
			for _, b := range rule.BackendRefs {
				r.backends = append(r.backends, b.BackendObjectReference)
			}
		}
		add(r)
	}
	for _, rt := range g.set.TLSRoutes {
		if rt == nil {
			continue
		}
		r := &routeObj{kind: resource.KindTLSRoute, ns: nsOf(rt.Namespace), name: rt.Name, created: rt.CreationTimestamp.Time,
			parents: rt.Spec.ParentRefs, hostnames: hostnames(rt.Spec.Hostnames), tls: rt}
		for _, rule := range rt.Spec.Rules {
			for _, b := range rule.BackendRefs {
				r.backends = append(r.backends, b.BackendObjectReference)
			}
		}
		add(r)
	}
	for _, rt := range g.set.TCPRoutes {
		if rt == nil {
			continue
		}
		r := &routeObj{kind: resource.KindTCPRoute, ns: nsOf(rt.Namespace), name: rt.Name, created: rt.CreationTimestamp.Time,
			parents: rt.Spec.ParentRefs, tcp: rt}
		for _, rule := range rt.Spec.Rules {
			for _, b := range rule.BackendRefs {
				r.backends = append(r.backends, b.BackendObjectReference)
			}
		}
		add(r)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.created.Equal(b.created) {
			return a.created.Before(b.created)
		}
		if a.key() != b.key() {
			return a.key() < b.key()
		}
		return a.kind < b.kind
	})
	return out
}

// namesGateway reports whether a parentRef of a route in routeNS names
// this Gateway.
func (g *gatewayCompiler) namesGateway(ref gwv1.ParentReference, routeNS string) bool {
	if ref.Kind != nil && string(*ref.Kind) != resource.KindGateway {
		return false
	}
	if ref.Group != nil && string(*ref.Group) != resource.GatewayGroup {
		return false
	}
	ns := routeNS
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	return ns == g.ns && string(ref.Name) == g.gw.Name
}

// routes attaches every route that names the Gateway and records its
// status.
func (g *gatewayCompiler) routes() {
	var statuses []*RouteStatus
	for _, r := range g.allRoutes() {
		var st *RouteStatus
		resolved := g.resolvedRefs(r)
		for _, ref := range r.parents {
			if !g.namesGateway(ref, r.ns) {
				continue
			}
			if st == nil {
				st = &RouteStatus{Kind: r.kind, Namespace: r.ns, Name: r.name}
				statuses = append(statuses, st)
			}
			ps := &RouteParentStatus{ParentRef: ParentRef{Namespace: g.ns, Name: g.gw.Name}}
			if ref.SectionName != nil {
				ps.ParentRef.SectionName = string(*ref.SectionName)
			}
			if ref.Port != nil {
				ps.ParentRef.Port = *ref.Port
			}
			ps.Conditions = append(ps.Conditions, g.attach(r, ref), resolved)
			st.Parents = append(st.Parents, ps)
		}
	}
	sort.SliceStable(statuses, func(i, j int) bool {
		a, b := statuses[i], statuses[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	g.out.Status.Routes = statuses
}

// attach attaches r to the listeners ref selects and returns the Accepted
// condition: why it attaches nowhere, if it does not.
func (g *gatewayCompiler) attach(r *routeObj, ref gwv1.ParentReference) Condition {
	matched, allowed := 0, 0
	var refusals []string
	accepted := 0
	for _, l := range g.ls {
		if ref.SectionName != nil && string(*ref.SectionName) != string(l.spec.Name) {
			continue
		}
		if ref.Port != nil && *ref.Port != l.spec.Port {
			continue
		}
		matched++
		if !contains(l.kinds, r.kind) {
			refusals = append(refusals, fmt.Sprintf("listener %s takes %s, not %s", l.spec.Name, strings.Join(l.kinds, ", "), r.kind))
			continue
		}
		if !g.namespaceAllowed(l, r.ns) {
			refusals = append(refusals, fmt.Sprintf("listener %s does not take routes from namespace %s (allowedRoutes.namespaces.from: %s)", l.spec.Name, r.ns, l.from))
			continue
		}
		if r.kind == resource.KindTCPRoute && len(l.routes) > 0 {
			refusals = append(refusals, fmt.Sprintf("listener %s already carries TCPRoute %s (a TCP listener carries one route)", l.spec.Name, l.routes[0].route.key()))
			continue
		}
		allowed++
		hosts := r.hostnames
		if r.kind != resource.KindTCPRoute {
			var ok bool
			if hosts, ok = intersectHostnames(l.out.Hostname, r.hostnames); !ok {
				continue
			}
		}
		if !attachedTo(l, r) {
			l.routes = append(l.routes, &attachment{route: r, hostnames: hosts})
		}
		accepted++
	}
	accept := string(gwv1.RouteConditionAccepted)
	switch {
	case accepted > 0:
		return cond(accept, true, string(gwv1.RouteReasonAccepted), "")
	case matched == 0:
		what := "no listener"
		switch {
		case ref.SectionName != nil && ref.Port != nil:
			what = fmt.Sprintf("no listener named %q on port %d", *ref.SectionName, *ref.Port)
		case ref.SectionName != nil:
			what = fmt.Sprintf("no listener named %q", *ref.SectionName)
		case ref.Port != nil:
			what = fmt.Sprintf("no listener on port %d", *ref.Port)
		}
		return cond(accept, false, string(gwv1.RouteReasonNoMatchingParent), fmt.Sprintf("Gateway %s/%s has %s", g.ns, g.gw.Name, what))
	case allowed == 0:
		return cond(accept, false, string(gwv1.RouteReasonNotAllowedByListeners), strings.Join(refusals, "; "))
	}
	return cond(accept, false, string(gwv1.RouteReasonNoMatchingListenerHostname),
		fmt.Sprintf("route hostnames %s match no listener hostname", strings.Join(r.hostnames, ", ")))
}

func attachedTo(l *listenerState, r *routeObj) bool {
	for _, a := range l.routes {
		if a.route == r {
			return true
		}
	}
	return false
}

func (g *gatewayCompiler) namespaceAllowed(l *listenerState, ns string) bool {
	switch l.from {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSame, "":
		return ns == g.ns
	}
	return false
}

// resolvedRefs is a route's ResolvedRefs condition: every backend is a
// Service that exists, with the port, and may be referred to.
func (g *gatewayCompiler) resolvedRefs(r *routeObj) Condition {
	var reason string
	var msgs []string
	for _, b := range r.backends {
		rs, msg := g.checkBackend(r.kind, r.ns, b)
		if rs == "" {
			continue
		}
		if reason == "" {
			reason = rs
		}
		msgs = append(msgs, msg)
	}
	if reason == "" {
		return cond(string(gwv1.RouteConditionResolvedRefs), true, string(gwv1.RouteReasonResolvedRefs), "")
	}
	return cond(string(gwv1.RouteConditionResolvedRefs), false, reason, strings.Join(msgs, "; "))
}

// checkBackend returns the reason and message of what is wrong with a
// backend reference, or "".
func (g *gatewayCompiler) checkBackend(routeKind, routeNS string, b gwv1.BackendObjectReference) (string, string) {
	group, kind := "", resource.KindService
	if b.Group != nil {
		group = string(*b.Group)
	}
	if b.Kind != nil {
		kind = string(*b.Kind)
	}
	if !isServiceRef(group, kind) {
		return string(gwv1.RouteReasonInvalidKind), fmt.Sprintf("backend %s %q: only Services are supported", kind, b.Name)
	}
	ns := routeNS
	if b.Namespace != nil && *b.Namespace != "" {
		ns = string(*b.Namespace)
	}
	if !g.permitted(routeKind, routeNS, resource.KindService, ns, string(b.Name)) {
		return string(gwv1.RouteReasonRefNotPermitted), fmt.Sprintf("Service %s/%s: no ReferenceGrant in %s lets %ss of %s refer to it", ns, b.Name, ns, routeKind, routeNS)
	}
	svc := g.services[g.key(ns, string(b.Name))]
	if svc == nil {
		return string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("Service %s/%s not found", ns, b.Name)
	}
	if b.Port != nil && findPort(svc, *b.Port) == nil {
		return string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("Service %s/%s has no port %d", ns, b.Name, *b.Port)
	}
	return "", ""
}

// gatewayConditions: accepted and programmed while any listener is served.
func (g *gatewayCompiler) gatewayConditions() []Condition {
	served := 0
	for _, l := range g.ls {
		if l.ok {
			served++
		}
	}
	if served == 0 {
		msg := "no listener can be served; see the listeners' conditions"
		return []Condition{cond(string(gwv1.GatewayConditionAccepted), false, string(gwv1.GatewayReasonListenersNotValid), msg),
			cond(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonInvalid), msg)}
	}
	return []Condition{cond(string(gwv1.GatewayConditionAccepted), true, string(gwv1.GatewayReasonAccepted), ""),
		cond(string(gwv1.GatewayConditionProgrammed), true, string(gwv1.GatewayReasonProgrammed), "")}
}

func cond(typ string, ok bool, reason, msg string) Condition {
	s := "False"
	if ok {
		s = "True"
	}
	return Condition{Type: typ, Status: s, Reason: reason, Message: msg}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// intersectHostnames is the Gateway API's hostname intersection of a
// listener (empty: any) and a route (empty: any). ok is false when they
// share no host. A wildcard covers one or more labels.
func intersectHostnames(listener string, route []string) ([]string, bool) {
	if listener == "" {
		return lower(route), true
	}
	if len(route) == 0 {
		return []string{listener}, true
	}
	var out []string
	for _, h := range lower(route) {
		var pick string
		switch {
		case h == listener:
			pick = h
		case strings.HasPrefix(listener, "*.") && wildcardCovers(listener, h):
			pick = h
		case strings.HasPrefix(h, "*.") && wildcardCovers(h, listener):
			pick = listener
		}
		if pick != "" && !contains(out, pick) {
			out = append(out, pick)
		}
	}
	return out, len(out) > 0
}

func wildcardCovers(wildcard, host string) bool {
	suffix := wildcard[1:] // ".example.com"
	return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
}

func lower(hs []string) []string {
	var out []string
	for _, h := range hs {
		out = append(out, strings.ToLower(h))
	}
	return out
}

// gatewayVersion hashes the Gateway without its version.
func gatewayVersion(g *Gateway) (string, error) {
	cp := *g
	cp.Version = ""
	b, err := json.Marshal(&cp)
	if err != nil {
		return "", fmt.Errorf("compile: hashing gateway: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16], nil
}
