package resource

import (
	"fmt"
	"strings"
)

func init() {
	kindValidators[KindAuthorizationPolicy] = func(v *validator, o any) { validateAuthorizationPolicy(v, o.(*AuthorizationPolicy)) }
	kindValidators[KindPeerAuthentication] = func(v *validator, o any) { validatePeerAuthentication(v, o.(*PeerAuthentication)) }
}

func validateAuthorizationPolicy(v *validator, p *AuthorizationPolicy) {
	s := p.Spec
	if s.TargetRef != nil {
		validateTargetRef(v, "spec.targetRef", *s.TargetRef)
	}
	if s.Action != "" {
		v.oneOf("spec.action", s.Action, ActionAllow, ActionDeny)
	}
	for i, r := range s.Rules {
		f := fmt.Sprintf("spec.rules[%d]", i)
		for j, src := range r.From {
			ff := fmt.Sprintf("%s.from[%d]", f, j)
			if len(src.Principals)+len(src.ServiceAccounts)+len(src.Namespaces) == 0 {
				v.add(ff, "empty source: name principals, serviceAccounts or namespaces (leave out from to match any caller)")
			}
			for k, pr := range src.Principals {
				if !strings.HasPrefix(pr, "spiffe://") && pr != "*" {
					v.addf(fmt.Sprintf("%s.principals[%d]", ff, k), "must be a SPIFFE ID (spiffe://trust-domain/ns/NS/sa/SA), optionally ending in *, got %q", pr)
				}
			}
			for k, sa := range src.ServiceAccounts {
				fk := fmt.Sprintf("%s.serviceAccounts[%d]", ff, k)
				ns, name, ok := strings.Cut(sa, "/")
				if ok {
					v.dnsLabel(fk, ns)
				} else {
					name = ns
				}
				v.dnsSubdomain(fk, name)
			}
			for k, ns := range src.Namespaces {
				v.dnsLabel(fmt.Sprintf("%s.namespaces[%d]", ff, k), ns)
			}
		}
		for j, op := range r.To {
			ff := fmt.Sprintf("%s.to[%d]", f, j)
			if len(op.Methods)+len(op.Paths)+len(op.Ports) == 0 {
				v.add(ff, "empty operation: name methods, paths or ports (leave out to to match any operation)")
			}
			for k, m := range op.Methods {
				v.oneOf(fmt.Sprintf("%s.methods[%d]", ff, k), m, httpMethods...)
			}
			for k, pth := range op.Paths {
				validateAuthzPattern(v, fmt.Sprintf("%s.paths[%d]", ff, k), pth, true)
			}
			for k, port := range op.Ports {
				v.portNumber(fmt.Sprintf("%s.ports[%d]", ff, k), port)
			}
		}
		for j, c := range r.When {
			ff := fmt.Sprintf("%s.when[%d]", f, j)
			if c.Header == "" {
				v.add(ff+".header", "required")
			} else {
				v.headerName(ff+".header", c.Header)
			}
			if len(c.Values) == 0 {
				v.add(ff+".values", "required: at least one value")
			}
			for k, val := range c.Values {
				validateAuthzPattern(v, fmt.Sprintf("%s.values[%d]", ff, k), val, false)
			}
		}
	}
}

// validateAuthzPattern accepts exact values, "prefix*", "*suffix" and "*".
func validateAuthzPattern(v *validator, f, p string, path bool) {
	if p == "" {
		v.add(f, "must not be empty")
		return
	}
	inner := strings.TrimSuffix(strings.TrimPrefix(p, "*"), "*")
	if strings.Contains(inner, "*") || (strings.HasPrefix(p, "*") && strings.HasSuffix(p, "*") && p != "*") {
		v.addf(f, "%q: \"*\" may only stand at the start or the end", p)
		return
	}
	if path && !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "*") {
		v.addf(f, "path %q must start with \"/\" or \"*\"", p)
	}
}

func validatePeerAuthentication(v *validator, p *PeerAuthentication) {
	if p.Spec.TargetRef != nil {
		validateTargetRef(v, "spec.targetRef", *p.Spec.TargetRef)
	}
	if p.Spec.Mode == "" {
		v.add("spec.mode", "required: STRICT or PERMISSIVE")
		return
	}
	v.oneOf("spec.mode", p.Spec.Mode, MTLSStrict, MTLSPermissive)
}
