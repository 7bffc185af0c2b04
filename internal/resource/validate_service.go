package resource

import (
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	corev1 "k8s.io/api/core/v1"
)

func init() {
	kindValidators[KindService] = func(v *validator, o any) { validateService(v, o.(*corev1.Service)) }
}

// appProtocols are the protocols the proxy can speak to a Service's port;
// anything else would silently fall back to TCP, so it is refused.
var appProtocols = []string{"http", "h2c", "grpc", "tcp", "ws", "kubernetes.io/h2c", "kubernetes.io/ws"}

func validateService(v *validator, s *corev1.Service) {
	// A Service without a selector is valid (its endpoints come from
	// elsewhere, or it has none yet), so only the selector's syntax is checked.
	v.labels("spec.selector", s.Spec.Selector)
	if len(s.Spec.Ports) == 0 {
		v.add("spec.ports", "required: a Service needs at least one port")
	}
	names := map[string]int{}
	numbers := map[int32]int{}
	for i, p := range s.Spec.Ports {
		f := idx("spec.ports", i)
		v.portNumber(f+".port", p.Port)
		if prev, dup := numbers[p.Port]; dup && p.Port != 0 {
			v.addf(f+".port", "duplicate port %d (also spec.ports[%d])", p.Port, prev)
		} else {
			numbers[p.Port] = i
		}
		// Kubernetes requires names once there are several ports, because
		// routes and targetPorts refer to ports by name.
		switch {
		case p.Name == "" && len(s.Spec.Ports) > 1:
			v.add(f+".name", "required when a Service has more than one port")
		case p.Name != "":
			v.dnsLabel(f+".name", p.Name)
			if prev, dup := names[p.Name]; dup {
				v.addf(f+".name", "duplicate port name %q (also spec.ports[%d])", p.Name, prev)
			} else {
				names[p.Name] = i
			}
		}
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			v.addf(f+".protocol", "unsupported protocol %q: weft proxies TCP only", p.Protocol)
		}
		if p.AppProtocol != nil && *p.AppProtocol != "" {
			v.oneOf(f+".appProtocol", *p.AppProtocol, appProtocols...)
		}
		validateTargetPort(v, f+".targetPort", p.TargetPort)
	}
}

// validateTargetPort accepts a port number or a workload port name; zero and
// "" mean "same as port", as Kubernetes defaults them.
func validateTargetPort(v *validator, f string, tp intstr.IntOrString) {
	switch tp.Type {
	case intstr.Int:
		if tp.IntVal != 0 {
			v.portNumber(f, tp.IntVal)
		}
	case intstr.String:
		if tp.StrVal == "" {
			return
		}
		if msgs := validation.IsValidPortName(tp.StrVal); len(msgs) > 0 {
			v.addf(f, "invalid port name %q: %s", tp.StrVal, k8sReason(msgs))
		}
	}
}
