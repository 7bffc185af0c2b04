package meshv1

import (
	"net"
	"strings"
)

// Names of ConfigUpdate resources: "service/<namespace>/<name>" holds a
// compile.Service, "cluster/<cluster name>" a compile.Cluster, "inbound"
// the proxy's own compile.Inbound (mTLS mode, authorization), and
// "gateway/<namespace>/<name>" a gateway's compile.Gateway without its
// clusters (those travel as cluster resources).
const (
	ServicePrefix   = "service/"
	ClusterPrefix   = "cluster/"
	InboundResource = "inbound"
	GatewayPrefix   = "gateway/"
)

// GatewayResource names the resource holding Gateway namespace/name.
func GatewayResource(namespace, name string) string {
	return GatewayPrefix + namespace + "/" + name
}

// ServiceResource names the resource holding service namespace/name.
func ServiceResource(namespace, name string) string {
	return ServicePrefix + namespace + "/" + name
}

// ClusterResource names the resource holding a cluster.
func ClusterResource(cluster string) string { return ClusterPrefix + cluster }

// ParseServiceRef reads the service a dependency, a Want or a request host
// names: "name", "name.namespace", "name.namespace.svc" or
// "name.namespace.svc.cluster.local", with or without ":port", or
// "namespace/name" (how proxies key services in Want and Hello). A bare name
// is in defaultNamespace. ok is false for anything else (an outside host
// such as "example.com" is not a mesh service).
func ParseServiceRef(ref, defaultNamespace string) (namespace, name string, ok bool) {
	ref = strings.ToLower(strings.TrimSpace(ref))
	// "namespace/name" is how proxies key services (Want, Hello.Learned).
	if ns, n, ok := strings.Cut(ref, "/"); ok {
		if !isLabel(ns) || !isLabel(n) {
			return "", "", false
		}
		return ns, n, true
	}
	if h, _, err := net.SplitHostPort(ref); err == nil {
		ref = h
	}
	ref = strings.TrimSuffix(ref, ".")
	parts := strings.Split(ref, ".")
	switch {
	case len(parts) == 1:
		namespace = defaultNamespace
	case len(parts) == 2,
		len(parts) == 3 && parts[2] == "svc",
		len(parts) == 5 && parts[2] == "svc" && parts[3] == "cluster" && parts[4] == "local":
		namespace = parts[1]
	default:
		return "", "", false
	}
	name = parts[0]
	if !isLabel(name) || !isLabel(namespace) {
		return "", "", false
	}
	return namespace, name, true
}

// isLabel reports whether s is a DNS label (RFC 1123), what Kubernetes
// requires of service and namespace names.
func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
