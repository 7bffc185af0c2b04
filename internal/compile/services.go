package compile

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// service compiles one v1 Service with the routing of each of its ports.
func (c *compiler) service(svc *corev1.Service) *Service {
	ns := nsOf(svc.Namespace)
	out := &Service{
		Name:      svc.Name,
		Namespace: ns,
		Hosts:     hosts(ns, svc.Name),
		Ports:     []*ServicePort{},
	}
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if !isTCPPort(p) {
			continue
		}
		sp := &ServicePort{Name: p.Name, Port: p.Port, Protocol: portProtocol(p)}
		// The port's own cluster, where its default HTTP rule and its TCP
		// routing send traffic when no route attaches: one Backend for both.
		own := []*Backend{{Cluster: c.ref(ns, svc.Name, p.Port), Weight: 1}}
		if sp.Protocol != ProtocolTCP {
			sp.HTTP = c.httpRouting(ns, svc.Name, p, own)
		}
		sp.TCP = c.tcpRouting(ns, svc.Name, p, own)
		out.Ports = append(out.Ports, sp)
	}
	sort.SliceStable(out.Ports, func(i, j int) bool { return out.Ports[i].Port < out.Ports[j].Port })
	return out
}

// hosts are the names callers use for a service, shortest first. Each is a
// prefix of the longest, so they share its bytes.
func hosts(ns, name string) []string {
	full := name + "." + ns + ".svc.cluster.local"
	n := len(name) + 1 + len(ns)
	return []string{name, full[:n], full[:n+len(".svc")], full}
}

// isTCPPort leaves out UDP and SCTP ports: the mesh carries TCP only, and a
// UDP port may share its number with a TCP one, which would clash in
// ClusterName.
func isTCPPort(p *corev1.ServicePort) bool {
	return p.Port > 0 && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP)
}

// findPort returns the TCP port of svc with the given number, or nil.
func findPort(svc *corev1.Service, port int32) *corev1.ServicePort {
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if p.Port == port && isTCPPort(p) {
			return p
		}
	}
	return nil
}

// namePrefixProtocols are the protocols a port name may declare, Istio
// style: the name is the protocol or starts with it and a dash ("http-web").
// The dash is required so that "https" or "httpbin" are not taken for HTTP.
var namePrefixProtocols = []string{ProtocolHTTP, ProtocolH2C, ProtocolGRPC, ProtocolTCP}

// portProtocol reads a port's protocol from appProtocol, else from its name,
// else leaves it to be sniffed.
func portProtocol(p *corev1.ServicePort) string {
	if p.AppProtocol != nil && *p.AppProtocol != "" {
		switch strings.ToLower(*p.AppProtocol) {
		case "http":
			return ProtocolHTTP
		case "h2c", "kubernetes.io/h2c":
			return ProtocolH2C
		case "grpc":
			return ProtocolGRPC
		case "tcp":
			return ProtocolTCP
		case "ws", "kubernetes.io/ws":
			return ProtocolWebSocket
		}
		// Any other declared protocol (https, kubernetes.io/wss, mysql...)
		// is one the proxy cannot route by request, and sniffing would stall
		// server-first protocols such as MySQL: carry it as opaque TCP.
		return ProtocolTCP
	}
	name := strings.ToLower(p.Name)
	for _, proto := range namePrefixProtocols {
		if name == proto || strings.HasPrefix(name, proto+"-") {
			return proto
		}
	}
	return ProtocolSniff
}
