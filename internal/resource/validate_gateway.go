package resource

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func init() {
	kindValidators[KindGateway] = func(v *validator, o any) { validateGateway(v, o.(*gwv1.Gateway)) }
	kindValidators[KindTLSRoute] = func(v *validator, o any) { validateTLSRoute(v, o.(*gwv1.TLSRoute)) }
	kindValidators[KindReferenceGrant] = func(v *validator, o any) { validateReferenceGrant(v, o.(*gwv1.ReferenceGrant)) }
	kindValidators[KindSecret] = func(v *validator, o any) { validateSecret(v, o.(*corev1.Secret)) }
	kindValidators[KindRequestAuthentication] = func(v *validator, o any) { validateRequestAuthentication(v, o.(*RequestAuthentication)) }
	kindValidators[KindRateLimitPolicy] = func(v *validator, o any) { validateRateLimitPolicy(v, o.(*RateLimitPolicy)) }
}

// Listener protocols weft serves. UDP and implementation-specific
// protocols are refused rather than ignored.
var listenerProtocols = []string{string(gwv1.HTTPProtocolType), string(gwv1.HTTPSProtocolType), string(gwv1.TLSProtocolType), string(gwv1.TCPProtocolType)}

// routeKinds are the route kinds a listener can take.
var routeKinds = []string{KindHTTPRoute, KindGRPCRoute, KindTLSRoute, KindTCPRoute}

func validateGateway(v *validator, g *gwv1.Gateway) {
	s := g.Spec
	if s.GatewayClassName == "" {
		v.add("spec.gatewayClassName", "required (Kubernetes requires it; weft serves any class)")
	}
	if len(s.Listeners) == 0 {
		v.add("spec.listeners", "required: at least one listener")
	}
	if len(s.Addresses) > 0 {
		v.add("spec.addresses", "not supported by weft: the gateway listens on the address given by `weft gateway --bind`")
	}
	if s.TLS != nil {
		v.add("spec.tls", "not supported by weft: no client certificate validation or backend TLS at the edge yet")
	}
	validateBodyLimit(v, g.Annotations)
	names := map[string]int{}
	combos := map[string]int{}
	for i, l := range s.Listeners {
		f := idx("spec.listeners", i)
		if l.Name == "" {
			v.add(f+".name", "required")
		} else {
			v.dnsSubdomain(f+".name", string(l.Name))
			if prev, dup := names[string(l.Name)]; dup {
				v.addf(f+".name", "duplicate listener name %q (also spec.listeners[%d])", l.Name, prev)
			} else {
				names[string(l.Name)] = i
			}
		}
		v.portNumber(f+".port", l.Port)
		proto := string(l.Protocol)
		if !v.oneOf(f+".protocol", proto, listenerProtocols...) {
			continue
		}
		if l.Hostname != nil {
			if proto == string(gwv1.TCPProtocolType) {
				v.add(f+".hostname", "must not be set for protocol TCP: a TCP connection names no host")
			} else {
				validateHostname(v, f+".hostname", string(*l.Hostname))
			}
		}
		combo := fmt.Sprintf("%d/%s/%s", l.Port, proto, deref(l.Hostname))
		if prev, dup := combos[combo]; dup {
			v.addf(f, "same port, protocol and hostname as spec.listeners[%d]: they must be unique", prev)
		} else {
			combos[combo] = i
		}
		validateListenerTLS(v, f+".tls", proto, l.TLS)
		if ar := l.AllowedRoutes; ar != nil {
			if ns := ar.Namespaces; ns != nil && ns.From != nil {
				from := string(*ns.From)
				if v.oneOf(f+".allowedRoutes.namespaces.from", from, string(gwv1.NamespacesFromSame), string(gwv1.NamespacesFromAll), string(gwv1.NamespacesFromNone), string(gwv1.NamespacesFromSelector)) &&
					from == string(gwv1.NamespacesFromSelector) {
					v.add(f+".allowedRoutes.namespaces.from", "Selector is not supported by weft (universal mode has no Namespace objects to select): use Same, All or None")
				}
			}
			for j, k := range ar.Kinds {
				kf := idx(f+".allowedRoutes.kinds", j)
				if k.Group != nil && *k.Group != gatewayGroup {
					v.addf(kf+".group", "must be %s, got %q", gatewayGroup, *k.Group)
				}
				v.oneOf(kf+".kind", string(k.Kind), routeKinds...)
			}
		}
	}
}

