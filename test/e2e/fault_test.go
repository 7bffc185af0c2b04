package e2e

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// faultRoute sends all of Service web through a FaultInjection named
// "fault" with the given spec.
func faultRoute(t *testing.T, spec string, a *HTTPBackend) *Proxy {
	t.Helper()
	return StartProxy(t, docs(
		serviceWith(t, "web", 80, "http", a),
		fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: FaultInjection
metadata: {name: fault}
spec:
%s`, indent(spec, "  ")),
		httpRoute("web", "web", `
- filters:
  - type: ExtensionRef
    extensionRef: {group: weft.dev, kind: FaultInjection, name: fault}
  backendRefs: [{name: web, port: 80}]
`)), ProxyOptions{})
}

func TestFaultDelay(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a")
	const delay = 300 * time.Millisecond
	p := faultRoute(t, "delay: {fixedDelay: 300ms, percent: 100}", a)
	c := proxyClient(t, p)
	for i := 0; i < 3; i++ {
		start := time.Now()
		r := mustOK(t, c, "http://web:80/delayed")
		if d := time.Since(start); d < delay {
			t.Errorf("request %d answered after %v; want ≥ %v injected delay", i, d, delay)
		}
		if r.Backend() != "a" {
			t.Errorf("request %d: %s", i, r)
		}
	}
}

func TestFaultAbort(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a")
	p := faultRoute(t, "abort: {httpStatus: 503, percent: 30}", a)
	const n = 1000
	counts := countBackendsParallel(t, proxyClient(t, p), "http://web:80/abort", n, 4)
	aborted := counts["status 503 fault-abort"]
	if aborted+counts["a"] != n {
		t.Fatalf("answers: %v; want only 200 from a and 503 fault-abort", counts)
	}
	if share := float64(aborted) / n; share < 0.25 || share > 0.35 {
		t.Errorf("%d of %d requests aborted (%.1f%%); want 30%% ± 5%%", aborted, n, share*100)
	}
	if got := a.Requests.Load(); got != int64(counts["a"]) {
		t.Errorf("backend saw %d requests, but %d passed the fault: aborted requests must not reach it", got, counts["a"])
	}
}

func TestFaultAbortGRPC(t *testing.T) {
	t.Parallel()
	g := NewGRPCBackend(t, "g1")
	p := StartProxy(t, docs(
		serviceWith(t, "grpc", 50051, "grpc", g),
		`apiVersion: weft.dev/v1alpha1
kind: FaultInjection
metadata: {name: unavailable}
spec:
  abort: {grpcStatus: 14, percent: 100}
`,
		httpRoute("grpc", "grpc", `
- filters:
  - type: ExtensionRef
    extensionRef: {group: weft.dev, kind: FaultInjection, name: unavailable}
  backendRefs: [{name: grpc, port: 50051}]
`)), ProxyOptions{Upstreams: []string{"grpc"}})
	client := grpcClient(t, p.Upstream["grpc"], nil)
	_, err := client.UnaryCall(testContext(t, 5*time.Second), &grpc_testing.SimpleRequest{})
	if st := status.Convert(err); st.Code() != codes.Unavailable {
		t.Errorf("gRPC call through an abort fault with grpcStatus 14: got %v %q, want Unavailable", st.Code(), st.Message())
	}
	if n := g.Calls.Load(); n != 0 {
		t.Errorf("backend got %d calls; aborted calls must not reach it", n)
	}
}
