package resource

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Authorization actions.
const (
	ActionAllow = "ALLOW"
	ActionDeny  = "DENY"
)

// mTLS modes of PeerAuthentication.
const (
	MTLSStrict     = "STRICT"
	MTLSPermissive = "PERMISSIVE"
)

// AuthorizationPolicy decides who may call the workloads its target Service
// selects (every workload of the namespace when targetRef is absent). DENY
// policies win; when any ALLOW policy applies to a workload, a request must
// match one of its rules.
type AuthorizationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AuthorizationPolicySpec `json:"spec"`
}

type AuthorizationPolicySpec struct {
	TargetRef *PolicyTargetRef `json:"targetRef,omitempty"`
	// Action is ALLOW (default) or DENY.
	Action string `json:"action,omitempty"`
	// Rules: a request matches the policy when it matches any rule. An
	// ALLOW policy without rules allows nothing.
	Rules []AuthorizationRule `json:"rules,omitempty"`
}

// AuthorizationRule matches when its from, to and when all match; each is a
// list of alternatives, and an empty list matches everything.
type AuthorizationRule struct {
	From []AuthorizationSource    `json:"from,omitempty"`
	To   []AuthorizationOperation `json:"to,omitempty"`
	When []AuthorizationCondition `json:"when,omitempty"`
}

// AuthorizationSource names callers by their verified identity. Fields are
// ANDed; values within a field are ORed.
type AuthorizationSource struct {
	// Principals are SPIFFE IDs; a trailing "*" matches a prefix.
	Principals []string `json:"principals,omitempty"`
	// ServiceAccounts are "name" (any namespace) or "namespace/name".
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
	Namespaces      []string `json:"namespaces,omitempty"`
}

// AuthorizationOperation describes what is called. Methods, paths and
// headers only exist for HTTP and gRPC; ports apply to TCP too.
type AuthorizationOperation struct {
	Methods []string `json:"methods,omitempty"`
	// Paths: exact ("/a"), prefix ("/a/*"), suffix ("*.png") or "*".
	Paths []string `json:"paths,omitempty"`
	Ports []int32  `json:"ports,omitempty"`
}

// AuthorizationCondition matches a request header against values (the same
// exact/prefix/suffix forms as paths).
type AuthorizationCondition struct {
	Header string   `json:"header"`
	Values []string `json:"values"`
}

// PeerAuthentication sets whether the inbound of the workloads its target
// Service selects (the whole namespace without targetRef) requires mutual
// TLS (STRICT, the default) or also accepts plaintext (PERMISSIVE).
type PeerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              PeerAuthenticationSpec `json:"spec"`
}

type PeerAuthenticationSpec struct {
	TargetRef *PolicyTargetRef `json:"targetRef,omitempty"`
	Mode      string           `json:"mode"`
}
