package proxy

import (
	"net/http"
	"slices"
	"strings"

	"weft.dev/weft/internal/compile"
)

// ReasonDenied is the x-weft-error of a request an AuthorizationPolicy
// refused.
const ReasonDenied = "denied"

// authorizer evaluates the inbound's AuthorizationPolicies: DENY policies
// first (any match refuses), then, if any ALLOW policy applies, a request
// must match one of them. Built once per config.
type authorizer struct {
	deny, allow []*compile.AuthzPolicy
}

func newAuthorizer(in *compile.Inbound) *authorizer {
	a := &authorizer{}
	if in == nil {
		return a
	}
	for _, p := range in.Authz {
		if p.Action == "DENY" {
			a.deny = append(a.deny, p)
		} else {
			a.allow = append(a.allow, p)
		}
	}
	return a
}

// caller is what policies know of a request's source.
type caller struct {
	principal string // SPIFFE ID; empty for plaintext callers
	namespace string
	account   string
}

func callerOf(peer *Peer) caller {
	if peer == nil {
		return caller{}
	}
	c := caller{principal: peer.ID}
	// spiffe://<td>/ns/<ns>/sa/<sa>
	if rest, ok := strings.CutPrefix(peer.ID, "spiffe://"); ok {
		if _, path, ok := strings.Cut(rest, "/"); ok {
			seg := strings.Split(path, "/")
			if len(seg) == 4 && seg[0] == "ns" && seg[2] == "sa" {
				c.namespace, c.account = seg[1], seg[3]
			}
		}
	}
	return c
}

// decide returns "" when the request may pass, else the refusing policy's
// name. r is nil for opaque TCP, where only sources and ports can match.
func (a *authorizer) decide(c caller, port int32, r *http.Request) string {
	for _, p := range a.deny {
		if policyMatches(p, c, port, r, true) {
			return p.Name
		}
	}
	if len(a.allow) == 0 {
		return ""
	}
	for _, p := range a.allow {
		if policyMatches(p, c, port, r, false) {
			return ""
		}
	}
	return "no ALLOW policy matched"
}

// policyMatches: any rule. For TCP, conditions that only HTTP has (methods,
// paths, headers) cannot be checked: a DENY rule then matches (fail
// closed) and an ALLOW rule does not.
func policyMatches(p *compile.AuthzPolicy, c caller, port int32, r *http.Request, deny bool) bool {
	for _, rule := range p.Rules {
		if ruleMatches(rule, c, port, r, deny) {
			return true
		}
	}
	return false
}

func ruleMatches(rule *compile.AuthzRule, c caller, port int32, r *http.Request, deny bool) bool {
	if len(rule.From) > 0 && !anySource(rule.From, c) {
		return false
	}
	if len(rule.To) > 0 && !anyOperation(rule.To, port, r, deny) {
		return false
	}
	for _, w := range rule.When {
		if r == nil {
			if !deny {
				return false
			}
			continue
		}
		if !anyPattern(w.Values, r.Header.Get(w.Header)) {
			return false
		}
	}
	return true
}

func anySource(srcs []*compile.AuthzSource, c caller) bool {
	for _, s := range srcs {
		if len(s.Principals) > 0 && !anyPattern(s.Principals, c.principal) {
			continue
		}
		if len(s.Namespaces) > 0 && !slices.Contains(s.Namespaces, c.namespace) {
			continue
		}
		if len(s.ServiceAccounts) > 0 && !anyAccount(s.ServiceAccounts, c) {
			continue
		}
		if c.principal == "" {
			// A plaintext caller has no identity to match a source with.
			continue
		}
		return true
	}
	return false
}

func anyAccount(accounts []string, c caller) bool {
	for _, a := range accounts {
		ns, name, _ := strings.Cut(a, "/")
		if name == c.account && (ns == "*" || ns == c.namespace) {
			return true
		}
	}
	return false
}

func anyOperation(ops []*compile.AuthzOperation, port int32, r *http.Request, deny bool) bool {
	for _, op := range ops {
		if len(op.Ports) > 0 && !slices.Contains(op.Ports, port) {
			continue
		}
		if r == nil {
			if (len(op.Methods) > 0 || len(op.Paths) > 0) && !deny {
				continue
			}
			return true
		}
		if len(op.Methods) > 0 && !slices.Contains(op.Methods, r.Method) {
			continue
		}
		if len(op.Paths) > 0 && !anyPattern(op.Paths, r.URL.Path) {
			continue
		}
		return true
	}
	return false
}

// anyPattern matches exact values, "prefix*", "*suffix" and "*".
func anyPattern(patterns []string, v string) bool {
	for _, p := range patterns {
		switch {
		case p == "*":
			if v != "" {
				return true
			}
		case strings.HasSuffix(p, "*"):
			if strings.HasPrefix(v, p[:len(p)-1]) {
				return true
			}
		case strings.HasPrefix(p, "*"):
			if strings.HasSuffix(v, p[1:]) {
				return true
			}
		case p == v:
			return true
		}
	}
	return false
}
