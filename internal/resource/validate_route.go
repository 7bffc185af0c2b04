package resource

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func init() {
	kindValidators[KindHTTPRoute] = func(v *validator, o any) { validateHTTPRoute(v, o.(*gwv1.HTTPRoute)) }
	kindValidators[KindGRPCRoute] = func(v *validator, o any) { validateGRPCRoute(v, o.(*gwv1.GRPCRoute)) }
	kindValidators[KindTCPRoute] = func(v *validator, o any) { validateTCPRoute(v, o.(*gwv1.TCPRoute)) }
}

func validateTCPRoute(v *validator, r *gwv1.TCPRoute) {
	validateParentRefs(v, r.Spec.ParentRefs)
	// A TCP connection carries nothing to match on, so a rule without
	// backends could only drop connections.
	if len(r.Spec.Rules) == 0 {
		v.add("spec.rules", "required: a TCPRoute needs at least one rule with backendRefs")
	}
	names := map[string]int{}
	for i, rule := range r.Spec.Rules {
		f := idx("spec.rules", i)
		validateRuleName(v, f, rule.Name, names, i)
		if len(rule.BackendRefs) == 0 {
			v.add(f+".backendRefs", "required: a TCPRoute rule needs at least one backendRef")
		}
		for j, b := range rule.BackendRefs {
			validateBackendRef(v, idx(f+".backendRefs", j), b)
		}
	}
}

// validateParentRefs checks what a route attaches to: a Service makes it a
// mesh route (GAMMA), a Gateway an edge route. Gateway API defaults an unset
// kind to Gateway, and so does weft.
func validateParentRefs(v *validator, refs []gwv1.ParentReference) {
	if len(refs) == 0 {
		v.add("spec.parentRefs", "required: attach the route to a Service (mesh route) or a Gateway (edge route)")
	}
	seen := map[string]int{}
	for i, r := range refs {
		f := idx("spec.parentRefs", i)
		kind := "Gateway"
		if r.Kind != nil {
			kind = string(*r.Kind)
		}
		switch kind {
		case "Service":
			if r.Group != nil && *r.Group != "" && *r.Group != "core" {
				v.addf(f+".group", "must be \"\" (the core group) for kind Service, got %q", *r.Group)
			}
			v.dnsLabel(f+".name", string(r.Name))
		case "Gateway":
			if r.Group != nil && *r.Group != gatewayGroup {
				v.addf(f+".group", "must be %s for kind Gateway, got %q", gatewayGroup, *r.Group)
			}
			if r.Name == "" {
				v.add(f+".name", "required")
			} else {
				v.dnsSubdomain(f+".name", string(r.Name))
			}
		default:
			v.addf(f+".kind", "unsupported parent kind %q: must be Service (mesh route) or Gateway (edge route)", kind)
		}
		if r.Namespace != nil {
			v.dnsLabel(f+".namespace", string(*r.Namespace))
		}
		if r.SectionName != nil {
			v.dnsSubdomain(f+".sectionName", string(*r.SectionName))
		}
		if r.Port != nil {
			v.portNumber(f+".port", *r.Port)
		}
		key := fmt.Sprintf("%s|%s|%s|%s|%s|%d", deref(r.Group), kind, deref(r.Namespace), r.Name, deref(r.SectionName), deref(r.Port))
		if prev, dup := seen[key]; dup {
			v.addf(f, "duplicate parentRef (same as spec.parentRefs[%d])", prev)
		} else {
			seen[key] = i
		}
	}
}

// validateBackendRef checks a weighted reference to a Service port.
func validateBackendRef(v *validator, f string, b gwv1.BackendRef) {
	validateServiceRef(v, f, b.BackendObjectReference)
	if b.Weight != nil {
		v.inRange(f+".weight", int64(*b.Weight), 0, 1000000)
	}
}

// validateServiceRef checks a backend reference. weft only forwards to
// Services, and a Service has several ports, so the port is required.
func validateServiceRef(v *validator, f string, r gwv1.BackendObjectReference) {
	if r.Group != nil && *r.Group != "" && *r.Group != "core" {
		v.addf(f+".group", "must be \"\" (the core group) for a Service backend, got %q", *r.Group)
	}
	if r.Kind != nil && *r.Kind != "Service" {
		v.addf(f+".kind", "unsupported backend kind %q: weft routes to Services only", *r.Kind)
	}
	v.dnsLabel(f+".name", string(r.Name))
	if r.Namespace != nil {
		v.dnsLabel(f+".namespace", string(*r.Namespace))
	}
	if r.Port == nil {
		v.add(f+".port", "required: the Service port to send to")
	} else {
		v.portNumber(f+".port", *r.Port)
	}
}

func validateRuleName(v *validator, f string, name *gwv1.SectionName, seen map[string]int, i int) {
	if name == nil {
		return
	}
	v.dnsSubdomain(f+".name", string(*name))
	if prev, dup := seen[string(*name)]; dup {
		v.addf(f+".name", "duplicate rule name %q (also spec.rules[%d])", *name, prev)
	} else {
		seen[string(*name)] = i
	}
}

func validateHostnames(v *validator, hosts []gwv1.Hostname) {
	for i, h := range hosts {
		f := idx("spec.hostnames", i)
		s := string(h)
		if _, err := netip.ParseAddr(s); err == nil {
			v.addf(f, "invalid hostname %q: must be a DNS name, not an IP address", s)
			continue
		}
		if msgs := validation.IsDNS1123Subdomain(strings.TrimPrefix(s, "*.")); len(msgs) > 0 {
			v.addf(f, "invalid hostname %q: %s", s, k8sReason(msgs))
		}
	}
}

// gatewayDurationRE is the Gateway API duration format (GEP-2257): whole
// numbers with h, m, s or ms, at most four parts. Go accepts more ("1.5s",
// "-1s", "10us"), which other Gateway API implementations would refuse.
var gatewayDurationRE = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

func gatewayDuration(v *validator, f string, d *gwv1.Duration) (time.Duration, bool) {
	if d == nil {
		return 0, false
	}
	s := string(*d)
	if !gatewayDurationRE.MatchString(s) {
		v.addf(f, "invalid duration %q: use whole numbers with units h, m, s or ms, e.g. \"10s\", \"500ms\" or \"1m30s\"", s)
		return 0, false
	}
	t, err := time.ParseDuration(s)
	if err != nil {
		v.addf(f, "invalid duration %q: %v", s, err)
		return 0, false
	}
	return t, true
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