func validateListenerTLS(v *validator, f, proto string, t *gwv1.ListenerTLSConfig) {
	switch proto {
	case string(gwv1.HTTPProtocolType), string(gwv1.TCPProtocolType):
		if t != nil {
			v.addf(f, "must not be set for protocol %s", proto)
		}
		return
	}
	if t == nil {
		v.addf(f, "required for protocol %s", proto)
		return
	}
	mode := gwv1.TLSModeTerminate
	if t.Mode != nil {
		mode = *t.Mode
	}
	if !v.oneOf(f+".mode", string(mode), string(gwv1.TLSModeTerminate), string(gwv1.TLSModePassthrough)) {
		return
	}
	if proto == string(gwv1.HTTPSProtocolType) && mode != gwv1.TLSModeTerminate {
		v.add(f+".mode", "must be Terminate for protocol HTTPS (use protocol TLS for Passthrough)")
	}
	if mode == gwv1.TLSModeTerminate && len(t.CertificateRefs) == 0 {
		v.add(f+".certificateRefs", "required with mode Terminate: the Secrets holding the certificates to serve")
	}
	if mode == gwv1.TLSModePassthrough && len(t.CertificateRefs) > 0 {
		v.add(f+".certificateRefs", "must be empty with mode Passthrough: the backend terminates TLS")
	}
	for i, r := range t.CertificateRefs {
		rf := idx(f+".certificateRefs", i)
		if r.Group != nil && *r.Group != "" && *r.Group != "core" {
			v.addf(rf+".group", "must be \"\" (the core group), got %q", *r.Group)
		}
		if r.Kind != nil && *r.Kind != KindSecret {
			v.addf(rf+".kind", "must be Secret, got %q", *r.Kind)
		}
		v.dnsSubdomain(rf+".name", string(r.Name))
		if r.Namespace != nil {
			v.dnsLabel(rf+".namespace", string(*r.Namespace))
		}
	}
	if len(t.Options) > 0 {
		v.add(f+".options", "not supported by weft")
	}
}

func validateHostname(v *validator, f, h string) {
	if strings.Contains(strings.TrimPrefix(h, "*."), "*") {
		v.addf(f, "invalid hostname %q: a wildcard may only be the whole first label (*.example.com)", h)
		return
	}
	v.dnsSubdomain(f, strings.TrimPrefix(h, "*."))
}

func validateTLSRoute(v *validator, r *gwv1.TLSRoute) {
	validateParentRefs(v, r.Spec.ParentRefs)
	for i, p := range r.Spec.ParentRefs {
		if p.Kind != nil && *p.Kind != KindGateway {
			v.addf(idx("spec.parentRefs", i)+".kind", "a TLSRoute attaches to a Gateway, not a %s", *p.Kind)
		}
	}
	validateHostnames(v, r.Spec.Hostnames)
	if len(r.Spec.Rules) == 0 {
		v.add("spec.rules", "required: a TLSRoute needs a rule with backendRefs")
	}
	names := map[string]int{}
	for i, rule := range r.Spec.Rules {
		f := idx("spec.rules", i)
		validateRuleName(v, f, rule.Name, names, i)
		if len(rule.BackendRefs) == 0 {
			v.add(f+".backendRefs", "required: a TLSRoute rule needs at least one backendRef")
		}
		for j, b := range rule.BackendRefs {
			validateBackendRef(v, idx(f+".backendRefs", j), b)
		}
	}
}

func validateReferenceGrant(v *validator, g *gwv1.ReferenceGrant) {
	if len(g.Spec.From) == 0 {
		v.add("spec.from", "required: at least one source")
	}
	if len(g.Spec.To) == 0 {
		v.add("spec.to", "required: at least one target")
	}
	for i, fr := range g.Spec.From {
		f := idx("spec.from", i)
		if fr.Kind == "" {
			v.add(f+".kind", "required")
		}
		v.dnsLabel(f+".namespace", string(fr.Namespace))
	}
	for i, to := range g.Spec.To {
		f := idx("spec.to", i)
		if to.Kind == "" {
			v.add(f+".kind", "required")
		}
		if to.Name != nil {
			v.dnsSubdomain(f+".name", string(*to.Name))
		}
	}
}

