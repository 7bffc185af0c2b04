package resource

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// designExample is DESIGN.md section 3's canary example and Workload, plus a
// TrafficPolicy with every field, a FaultInjection and the other route kinds.
const designExample = `apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: http, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2}
spec:
  selector: {app: reviews, version: v2}
  ports: [{name: http, port: 9080, targetPort: http, appProtocol: http}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - matches: [{headers: [{name: x-canary, value: "1"}]}]
    backendRefs: [{name: reviews-v2, port: 9080}]
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: 90}
    - {name: reviews-v2, port: 9080, weight: 10}
    filters:
    - type: ExtensionRef
      extensionRef: {group: weft.dev, kind: FaultInjection, name: reviews-flaky}
    timeouts: {request: 10s, backendRequest: 500ms}
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: reviews}
spec:
  targetRef: {kind: Service, name: reviews}
  loadBalancer: {type: LeastRequest}
  retry: {attempts: 3, perTryTimeout: 500ms, retryOn: [5xx, reset, connect-failure]}
  outlierDetection: {consecutive5xx: 5, interval: 5s, baseEjectionTime: 30s}
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata:
  name: reviews-v1-a
  labels: {app: reviews, version: v1}
spec:
  address: 127.0.0.1
  ports: [{name: http, port: 18081}]
  serviceAccount: reviews
  zone: zone-a
---
# Every TrafficPolicy field, in another namespace.
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: reviews-full, namespace: shop}
spec:
  targetRef: {group: "", kind: Service, name: reviews}
  loadBalancer: {type: RingHash, hashOn: {header: x-user}}
  connectionPool: {maxConnections: 100, maxPendingRequests: 50, maxRequests: 200}
  retry:
    attempts: 3
    perTryTimeout: 500ms
    retryOn: [5xx, gateway-error, reset, connect-failure, retriable-status-codes]
    retriableStatusCodes: [503, 429]
    backoff: {baseInterval: 25ms, maxInterval: 250ms}
    budget: {percent: 20, minRetryConcurrency: 3}
    maxBufferedBody: 65536
  timeout: 5s
  outlierDetection:
    consecutive5xx: 5
    consecutiveGatewayErrors: 3
    consecutiveConnectErrors: 2
    interval: 5s
    baseEjectionTime: 30s
    maxEjectionTime: 5m
    maxEjectionPercent: 50
  healthCheck: {path: /healthz, interval: 10s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 3, expectedStatuses: [200, 204]}
  zoneAware: {enabled: true, minHealthyPercent: 70}
---
apiVersion: weft.dev/v1alpha1
kind: FaultInjection
metadata: {name: reviews-flaky}
spec:
  delay: {fixedDelay: 2s, percent: 5}
  abort: {httpStatus: 503, percent: 1.5}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: ratings}
spec:
  parentRefs: [{kind: Service, name: ratings}]
  rules:
  - matches: [{method: {service: ratings.Ratings, method: Get}}]
    backendRefs: [{name: ratings-v1, port: 9090}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db}
spec:
  parentRefs: [{kind: Service, name: db}]
  rules: [{backendRefs: [{name: db-primary, port: 5432}]}]
`

