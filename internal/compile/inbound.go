package compile

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"weft.dev/weft/internal/resource"
)

// Self describes the workload a proxy stands for, so that the policies
// about its inbound (mTLS mode, authorization) can be picked out.
type Self struct {
	Namespace string
	Labels    map[string]string
}

// Inbound is the config of a proxy's inbound side.
type Inbound struct {
	// MTLS is STRICT (plaintext refused) or PERMISSIVE.
	MTLS string `json:"mtls"`
	// Authz holds the AuthorizationPolicies that apply to this workload,
	// DENY ones first; the data plane evaluates them in order.
	Authz []*AuthzPolicy `json:"authz,omitempty"`
}

type AuthzPolicy struct {
	Name   string       `json:"name"` // namespace/name
	Action string       `json:"action"`
	Rules  []*AuthzRule `json:"rules"`
}

type AuthzRule struct {
	From []*AuthzSource    `json:"from,omitempty"`
	To   []*AuthzOperation `json:"to,omitempty"`
	When []*AuthzCondition `json:"when,omitempty"`
}

type AuthzSource struct {
	Principals []string `json:"principals,omitempty"`
	// ServiceAccounts are "namespace/name" or "*/name".
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
	Namespaces      []string `json:"namespaces,omitempty"`
}

type AuthzOperation struct {
	Methods []string `json:"methods,omitempty"`
	Paths   []string `json:"paths,omitempty"`
	Ports   []int32  `json:"ports,omitempty"`
}

type AuthzCondition struct {
	Header string   `json:"header"`
	Values []string `json:"values"`
}

// inbound picks the inbound policies of self: namespace-wide ones (no
// targetRef) and those targeting a Service whose selector matches self.
func inbound(set *resource.Set, self *Self) *Inbound {
	ns := self.Namespace
	if ns == "" {
		ns = resource.DefaultNamespace
	}
	selected := map[string]bool{}
	for _, svc := range set.Services {
		if svc != nil && svc.Namespace == ns && selectsSelf(svc, self.Labels) {
			selected[svc.Name] = true
		}
	}
	applies := func(policyNS string, ref *resource.PolicyTargetRef) bool {
		if policyNS != ns {
			return false
		}
		return ref == nil || selected[ref.Name]
	}

	in := &Inbound{MTLS: resource.MTLSStrict}
	// A Service-targeted PeerAuthentication beats a namespace-wide one; among
	// equals the oldest wins, as for TrafficPolicy.
	var mode *resource.PeerAuthentication
	for _, pa := range set.PeerAuthentications {
		if pa == nil || !applies(pa.Namespace, pa.Spec.TargetRef) {
			continue
		}
		if mode == nil || morePrecise(pa, mode) {
			mode = pa
		}
	}
	if mode != nil {
		in.MTLS = mode.Spec.Mode
	}

	var deny, allow []*AuthzPolicy
	for _, ap := range set.AuthorizationPolicies {
		if ap == nil || !applies(ap.Namespace, ap.Spec.TargetRef) {
			continue
		}
		p := authzPolicy(ap)
		if p.Action == resource.ActionDeny {
			deny = append(deny, p)
		} else {
			allow = append(allow, p)
		}
	}
	byName := func(ps []*AuthzPolicy) {
		sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	}
	byName(deny)
	byName(allow)
	in.Authz = append(deny, allow...)
	return in
}

func selectsSelf(svc *corev1.Service, labels map[string]string) bool {
	return len(svc.Spec.Selector) > 0 && selects(svc.Spec.Selector, labels)
}

func morePrecise(a, b *resource.PeerAuthentication) bool {
	if (a.Spec.TargetRef != nil) != (b.Spec.TargetRef != nil) {
		return a.Spec.TargetRef != nil
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

func authzPolicy(ap *resource.AuthorizationPolicy) *AuthzPolicy {
	p := &AuthzPolicy{Name: ap.Namespace + "/" + ap.Name, Action: ap.Spec.Action, Rules: []*AuthzRule{}}
	if p.Action == "" {
		p.Action = resource.ActionAllow
	}
	for _, r := range ap.Spec.Rules {
		cr := &AuthzRule{}
		for _, f := range r.From {
			src := &AuthzSource{Principals: f.Principals, Namespaces: f.Namespaces}
			for _, sa := range f.ServiceAccounts {
				if !strings.Contains(sa, "/") {
					sa = "*/" + sa
				}
				src.ServiceAccounts = append(src.ServiceAccounts, sa)
			}
			cr.From = append(cr.From, src)
		}
		for _, t := range r.To {
			cr.To = append(cr.To, &AuthzOperation{Methods: t.Methods, Paths: t.Paths, Ports: t.Ports})
		}
		for _, w := range r.When {
			cr.When = append(cr.When, &AuthzCondition{Header: w.Header, Values: w.Values})
		}
		p.Rules = append(p.Rules, cr)
	}
	return p
}
