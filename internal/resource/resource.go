// Package resource decodes and validates the resources weft is configured
// with: Kubernetes v1 Service, Gateway API routes and weft.dev policies. It is
// shared by `weft proxy --config`, `weft apply` and the Kubernetes watcher,
// and does no I/O: callers hand it bytes and a name for where they came from.
package resource

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Kinds weft understands.
const (
	KindService        = "Service"
	KindWorkload       = "Workload"
	KindHTTPRoute      = "HTTPRoute"
	KindGRPCRoute      = "GRPCRoute"
	KindTCPRoute       = "TCPRoute"
	KindTrafficPolicy  = "TrafficPolicy"
	KindFaultInjection = "FaultInjection"

	KindAuthorizationPolicy = "AuthorizationPolicy"
	KindPeerAuthentication  = "PeerAuthentication"
)

// DefaultNamespace is used when metadata.namespace is empty.
const DefaultNamespace = "default"

// Source says where a resource was read from, for error messages.
type Source struct {
	File     string `json:"file,omitempty"`
	Document int    `json:"document"` // 1-based index within the file
}

func (s Source) String() string {
	f := s.File
	if f == "" {
		f = "<input>"
	}
	return fmt.Sprintf("%s: document %d", f, s.Document)
}

// Object is one decoded, validated resource.
type Object struct {
	Kind      string
	Namespace string
	Name      string
	Source    Source
	// Value is one of *corev1.Service, *Workload, *gwv1.HTTPRoute,
	// *gwv1.GRPCRoute, *gwv1.TCPRoute, *TrafficPolicy, *FaultInjection,
	// *AuthorizationPolicy, *PeerAuthentication, and for the edge
	// *gwv1.Gateway, *gwv1.TLSRoute, *gwv1.ReferenceGrant, *corev1.Secret,
	// *RequestAuthentication, *RateLimitPolicy.
	Value any
}

// Key is "Kind/namespace/name", unique within a Set.
func (o *Object) Key() string { return Key(o.Kind, o.Namespace, o.Name) }

// Key builds the key of an object.
func Key(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// FieldError is a validation failure: where, which field, and why.
type FieldError struct {
	Source Source
	Kind   string
	Name   string
	Field  string // JSON path, e.g. spec.rules[0].backendRefs[1].weight
	Reason string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source.String())
	if e.Kind != "" {
		fmt.Fprintf(&b, " (%s", e.Kind)
		if e.Name != "" {
			fmt.Fprintf(&b, " %q", e.Name)
		}
		b.WriteString(")")
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": %s", e.Field)
	}
	fmt.Fprintf(&b, ": %s", e.Reason)
	return b.String()
}

// ErrorList collects every problem found in an input, so one run of apply
// shows all of them.
type ErrorList []*FieldError

func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Set is a consistent collection of resources: the input of the compiler.
type Set struct {
	Services        []*corev1.Service
	Workloads       []*Workload
	HTTPRoutes      []*gwv1.HTTPRoute
	GRPCRoutes      []*gwv1.GRPCRoute
	TCPRoutes       []*gwv1.TCPRoute
	TrafficPolicies []*TrafficPolicy
	FaultInjections []*FaultInjection

	AuthorizationPolicies []*AuthorizationPolicy
	PeerAuthentications   []*PeerAuthentication

	// The edge.
	Gateways               []*gwv1.Gateway
	TLSRoutes              []*gwv1.TLSRoute
	ReferenceGrants        []*gwv1.ReferenceGrant
	Secrets                []*corev1.Secret
	RequestAuthentications []*RequestAuthentication
	RateLimitPolicies      []*RateLimitPolicy
}

// NewSet sorts objects into a Set by kind.
func NewSet(objs []*Object) *Set {
	s := &Set{}
	for _, o := range objs {
		switch v := o.Value.(type) {
		case *corev1.Service:
			s.Services = append(s.Services, v)
		case *Workload:
			s.Workloads = append(s.Workloads, v)
		case *gwv1.HTTPRoute:
			s.HTTPRoutes = append(s.HTTPRoutes, v)
		case *gwv1.GRPCRoute:
			s.GRPCRoutes = append(s.GRPCRoutes, v)
		case *gwv1.TCPRoute:
			s.TCPRoutes = append(s.TCPRoutes, v)
		case *TrafficPolicy:
			s.TrafficPolicies = append(s.TrafficPolicies, v)
		case *FaultInjection:
			s.FaultInjections = append(s.FaultInjections, v)
		case *AuthorizationPolicy:
			s.AuthorizationPolicies = append(s.AuthorizationPolicies, v)
		case *PeerAuthentication:
			s.PeerAuthentications = append(s.PeerAuthentications, v)
		case *gwv1.Gateway:
			s.Gateways = append(s.Gateways, v)
		case *gwv1.TLSRoute:
			s.TLSRoutes = append(s.TLSRoutes, v)
		case *gwv1.ReferenceGrant:
			s.ReferenceGrants = append(s.ReferenceGrants, v)
		case *corev1.Secret:
			s.Secrets = append(s.Secrets, v)
		case *RequestAuthentication:
			s.RequestAuthentications = append(s.RequestAuthentications, v)
		case *RateLimitPolicy:
			s.RateLimitPolicies = append(s.RateLimitPolicies, v)
		}
	}
	return s
}