func TestDecodeDesignExample(t *testing.T) {
	objs := checkGood(t, designExample)
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key())
	}
	want := "Service/default/reviews Service/default/reviews-v2 HTTPRoute/default/reviews TrafficPolicy/default/reviews " +
		"Workload/default/reviews-v1-a TrafficPolicy/shop/reviews-full FaultInjection/default/reviews-flaky " +
		"GRPCRoute/default/ratings TCPRoute/default/db"
	if got := strings.Join(keys, " "); got != want {
		t.Fatalf("objects:\n got %s\nwant %s", got, want)
	}
	if objs[3].Source != (Source{File: "f.yaml", Document: 4}) {
		t.Errorf("source = %v", objs[3].Source)
	}
	set := NewSet(objs)

	svc := set.Services[0]
	if svc.Namespace != "default" || svc.Spec.Selector["app"] != "reviews" || svc.Spec.Ports[0].Port != 9080 ||
		svc.Spec.Ports[0].TargetPort.StrVal != "http" || *svc.Spec.Ports[0].AppProtocol != "http" {
		t.Errorf("service = %+v", svc)
	}

	rt := set.HTTPRoutes[0]
	if rt.Namespace != "default" {
		t.Errorf("route namespace %q, want default", rt.Namespace)
	}
	p := rt.Spec.ParentRefs[0]
	if *p.Kind != "Service" || *p.Group != "" || p.Name != "reviews" || *p.Port != 9080 {
		t.Errorf("parentRef = %+v", p)
	}
	if h := rt.Spec.Rules[0].Matches[0].Headers[0]; h.Name != "x-canary" || h.Value != "1" {
		t.Errorf("header match = %+v", h)
	}
	canary := rt.Spec.Rules[1]
	if b := canary.BackendRefs; b[0].Name != "reviews-v1" || *b[0].Weight != 90 || b[1].Name != "reviews-v2" || *b[1].Weight != 10 || *b[1].Port != 9080 {
		t.Errorf("backendRefs = %+v", b)
	}
	if e := canary.Filters[0].ExtensionRef; e.Kind != "FaultInjection" || e.Name != "reviews-flaky" {
		t.Errorf("extensionRef = %+v", e)
	}
	if to := canary.Timeouts; *to.Request != "10s" || *to.BackendRequest != "500ms" {
		t.Errorf("timeouts = %+v", to)
	}

	tp := set.TrafficPolicies[0]
	if tp.Spec.TargetRef.Name != "reviews" || tp.Spec.LoadBalancer.Type != LBLeastRequest ||
		tp.Spec.Retry.Attempts != 3 || tp.Spec.Retry.PerTryTimeout.Duration != 500*time.Millisecond ||
		strings.Join(tp.Spec.Retry.RetryOn, ",") != "5xx,reset,connect-failure" ||
		tp.Spec.OutlierDetection.Consecutive5xx != 5 || tp.Spec.OutlierDetection.BaseEjectionTime.Duration != 30*time.Second {
		t.Errorf("traffic policy = %+v", tp.Spec)
	}

	full := set.TrafficPolicies[1].Spec
	if full.LoadBalancer.HashOn.Header != "x-user" || full.ConnectionPool.MaxPendingRequests != 50 ||
		full.Retry.RetriableStatusCodes[1] != 429 || full.Retry.Backoff.MaxInterval.Duration != 250*time.Millisecond ||
		full.Retry.Budget.Percent != 20 || full.Retry.MaxBufferedBody != 65536 || full.Timeout.Duration != 5*time.Second ||
		full.OutlierDetection.MaxEjectionTime.Duration != 5*time.Minute || *full.OutlierDetection.MaxEjectionPercent != 50 ||
		full.HealthCheck.Path != "/healthz" || full.HealthCheck.UnhealthyThreshold != 3 || full.HealthCheck.ExpectedStatuses[1] != 204 ||
		!full.ZoneAware.Enabled || full.ZoneAware.MinHealthyPercent != 70 {
		t.Errorf("full traffic policy = %+v", full)
	}
	if set.TrafficPolicies[1].Namespace != "shop" {
		t.Errorf("explicit namespace lost: %q", set.TrafficPolicies[1].Namespace)
	}

	w := set.Workloads[0]
	if w.Spec.Address != "127.0.0.1" || w.Spec.Ports[0].Port != 18081 || w.Spec.ServiceAccount != "reviews" ||
		w.Spec.Zone != "zone-a" || w.Labels["version"] != "v1" || w.Namespace != "default" {
		t.Errorf("workload = %+v", w)
	}

	fi := set.FaultInjections[0].Spec
	if fi.Delay.FixedDelay.Duration != 2*time.Second || fi.Delay.Percent != 5 || fi.Abort.HTTPStatus != 503 || fi.Abort.Percent != 1.5 {
		t.Errorf("fault injection = %+v", fi)
	}

	if m := set.GRPCRoutes[0].Spec.Rules[0].Matches[0].Method; *m.Service != "ratings.Ratings" || *m.Method != "Get" {
		t.Errorf("grpc method = %+v", m)
	}
	if b := set.TCPRoutes[0].Spec.Rules[0].BackendRefs[0]; b.Name != "db-primary" || *b.Port != 5432 {
		t.Errorf("tcp backend = %+v", b)
	}
	var _ *corev1.Service = svc
	var _ *gwv1.HTTPRoute = rt
}