// validateSecret accepts TLS Secrets whose certificate and key parse and
// belong together. Messages never quote the data.
func validateSecret(v *validator, s *corev1.Secret) {
	if s.Type != corev1.SecretTypeTLS {
		v.addf("type", "must be %s: weft reads Secrets only as gateway certificates, got %q", corev1.SecretTypeTLS, s.Type)
		return
	}
	cert, key := SecretTLS(s)
	if len(cert) == 0 {
		v.addf("data", "%s is required (base64 in data, or plain in stringData)", corev1.TLSCertKey)
	}
	if len(key) == 0 {
		v.addf("data", "%s is required (base64 in data, or plain in stringData)", corev1.TLSPrivateKeyKey)
	}
	if len(cert) == 0 || len(key) == 0 {
		return
	}
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		v.addf("data", "%s and %s are not a usable certificate and key: %s", corev1.TLSCertKey, corev1.TLSPrivateKeyKey, strings.TrimPrefix(err.Error(), "tls: "))
	}
}

// SecretTLS returns the certificate chain and key of a TLS Secret;
// stringData wins over data, as the API server merges them.
func SecretTLS(s *corev1.Secret) (cert, key []byte) {
	cert, key = s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	if c, ok := s.StringData[corev1.TLSCertKey]; ok {
		cert = []byte(c)
	}
	if k, ok := s.StringData[corev1.TLSPrivateKeyKey]; ok {
		key = []byte(k)
	}
	return cert, key
}

// validateEdgeTargetRef checks the target of an edge policy: a Gateway or
// a route attached to one.
func validateEdgeTargetRef(v *validator, f string, t PolicyTargetRef) {
	switch t.Kind {
	case "":
		v.add(f+".kind", "required: Gateway, HTTPRoute or GRPCRoute")
	case KindGateway, KindHTTPRoute, KindGRPCRoute:
		if t.Group != "" && t.Group != gatewayGroup {
			v.addf(f+".group", "must be %s for kind %s, got %q", gatewayGroup, t.Kind, t.Group)
		}
	case KindService:
		v.add(f+".kind", "Service targets are not enforced yet (only the gateway enforces this policy): target a Gateway, HTTPRoute or GRPCRoute")
	default:
		v.addf(f+".kind", "unsupported target kind %q: must be Gateway, HTTPRoute or GRPCRoute", t.Kind)
	}
	if t.Name == "" {
		v.add(f+".name", "required")
	} else {
		v.dnsSubdomain(f+".name", t.Name)
	}
}

func validateRequestAuthentication(v *validator, p *RequestAuthentication) {
	validateEdgeTargetRef(v, "spec.targetRef", p.Spec.TargetRef)
	if len(p.Spec.JWTRules) == 0 {
		v.add("spec.jwtRules", "required: at least one issuer to trust")
	}
	for i, r := range p.Spec.JWTRules {
		f := idx("spec.jwtRules", i)
		if r.Issuer == "" {
			v.add(f+".issuer", "required")
		}
		n := 0
		for _, set := range []bool{r.JWKS != "", r.JWKSFile != "", r.JWKSURI != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			v.addf(f, "set exactly one of jwks, jwksFile, jwksURI (%d are set)", n)
		}
		if r.JWKS != "" {
			var set struct {
				Keys []json.RawMessage `json:"keys"`
			}
			if err := json.Unmarshal([]byte(r.JWKS), &set); err != nil {
				v.addf(f+".jwks", "not a JSON Web Key Set: %v", err)
			} else if len(set.Keys) == 0 {
				v.add(f+".jwks", "the key set has no keys")
			}
		}
		if r.JWKSURI != "" {
			u, err := url.Parse(r.JWKSURI)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				v.addf(f+".jwksURI", "must be an http:// or https:// URL, got %q", r.JWKSURI)
			}
		}
		v.positive(f+".cacheDuration", r.CacheDuration)
		for j, h := range r.FromHeaders {
			v.headerName(idx(f+".fromHeaders", j)+".name", h.Name)
		}
		for j, q := range r.FromParams {
			if q == "" {
				v.add(idx(f+".fromParams", j), "must not be empty")
			}
		}
		seen := map[string]int{}
		for j, c := range r.ClaimsToHeaders {
			cf := idx(f+".claimsToHeaders", j)
			if c.Claim == "" {
				v.add(cf+".claim", "required")
			}
			v.headerName(cf+".header", c.Header)
			key := strings.ToLower(c.Header)
			if prev, dup := seen[key]; dup && key != "" {
				v.addf(cf+".header", "header %q is also set by claimsToHeaders[%d]", c.Header, prev)
			} else {
				seen[key] = j
			}
		}
	}
}

