package compile

import (
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"weft.dev/weft/internal/resource"
)

// clusterRef names one (service, port) that some part of the config sends
// traffic to.
type clusterRef struct {
	ns, name string
	port     int32
}

// ref records that the config reaches a service port and returns its
// cluster's name. Every recorded cluster is emitted, including those of
// services that do not exist: such a cluster has no endpoints, so requests
// to it get 503 rather than a dangling name. Every reference to a cluster
// shares one name string.
func (c *compiler) ref(ns, name string, port int32) string {
	ns = nsOf(ns)
	r := clusterRef{ns: ns, name: name, port: port}
	if n, ok := c.names[r]; ok {
		return n
	}
	n := ClusterName(ns, name, port)
	c.names[r] = n
	c.refs[n] = r
	return n
}

// join returns "a/b", one string for every use of the same pair (the
// Service of each port's cluster, the Workload of each endpoint), as a
// large config repeats them.
func (c *compiler) join(a, b string) string {
	k := [2]string{a, b}
	s, ok := c.joined[k]
	if !ok {
		s = a + "/" + b
		c.joined[k] = s
	}
	return s
}

// cluster builds the cluster of one service port (named name) with the
// endpoints its selector picks and the TrafficPolicy that targets its
// service.
func (c *compiler) cluster(name string, r clusterRef) *Cluster {
	cl := &Cluster{
		Name:         name,
		Service:      c.join(r.ns, r.name),
		Port:         r.port,
		Endpoints:    []*Endpoint{},
		LoadBalancer: LoadBalancer{Type: resource.LBRoundRobin},
	}
	if svc := c.services[c.key(r.ns, r.name)]; svc != nil {
		if p := findPort(svc, r.port); p != nil {
			cl.Protocol = portProtocol(p)
			cl.Endpoints = c.endpoints(r.ns, svc, p)
		}
	}
	applyClusterPolicy(cl, c.policies[c.key(r.ns, r.name)])
	return cl
}

// endpoints lists the workloads of the service's namespace that its selector
// matches, at the workload port its targetPort names. A service without a
// selector has none (its endpoints would be managed by hand in Kubernetes;
// weft declares such endpoints as Workloads instead).
func (c *compiler) endpoints(ns string, svc *corev1.Service, p *corev1.ServicePort) []*Endpoint {
	eps := []*Endpoint{}
	sel := svc.Spec.Selector
	if len(sel) == 0 {
		return eps
	}
	for _, w := range c.workloads[ns] {
		if w.Spec.Address == "" || !selects(sel, w.Labels) {
			continue
		}
		port, ok := targetPort(w, p)
		if !ok {
			continue
		}
		eps = append(eps, &Endpoint{
			Workload:       c.join(ns, w.Name),
			Address:        hostPort(w.Spec.Address, port),
			Zone:           w.Spec.Zone,
			Inbound:        w.Spec.Inbound,
			ServiceAccount: w.Spec.ServiceAccount,
		})
	}
	sort.SliceStable(eps, func(i, j int) bool {
		if eps[i].Address != eps[j].Address {
			return eps[i].Address < eps[j].Address
		}
		return eps[i].Workload < eps[j].Workload
	})
	return eps
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// targetPort resolves a service port to a workload port as Kubernetes does:
// by name (a workload without a port of that name is not an endpoint of this
// service port), by number, or, when unset, the service port itself.
func targetPort(w *resource.Workload, p *corev1.ServicePort) (int32, bool) {
	tp := p.TargetPort
	switch {
	case tp.Type == intstr.String && tp.StrVal != "":
		for _, wp := range w.Spec.Ports {
			if wp.Name == tp.StrVal && wp.Port > 0 {
				return wp.Port, true
			}
		}
		return 0, false
	case tp.Type == intstr.Int && tp.IntVal > 0:
		return tp.IntVal, true
	case tp.Type == intstr.Int && tp.IntVal < 0:
		return 0, false
	default:
		return p.Port, true
	}
}

// hostPort is net.JoinHostPort without importing net: IPv6 literals get
// brackets.
func hostPort(host string, port int32) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(int(port))
}
