package demo

import (
	"fmt"
	"strings"
)

// instance is one running copy of a demo service: its app role and the
// labels its workload registers with.
type instance struct {
	name    string // workload name
	role    string // app role (internal/demo/app)
	app     string // app label = service account
	version string
	proto   string // app port name: http or grpc
}

var instances = []instance{
	{"web-1", "web", "web", "v1", "http"},
	{"catalog-1", "catalog", "catalog", "v1", "http"},
	{"cart-1", "cart", "cart", "v1", "http"},
	{"reviews-v1-1", "reviews-v1", "reviews", "v1", "http"},
	{"reviews-v2-1", "reviews-v2", "reviews", "v2", "http"},
	{"ratings-1", "ratings", "ratings", "v1", "grpc"},
}

// meshResources is the storefront's config: its Services, the reviews
// canary, retries, and the Gateway with its route to web.
func meshResources(gatewayPort int) string {
	var b strings.Builder
	svc := func(name, selector, port string) {
		fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata: {name: %s}
spec:
  selector: {%s}
  ports: [%s]
---
`, name, selector, port)
	}
	httpPort := "{name: http, port: 9080, targetPort: http, appProtocol: http}"
	svc("web", "app: web", httpPort)
	svc("catalog", "app: catalog", httpPort)
	svc("cart", "app: cart", "{name: http, port: 9080, targetPort: http, appProtocol: kubernetes.io/ws}")
	svc("reviews", "app: reviews", httpPort)
	svc("reviews-v1", "app: reviews, version: v1", httpPort)
	svc("reviews-v2", "app: reviews, version: v2", httpPort)
	svc("ratings", "app: ratings", "{name: grpc, port: 9090, targetPort: grpc, appProtocol: grpc}")
	b.WriteString(CanaryRoute(90))
	for _, s := range []string{"web", "catalog", "reviews", "ratings"} {
		fmt.Fprintf(&b, `---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: %s}
spec:
  targetRef: {kind: Service, name: %s}
  retry: {attempts: 2, perTryTimeout: 2s, retryOn: [connect-failure, reset, gateway-error]}
  outlierDetection: {consecutive5xx: 5, baseEjectionTime: 10s}
`, s, s)
	}
	fmt.Fprintf(&b, `---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: storefront}
spec:
  gatewayClassName: weft
  listeners: [{name: http, port: %d, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: storefront}
spec:
  parentRefs: [{name: storefront}]
  rules: [{backendRefs: [{name: web, port: 9080}]}]
`, gatewayPort)
	return b.String()
}

// CanaryRoute sends v2Percent of reviews traffic to reviews-v2, and all of
// it for requests with the header x-canary: "1".
func CanaryRoute(v1Percent int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - matches: [{headers: [{name: x-canary, value: "1"}]}]
    backendRefs: [{name: reviews-v2, port: 9080}]
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: %d}
    - {name: reviews-v2, port: 9080, weight: %d}
`, v1Percent, 100-v1Percent)
}

// tryFiles are the changes the banner suggests, written beside the demo.
func tryFiles() map[string]string {
	return map[string]string{
		"canary-50.yaml":  CanaryRoute(50),
		"canary-100.yaml": CanaryRoute(0),
		"fault.yaml": `apiVersion: weft.dev/v1alpha1
kind: FaultInjection
metadata: {name: catalog-flaky}
spec:
  abort: {httpStatus: 503, percent: 20}
  delay: {fixedDelay: 200ms, percent: 20}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 9080}]
  rules:
  - filters: [{type: ExtensionRef, extensionRef: {group: weft.dev, kind: FaultInjection, name: catalog-flaky}}]
    backendRefs: [{name: catalog, port: 9080}]
`,
		"deny-web-to-cart.yaml": `apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: cart-no-web}
spec:
  targetRef: {kind: Service, name: cart}
  action: DENY
  rules: [{from: [{serviceAccounts: [web]}]}]
`,
	}
}