var rateLimitKeys = []string{RateLimitKeyClientAddress, RateLimitKeyHeader, RateLimitKeyRoute}

func validateRateLimitPolicy(v *validator, p *RateLimitPolicy) {
	validateEdgeTargetRef(v, "spec.targetRef", p.Spec.TargetRef)
	if len(p.Spec.Limits) == 0 {
		v.add("spec.limits", "required: at least one limit")
	}
	for i, l := range p.Spec.Limits {
		f := idx("spec.limits", i)
		if l.Requests < 1 {
			v.addf(f+".requests", "must be at least 1, got %d", l.Requests)
		}
		if l.Period.Duration <= 0 {
			v.addf(f+".period", "required and greater than 0, e.g. 1s or 1m (got %s)", l.Period.Duration)
		}
		v.nonNegative(f+".burst", l.Burst)
		v.nonNegative(f+".maxKeys", int64(l.MaxKeys))
		if l.Key != "" {
			v.oneOf(f+".key", l.Key, rateLimitKeys...)
		}
		switch {
		case l.Key == RateLimitKeyHeader:
			v.headerName(f+".header", l.Header)
		case l.Header != "":
			v.addf(f+".header", "only used with key Header (key is %q)", l.Key)
		}
	}
}

// validateBodyLimit checks the max-request-body annotation, when present.
func validateBodyLimit(v *validator, annotations map[string]string) {
	s, ok := annotations[AnnotationMaxRequestBody]
	if !ok {
		return
	}
	if _, err := ParseBodyLimit(s); err != nil {
		v.addf(mapField("metadata.annotations", AnnotationMaxRequestBody), "%v", err)
	}
}

// ParseBodyLimit reads a max-request-body annotation: a byte count as a
// Kubernetes quantity ("1Mi", "500k", "65536"), at least 1.
func ParseBodyLimit(s string) (int64, error) {
	q, err := apiresource.ParseQuantity(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: want a byte count such as 65536, 64Ki or 1Mi", s)
	}
	n, ok := q.AsInt64()
	if !ok || n < 1 {
		return 0, fmt.Errorf("invalid size %q: must be a whole number of bytes, at least 1", s)
	}
	return n, nil
}

// validateEdgeRoute checks what only edge routes may use: the CORS filter
// (a browser talks to the edge, not to a sidecar) and the body limit
// annotation.
func validateEdgeRoute(v *validator, r *gwv1.HTTPRoute) {
	validateBodyLimit(v, r.Annotations)
	mesh := false
	for _, p := range r.Spec.ParentRefs {
		if p.Kind != nil && *p.Kind == KindService {
			mesh = true
		}
	}
	for i, rule := range r.Spec.Rules {
		f := idx("spec.rules", i)
		for j, flt := range rule.Filters {
			if flt.Type != gwv1.HTTPRouteFilterCORS {
				continue
			}
			ff := idx(f+".filters", j)
			if mesh {
				v.add(ff+".type", "the CORS filter is applied by the gateway: it needs a route whose parentRefs are all Gateways")
			}
			if flt.CORS == nil {
				v.add(ff+".cors", "required when type is CORS")
				continue
			}
			validateCORS(v, ff+".cors", flt.CORS)
		}
		for j, b := range rule.BackendRefs {
			for k, flt := range b.Filters {
				if flt.Type == gwv1.HTTPRouteFilterCORS {
					v.add(idx(idx(f+".backendRefs", j)+".filters", k)+".type", "CORS is a rule filter, not a backendRef filter")
				}
			}
		}
	}
}

func validateCORS(v *validator, f string, c *gwv1.HTTPCORSFilter) {
	for i, o := range c.AllowOrigins {
		s := string(o)
		if s == "*" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			v.addf(idx(f+".allowOrigins", i), "must be \"*\" or scheme://host[:port] (scheme http or https, host may start with *), got %q", s)
		}
	}
	for i, m := range c.AllowMethods {
		if m != "*" {
			v.oneOf(idx(f+".allowMethods", i), string(m), httpMethods...)
		}
	}
	for i, h := range c.AllowHeaders {
		if h != "*" {
			v.headerName(idx(f+".allowHeaders", i), string(h))
		}
	}
	for i, h := range c.ExposeHeaders {
		if h != "*" {
			v.headerName(idx(f+".exposeHeaders", i), string(h))
		}
	}
	if c.MaxAge < 0 {
		v.addf(f+".maxAge", "must not be negative, got %d", c.MaxAge)
	}
}