func TestDecodeErrors(t *testing.T) {
	tp := "apiVersion: weft.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: x}\nspec:\n  targetRef: {kind: Service, name: a}\n"
	for _, c := range []badCase{
		// Unknown fields, with their full path.
		{"unknown nested", tp + "  retry: {attempts: 1, bogus: 2}\n", "spec.retry.bogus", `unknown field "bogus"`},
		{"unknown misspelt", tp + "  retry: {retyrOn: [5xx]}\n", "spec.retry.retyrOn", `unknown field "retyrOn", did you mean "retryOn"?`},
		{"unknown top level", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspecs: {ports: [{port: 80}]}\n", "specs", `unknown field "specs", did you mean "spec"?`},
		{"unknown metadata", "apiVersion: v1\nkind: Service\nmetadata: {name: x, lables: {a: b}}\nspec: {ports: [{port: 80}]}\n", "metadata.lables", `did you mean "labels"?`},
		{"unknown in list", doc(KindHTTPRoute, "{"+parent+", rules: [{backendRefs: [{name: a, port: 80}, {name: b, port: 80, wieght: 1}]}]}"), "spec.rules[0].backendRefs[1].wieght", `unknown field "wieght", did you mean "weight"?`},
		{"unknown in route spec", doc(KindHTTPRoute, "{parentRef: [{name: a}]}"), "spec.parentRef", `did you mean "parentRefs"?`},
		{"unknown in weft kind", doc(KindWorkload, "{address: 10.0.0.1, ports: [{name: a, port: 80, protocol: TCP}]}"), "spec.ports[0].protocol", `unknown field "protocol"`},
		{"status is not input", doc(KindFaultInjection, "{delay: {fixedDelay: 1s, percent: 1}}") + "status: {}\n", "status", `unknown field "status"`},
		// encoding/json matches names case-insensitively; Kubernetes does not.
		{"wrong case", tp + "  retry: {Attempts: 3}\n", "spec.retry.Attempts", `field names are case-sensitive, did you mean "attempts"?`},
		// Type errors, at the exact list element.
		{"string for int", tp + "  retry: {attempts: abc}\n", "spec.retry.attempts", `must be a whole number, got "abc"`},
		{"int overflow", doc(KindService, "{ports: [{name: a, port: 80}, {name: b, port: 99999999999}]}"), "spec.ports[1].port", "must be a whole number that fits in int32, got 99999999999"},
		{"list for string", doc(KindService, "{selector: {app: [a]}, ports: [{port: 80}]}"), "spec.selector.app", "must be a string, got a list"},
		{"object for list", tp + "  retry: {retryOn: {a: b}}\n", "spec.retry.retryOn", "must be a list, got an object"},
		{"string for bool", tp + "  zoneAware: {enabled: maybe}\n", "spec.zoneAware.enabled", `must be true or false, got "maybe"`},
		{"number for name in embedded struct", doc(KindHTTPRoute, "{parentRefs: [{kind: Service, name: 5}]}"), "spec.parentRefs[0].name", "must be a string, got 5"},
		{"string in int list", tp + "  retry: {retryOn: [retriable-status-codes], retriableStatusCodes: [503, five]}\n", "spec.retry.retriableStatusCodes[1]", `must be a whole number, got "five"`},
		// Values with their own decoders.
		{"bad duration", tp + "  retry: {perTryTimeout: abc}\n", "spec.retry.perTryTimeout", `must be a duration such as "500ms", "10s" or "1m30s", got "abc"`},
		{"number duration", doc(KindFaultInjection, "{delay: {fixedDelay: 5, percent: 1}}"), "spec.delay.fixedDelay", "must be a duration such as"},
		{"targetPort list", doc(KindService, "{ports: [{port: 80, targetPort: [1]}]}"), "spec.ports[0].targetPort", "must be a port number or a port name, got a list"},
		// YAML-level problems.
		{"repeated key", tp + "  retry: {attempts: 3, attempts: 4}\n", "spec.retry.attempts", `key "attempts" appears more than once in the same mapping (line 13)`},
		{"not a mapping", "- a\n- b\n", "", "a document must be a mapping with apiVersion, kind, metadata and spec; got a list"},
		{"no apiVersion", "kind: Service\nmetadata: {name: x}\n", "apiVersion", "required"},
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\n", "kind", "required"},
		{"apiVersion type", "apiVersion: [v1]\nkind: Service\n", "apiVersion", "must be a string, got a list"},
		{"unsupported kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", "kind", `unsupported apiVersion "v1" kind "Pod"`},
		{"wrong group version", "apiVersion: weft.dev/v1\nkind: Workload\nmetadata: {name: x}\n", "kind", `unsupported apiVersion "weft.dev/v1" kind "Workload"`},
		{"syntax error", "apiVersion: v1\nkind: Service\nmetadata: {name: x\n", "", "yaml: line 10: did not find expected"},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
}

func TestDecodeAllOrNothing(t *testing.T) {
	in := designExample + "---\n" + doc(KindService, "{ports: [{port: 0}]}")
	objs, err := Decode("f.yaml", []byte(in))
	if err == nil || objs != nil {
		t.Fatalf("got %d objects, err %v; want no objects and an error", len(objs), err)
	}
	if !strings.Contains(err.Error(), "f.yaml: document 10 (Service \"x\"): spec.ports[0].port") {
		t.Errorf("error = %v", err)
	}
}

func TestDecodeReportsEveryBadDocument(t *testing.T) {
	in := doc(KindService, "{ports: [{port: 0}]}") + "---\n" + okService + "---\n" + doc(KindWorkload, "{}")
	_, err := Decode("f.yaml", []byte(in))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
	if list[0].Source.Document != 1 || list[1].Source.Document != 3 || list[1].Field != "spec.address" {
		t.Errorf("errors = %v", err)
	}
}

func TestDecodeDuplicates(t *testing.T) {
	svc := func(meta string) string {
		return "apiVersion: v1\nkind: Service\nmetadata: " + meta + "\nspec: {ports: [{port: 80}]}\n"
	}
	_, err := Decode("f.yaml", []byte(svc("{name: a}")+"---\n"+svc("{name: a, namespace: default}")))
	if err == nil || !strings.Contains(err.Error(), "f.yaml: document 2 (Service \"a\"): metadata.name: duplicate: Service default/a is also defined at f.yaml: document 1") {
		t.Errorf("duplicate not refused: %v", err)
	}
	// The same name is fine in another namespace or for another kind.
	objs := checkGood(t, svc("{name: a}")+"---\n"+svc("{name: a, namespace: other}")+"---\n"+
		"apiVersion: weft.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: a}\nspec: {targetRef: {kind: Service, name: a}}\n")
	if len(objs) != 3 {
		t.Errorf("got %d objects, want 3", len(objs))
	}
}

func TestDecodeNamespaceDefault(t *testing.T) {
	objs := checkGood(t, okService+"---\n"+"apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: shop}\nspec: {ports: [{port: 80}]}\n")
	if objs[0].Namespace != DefaultNamespace || objs[0].Value.(*corev1.Service).Namespace != DefaultNamespace {
		t.Errorf("namespace not defaulted: %q / %q", objs[0].Namespace, objs[0].Value.(*corev1.Service).Namespace)
	}
	if objs[1].Namespace != "shop" || objs[1].Value.(*corev1.Service).Namespace != "shop" {
		t.Errorf("namespace = %q", objs[1].Namespace)
	}
}

func TestDecodeDocuments(t *testing.T) {
	// Empty documents are dropped, as kubectl's reader does; a document of
	// comments still counts, so numbers match what a reader counts by "---".
	in := "---\n---\n# only a comment\n---\n" + okService + "--- # trailing comment\n" + doc(KindWorkload, "{}")
	_, err := Decode("f.yaml", []byte(in))
	if err == nil || !strings.Contains(err.Error(), "f.yaml: document 3 (Workload \"x\"): spec.address: required") {
		t.Errorf("error = %v", err)
	}
	if objs, err := Decode("f.yaml", []byte("# nothing\n")); err != nil || len(objs) != 0 {
		t.Errorf("comment-only file: %v, %v", objs, err)
	}
	_, err = Decode("f.yaml", []byte(okService+"---x\n"+okService))
	if err == nil || !strings.Contains(err.Error(), `f.yaml: document 2: line 7: invalid document separator "---x"`) {
		t.Errorf("bad separator: %v", err)
	}
	// JSON input is YAML too.
	checkGood(t, `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j"}, "spec": {"ports": [{"port": 80}]}}`)
	// Other accepted versions of the route kinds.
	for _, v := range []string{"gateway.networking.k8s.io/v1beta1 HTTPRoute", "gateway.networking.k8s.io/v1alpha2 GRPCRoute"} {
		av, kind, _ := strings.Cut(v, " ")
		checkGood(t, "apiVersion: "+av+"\nkind: "+kind+"\nmetadata: {name: r}\nspec: {"+parent+", rules: [{"+backend+"}]}\n")
	}
}

func TestDecodeFileLines(t *testing.T) {
	// YAML errors name lines of the file, not of the document.
	_, err := Decode("f.yaml", []byte(okService+"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: x\n   bad: indent\n"))
	if err == nil || !strings.Contains(err.Error(), "f.yaml: document 2") || !strings.Contains(err.Error(), "line 12") {
		t.Errorf("error = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(designExample))
	f.Add([]byte(okService + "---\n" + doc(KindService, "{ports: [{port: 0, targetPort: [1]}]}")))
	f.Add([]byte(doc(KindHTTPRoute, "{"+parent+", rules: [{matches: [{path: {type: RegularExpression, value: \"(\"}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch}}}]}]}")))
	f.Add([]byte(doc(KindGRPCRoute, "{parentRefs: [{kind: Service, name: 5}], rules: [{matches: [{method: {}}], filters: [{type: RequestMirror}]}]}")))
	f.Add([]byte(doc(KindTrafficPolicy, "{targetRef: {Kind: Service}, retry: {attempts: 3, attempts: 4, perTryTimeout: x}, loadBalancer: {type: RingHash, hashOn: {}}}")))
	f.Add([]byte(doc(KindFaultInjection, "{delay: {fixedDelay: 5}, abort: {grpcStatus: 99999999999}}")))
	f.Add([]byte("- a\n---x\n{\"apiVersion\": \"v1\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Decode("fuzz.yaml", data)
		if err != nil {
			if objs != nil {
				t.Fatal("objects returned with an error")
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty ErrorList: %T %v", err, err)
			}
			for _, e := range list {
				if e.Reason == "" {
					t.Fatalf("error without a reason: %+v", e)
				}
			}
			return
		}
		for _, o := range objs {
			if o.Namespace == "" || o.Name == "" || o.Value == nil {
				t.Fatalf("incomplete object: %+v", o)
			}
			// A decoded object is valid by construction.
			if errs := Validate(o); len(errs) > 0 {
				t.Fatalf("decoded object does not validate: %v", errs)
			}
		}
	})
}
