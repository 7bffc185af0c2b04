package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// Config files are built from YAML snippets so that each test shows the
// exact resources it runs with. Services select workloads by labels; every
// service port is named "main" and targets the workload port named "main",
// so backends on random ports need no per-test port arithmetic.

// docs joins YAML documents into one multi-document file.
func docs(ds ...string) string {
	var b strings.Builder
	for _, d := range ds {
		d = strings.TrimPrefix(strings.TrimLeft(d, "\n"), "---\n") // nested docs()
		b.WriteString("---\n")
		b.WriteString(d)
		if !strings.HasSuffix(d, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// service is a v1 Service with one port. selector is a YAML flow map body
// such as "app: web, version: a"; empty means "app: <name>". appProtocol may
// be empty (sniff).
func service(name string, port int, appProtocol, selector string) string {
	if selector == "" {
		selector = "app: " + name
	}
	proto := ""
	if appProtocol != "" {
		proto = ", appProtocol: " + appProtocol
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s}
spec:
  selector: {%s}
  ports: [{name: main, port: %d, targetPort: main%s}]
`, name, selector, port, proto)
}

// workload is a weft.dev Workload at addr (host:port) with the given labels
// (YAML flow map body) and zone (may be empty).
func workload(t testing.TB, name, addr, labels, zone string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("workload %s: %v", name, err)
	}
	z := ""
	if zone != "" {
		z = "\n  zone: " + zone
	}
	return fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata:
  name: %s
  labels: {%s}
spec:
  address: %s
  ports: [{name: main, port: %s}]%s
`, name, labels, host, port, z)
}

// endpoint is anything with a name, an address and a zone: every backend.
type endpoint interface {
	name() string
	addr() string
	zone() string
}

// serviceWith is a Service named name with appProtocol, plus one Workload
// labelled app=<name> per endpoint.
func serviceWith(t testing.TB, name string, port int, appProtocol string, eps ...endpoint) string {
	t.Helper()
	ds := []string{service(name, port, appProtocol, "")}
	for _, e := range eps {
		ds = append(ds, workload(t, name+"-"+e.name(), e.addr(), "app: "+name, e.zone()))
	}
	return docs(ds...)
}

// trafficPolicy attaches spec (YAML indented by 2, below "spec:") to the
// Service named svc.
func trafficPolicy(svc, spec string) string {
	return fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: %s-policy}
spec:
  targetRef: {kind: Service, name: %s}
%s`, svc, svc, indent(spec, "  "))
}

// httpRoute is an HTTPRoute named name attached to Service parent with the
// given rules (a YAML list, written at column 0).
func httpRoute(name, parent, rules string) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: %s}]
  rules:
%s`, name, parent, indent(rules, "  "))
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}
