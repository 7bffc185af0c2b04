package compile

import (
	corev1 "k8s.io/api/core/v1"
)

// tcpRouting is how opaque traffic (TCP, CONNECT, unrecognised sniffed
// bytes) on a port is routed: by an attached TCPRoute, else straight to the
// port's own cluster.
//
// A port carries one route for opaque traffic: there is no request to tell
// routes apart. If several TCPRoutes attach to the same port, the oldest wins
// (creationTimestamp, then namespace/name), and only its first rule is used.
func (c *compiler) tcpRouting(ns, name string, p *corev1.ServicePort, own []*Backend) *TCPRouting {
	for _, rt := range c.tcpRoutes { // oldest first
		if len(rt.Spec.Rules) == 0 || !attaches(rt.Spec.ParentRefs, rt.Namespace, ns, name, p) {
			continue
		}
		routeNS := nsOf(rt.Namespace)
		out := &TCPRouting{Route: routeNS + "/" + rt.Name + "/0", Backends: []*Backend{}}
		for i := range rt.Spec.Rules[0].BackendRefs {
			br := &rt.Spec.Rules[0].BackendRefs[i]
			// A reference to no service port at all is left out: TCPRouting
			// has no way to fail part of the connections.
			cluster, problem := c.backendCluster(routeNS, &br.BackendObjectReference)
			if problem != "" {
				continue
			}
			w := int32(1)
			if br.Weight != nil {
				w = max(*br.Weight, 0)
			}
			out.Backends = append(out.Backends, &Backend{Cluster: cluster, Weight: w})
		}
		return out
	}
	return &TCPRouting{Backends: own}
}
