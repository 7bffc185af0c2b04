package resource

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation"
)

func init() {
	kindValidators[KindWorkload] = func(v *validator, o any) { validateWorkload(v, o.(*Workload)) }
}

func validateWorkload(v *validator, w *Workload) {
	s := w.Spec
	validateAddress(v, "spec.address", s.Address)
	names := map[string]int{}
	for i, p := range s.Ports {
		f := idx("spec.ports", i)
		v.portNumber(f+".port", p.Port)
		if p.Name == "" {
			continue
		}
		// Workload port names are what a Service's targetPort names, so
		// they follow the same (IANA service name) rule.
		if msgs := validation.IsValidPortName(p.Name); len(msgs) > 0 {
			v.addf(f+".name", "invalid port name %q: %s", p.Name, k8sReason(msgs))
		}
		if prev, dup := names[p.Name]; dup {
			v.addf(f+".name", "duplicate port name %q (also spec.ports[%d])", p.Name, prev)
		} else {
			names[p.Name] = i
		}
	}
	if s.ServiceAccount != "" {
		// The service account becomes part of the workload's SPIFFE ID.
		v.dnsSubdomain("spec.serviceAccount", s.ServiceAccount)
	}
	if s.Zone != "" {
		if msgs := content.IsLabelValue(s.Zone); len(msgs) > 0 {
			v.addf("spec.zone", "invalid zone %q: %s", s.Zone, k8sReason(msgs))
		}
	}
	if s.Inbound != "" {
		host, port, err := net.SplitHostPort(s.Inbound)
		if err != nil {
			v.addf("spec.inbound", "invalid inbound %q: want host:port of the workload's sidecar", s.Inbound)
		} else {
			validateAddress(v, "spec.inbound", host)
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				v.addf("spec.inbound", "invalid port %q: must be 1 to 65535", port)
			}
		}
	}
}

// validateAddress accepts an IP address or a DNS name; the proxy dials it with
// a port from spec.ports, so "host:port" or a URL is a mistake.
func validateAddress(v *validator, f, addr string) {
	if addr == "" {
		v.add(f, "required: an IP address or DNS name")
		return
	}
	if _, err := netip.ParseAddr(addr); err == nil {
		return
	}
	// DNS names are case-insensitive; only the syntax matters here.
	if len(validation.IsDNS1123Subdomain(strings.ToLower(addr))) == 0 {
		return
	}
	v.addf(f, "invalid address %q: must be an IP address or a DNS name (no port or scheme; ports go in spec.ports)", addr)
}
