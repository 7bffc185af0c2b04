package e2e

import (
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/compile"
)

// The mesh of the push tests: reviews split over reviews-v1 and reviews-v2,
// whose workloads are registered by their sidecars (port "http").
const pushServices = `apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: http, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v1}
spec:
  selector: {app: reviews, version: v1}
  ports: [{name: http, port: 9080, targetPort: http, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2}
spec:
  selector: {app: reviews, version: v2}
  ports: [{name: http, port: 9080, targetPort: http, appProtocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: reviews}
spec:
  targetRef: {kind: Service, name: reviews}
  retry: {attempts: 3, perTryTimeout: 1s, retryOn: [5xx, reset, connect-failure]}
`

func pushRoute(w1, w2 int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: %d}
    - {name: reviews-v2, port: 9080, weight: %d}
`, w1, w2)
}

func weightsAre(w1, w2 int) func(*compile.Config) bool {
	want := fmt.Sprintf("reviews-v1.default:9080=%d,reviews-v2.default:9080=%d", w1, w2)
	return func(cfg *compile.Config) bool { return routeWeights(cfg, "default", "reviews") == want }
}

// pushMesh is a control plane, two versions of reviews behind their
// sidecars, and a client sidecar (productpage) that declared it calls
// reviews.
type pushMesh struct {
	cp              *ControlPlane
	v1, v2, client  *Proxy
	v1App, v2App    *HTTPBackend
	proxies         []*Proxy
	clientHTTP      *http.Client
	controlAddrsArg []*ControlPlane
}

func startPushMesh(t *testing.T, cps []*ControlPlane, w1, w2 int) *pushMesh {
	t.Helper()
	m := &pushMesh{cp: cps[0], controlAddrsArg: cps}
	m.cp.MustCLI("apply", "-f", writeControlFile(t, "mesh.yaml", docs(pushServices, pushRoute(w1, w2))))
	m.v1App = NewHTTPBackend(t, "reviews-v1")
	m.v2App = NewHTTPBackend(t, "reviews-v2")
	m.v1 = StartMeshProxy(t, cps, MeshProxyOptions{Name: "reviews-v1-a", Labels: "app=reviews,version=v1", Apps: map[string]string{"http": m.v1App.Addr}})
	m.v2 = StartMeshProxy(t, cps, MeshProxyOptions{Name: "reviews-v2-a", Labels: "app=reviews,version=v2", Apps: map[string]string{"http": m.v2App.Addr}})
	m.client = StartMeshProxy(t, cps, MeshProxyOptions{Name: "productpage", Labels: "app=productpage", DependsOn: "reviews"})
	m.proxies = []*Proxy{m.v1, m.v2, m.client}
	m.clientHTTP = proxyClient(t, m.client)
	// Every proxy knows both versions' endpoints (each registered by its
	// sidecar) before the test starts.
	waitAll(t, 10*time.Second, "both workloads", m.proxies, func(cfg *compile.Config) bool {
		return len(endpointAddrs(cfg, "reviews-v1.default:9080")) == 1 && len(endpointAddrs(cfg, "reviews-v2.default:9080")) == 1
	})
	return m
}

// apply applies YAML through the CLI and returns when the CLI returned.
func (m *pushMesh) apply(t *testing.T, yaml string) time.Time {
	t.Helper()
	if r := m.cp.CLIStdin(yaml, "apply", "-f", "-"); r.Code != 0 {
		t.Fatalf("weft apply: %s", r)
	}
	return time.Now()
}

// A weight change applied with the CLI reaches every proxy, and the traffic
// mix follows, within a second.
func TestPushWeightChange(t *testing.T) {
	t.Parallel()
	cp := StartControl(t, ControlOptions{})
	m := startPushMesh(t, []*ControlPlane{cp}, 100, 0)
	if got := countBackends(t, m.clientHTTP, "http://reviews:9080/", 20); got["reviews-v1"] != 20 {
		t.Fatalf("at 100/0: %v", got)
	}
	// Registration shows up in the endpoints: address = the app's host,
	// reached through the sidecar's inbound.
	cfg := m.client.RunningConfig()
	ep := cfg.Clusters["reviews-v2.default:9080"].Endpoints[0]
	if ep.Address != m.v2App.Addr || ep.Inbound == "" || ep.Workload != "default/reviews-v2-a" || ep.ServiceAccount != "reviews" {
		t.Errorf("reviews-v2 endpoint %+v", ep)
	}

	applied := m.apply(t, pushRoute(0, 100))
	slowest := waitAll(t, 5*time.Second, "weights 0/100", m.proxies, weightsAre(0, 100))
	if slowest > time.Second {
		t.Errorf("the last proxy had the new weights %v after the apply, want under 1s", slowest)
	}
	// Traffic follows: from the moment the client proxy has the new config
	// every request goes to v2.
	for i := 0; i < 20; i++ {
		if r := mustOK(t, m.clientHTTP, "http://reviews:9080/"); r.Backend() != "reviews-v2" {
			t.Fatalf("request %d after the change went to %s", i, r.Backend())
		}
	}
	t.Logf("weights reached all 3 proxies %v after weft apply returned (%v including the check)", slowest, time.Since(applied))

	m.apply(t, pushRoute(50, 50))
	if d := waitAll(t, 5*time.Second, "weights 50/50", m.proxies, weightsAre(50, 50)); d > time.Second {
		t.Errorf("50/50 reached the last proxy after %v", d)
	}
	got := countBackends(t, m.clientHTTP, "http://reviews:9080/", 400)
	if got["reviews-v1"] < 140 || got["reviews-v2"] < 140 {
		t.Errorf("at 50/50: %v", got)
	}

	// weft status shows all three, each having applied what it was sent.
	var st []string
	eventually(t, 5*time.Second, func() string {
		st = nil
		for _, p := range cp.proxyStatus() {
			if p.VersionSent == "" || p.VersionAcked != p.VersionSent || p.NackVersion != "" {
				return fmt.Sprintf("proxy %s not in sync: %+v", p.Name, p)
			}
			st = append(st, p.Name)
		}
		if !reflect.DeepEqual(st, []string{"productpage", "reviews-v1-a", "reviews-v2-a"}) {
			return fmt.Sprintf("status lists %v", st)
		}
		return ""
	})
	// The client got only what it calls: reviews and its backends.
	if cfg := m.client.RunningConfig(); len(cfg.Services) != 1 || cfg.Services[0].Name != "reviews" || len(cfg.Clusters) != 3 {
		t.Errorf("client scope: %d services, clusters %v", len(cfg.Services), len(cfg.Clusters))
	}
	if cfg := m.v1.RunningConfig(); len(cfg.Services) != 3 {
		t.Errorf("a proxy that declared no dependencies has %d services, want all 3", len(cfg.Services))
	}
}

// A workload whose proxy stops leaves every proxy's endpoints after the
// grace period; with retries on, traffic sees no error meanwhile.
func TestPushWorkloadLeaves(t *testing.T) {
	t.Parallel()
	cp := StartControl(t, ControlOptions{Args: []string{"--grace", "1s"}})
	m := startPushMesh(t, []*ControlPlane{cp}, 100, 0)
	// A second v1 workload, which will stop.
	app := NewHTTPBackend(t, "reviews-v1-b")
	b := StartMeshProxy(t, []*ControlPlane{cp}, MeshProxyOptions{Name: "reviews-v1-b", Labels: "app=reviews,version=v1", Apps: map[string]string{"http": app.Addr}})
	two := []string{m.v1App.Addr, app.Addr}
	if two[0] > two[1] {
		two[0], two[1] = two[1], two[0]
	}
	waitAll(t, 5*time.Second, "two v1 endpoints", m.proxies, func(cfg *compile.Config) bool {
		return reflect.DeepEqual(endpointAddrs(cfg, "reviews-v1.default:9080"), two)
	})

	// Two callers: the retry budget lets at least 3 requests retry at once.
	tr := startTraffic(t, m.clientHTTP, "http://reviews:9080/", 2)
	time.Sleep(300 * time.Millisecond)
	b.Stop()
	stopped := time.Now()
	d := waitAll(t, 10*time.Second, "one v1 endpoint", m.proxies, func(cfg *compile.Config) bool {
		return reflect.DeepEqual(endpointAddrs(cfg, "reviews-v1.default:9080"), []string{m.v1App.Addr})
	})
	t.Logf("the stopped workload left every proxy's endpoints %v after its proxy stopped (grace 1s)", time.Since(stopped))
	if d < 800*time.Millisecond {
		t.Errorf("endpoint removed after %v, before the grace period", d)
	}
	time.Sleep(200 * time.Millisecond)
	tr.finish(t, "traffic while a workload left")
}

// With the control plane killed, proxies keep serving with zero failed
// requests; after a restart they reconnect, re-register and an apply takes
// effect everywhere.
func TestPushControlPlaneDown(t *testing.T) {
	t.Parallel()
	cp := StartControl(t, ControlOptions{})
	m := startPushMesh(t, []*ControlPlane{cp}, 50, 50)

	tr := startTraffic(t, m.clientHTTP, "http://reviews:9080/", 4)
	time.Sleep(300 * time.Millisecond)
	cp.Kill()
	time.Sleep(2 * time.Second)
	if m.client.Exited() || m.v1.Exited() || m.v2.Exited() {
		t.Fatal("a proxy exited when the control plane died")
	}
	cp = cp.Restart()
	m.cp = cp
	eventually(t, 15*time.Second, func() string {
		if n := len(cp.proxyStatus()); n != 3 {
			return fmt.Sprintf("%d proxies reconnected", n)
		}
		return ""
	})
	m.apply(t, pushRoute(100, 0))
	waitAll(t, 15*time.Second, "weights 100/0 after the restart", m.proxies, weightsAre(100, 0))
	// Endpoints survived the restart (the proxies re-registered).
	for _, p := range m.proxies {
		cfg := p.RunningConfig()
		if len(endpointAddrs(cfg, "reviews-v1.default:9080")) != 1 || len(endpointAddrs(cfg, "reviews-v2.default:9080")) != 1 {
			t.Errorf("endpoints after restart: v1 %v v2 %v", endpointAddrs(cfg, "reviews-v1.default:9080"), endpointAddrs(cfg, "reviews-v2.default:9080"))
		}
	}
	tr.finish(t, "traffic across a control plane kill and restart")
	if got := countBackends(t, m.clientHTTP, "http://reviews:9080/", 20); got["reviews-v1"] != 20 {
		t.Errorf("after the restart and apply of 100/0: %v", got)
	}
}

// A config the proxy cannot apply is NACKed: weft status shows the
// version and the reason, and the proxy keeps serving its last good config.
//
// The trigger is a path regex that validation accepts but the proxy's
// route table refuses (\Q quotes the rest of the pattern, including the
// anchors the proxy adds around it). If validation learns to refuse it,
// this test needs another config the data plane refuses.
func TestPushNack(t *testing.T) {
	t.Parallel()
	cp := StartControl(t, ControlOptions{})
	app := NewHTTPBackend(t, "ratings-static")
	// A static Workload, for an endpoint that runs no proxy.
	cp.MustCLI("apply", "-f", writeControlFile(t, "ratings.yaml", `apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 80, targetPort: http, appProtocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: ratings-static, labels: {app: ratings}}
spec:
  address: `+hostOf(app.Addr)+`
  ports: [{name: http, port: `+portOf(app.Addr)+`}]
`))
	client := StartMeshProxy(t, []*ControlPlane{cp}, MeshProxyOptions{Name: "client", DependsOn: "ratings"})
	c := proxyClient(t, client)
	eventually(t, 5*time.Second, func() string {
		if r := get(t, c, "http://ratings/"); r.Backend() != "ratings-static" {
			return "ratings not served yet: " + r.String()
		}
		return ""
	})
	good := client.RunningConfig().Version

	cp.MustCLI("apply", "-f", writeControlFile(t, "bad.yaml", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ratings}
spec:
  parentRefs: [{group: "", kind: Service, name: ratings, port: 80}]
  rules:
  - matches: [{path: {type: RegularExpression, value: '/a\Q('}}]
    backendRefs: [{name: ratings, port: 80}]
`))
	var nacked string
	eventually(t, 5*time.Second, func() string {
		ps := cp.proxyStatus()
		if len(ps) != 1 || ps[0].NackVersion == "" {
			return fmt.Sprintf("no NACK in status: %+v", ps)
		}
		if !strings.Contains(ps[0].NackError, "regex") || ps[0].VersionAcked != good || ps[0].NackVersion != ps[0].VersionSent {
			return fmt.Sprintf("status %+v", ps[0])
		}
		nacked = ps[0].NackVersion
		return ""
	})
	if out := cp.MustCLI("status", "-o", "wide"); !strings.Contains(out, nacked) {
		t.Errorf("weft status -o wide does not show the NACK of %s:\n%s", nacked, out)
	}
	// Still the last good config, still serving.
	if v := client.RunningConfig().Version; v != good {
		t.Errorf("proxy runs %s, want its last good %s", v, good)
	}
	if r := mustOK(t, c, "http://ratings/anything"); r.Backend() != "ratings-static" {
		t.Errorf("after the NACK: %s", r)
	}

	// Removing the bad route is ACKed: back to the good config, whose
	// version is a content hash and so the same as before.
	cp.MustCLI("delete", "httproute", "ratings")
	eventually(t, 5*time.Second, func() string {
		ps := cp.proxyStatus()
		if len(ps) != 1 || ps[0].VersionSent == nacked || ps[0].VersionAcked != ps[0].VersionSent || ps[0].VersionAcked != good {
			return fmt.Sprintf("status %+v", ps)
		}
		return ""
	})
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// Three control plane replicas on one etcd: proxies spread over them; the
// replica the client proxy is connected to is killed under traffic; the
// proxies it served move to the others with zero failed requests, and an
// apply through a surviving replica reaches every proxy.
func TestPushHA(t *testing.T) {
	t.Parallel()
	cps := StartEtcdControls(t, 3)
	m := startPushMesh(t, cps, 50, 50)

	// Which replica serves the client?
	var victim *ControlPlane
	eventually(t, 5*time.Second, func() string {
		for _, p := range cps[1].proxyStatus() {
			if p.Name != "productpage" {
				continue
			}
			for _, c := range cps {
				if strings.HasSuffix(p.Replica, "@"+c.GRPC) {
					victim = c
					return ""
				}
			}
			return "productpage's replica " + p.Replica + " is none of ours"
		}
		return "productpage not in status"
	})
	var alive []*ControlPlane
	for _, c := range cps {
		if c != victim {
			alive = append(alive, c)
		}
	}

	tr := startTraffic(t, m.clientHTTP, "http://reviews:9080/", 4)
	time.Sleep(300 * time.Millisecond)
	victim.Kill()
	// Every proxy is connected to a surviving replica, in sync.
	eventually(t, 15*time.Second, func() string {
		ps := alive[0].proxyStatus()
		if len(ps) != 3 {
			return fmt.Sprintf("%d proxies in status", len(ps))
		}
		for _, p := range ps {
			if strings.HasSuffix(p.Replica, "@"+victim.GRPC) || !(p.VersionSent != "" && p.VersionAcked == p.VersionSent) {
				return fmt.Sprintf("%s: replica %s, sent %s, acked %s", p.Name, p.Replica, p.VersionSent, p.VersionAcked)
			}
		}
		return ""
	})
	alive[1].MustCLI("apply", "-f", writeControlFile(t, "route.yaml", pushRoute(100, 0)))
	if d := waitAll(t, 5*time.Second, "weights 100/0", m.proxies, weightsAre(100, 0)); d > time.Second {
		t.Errorf("the apply through a surviving replica reached the last proxy after %v", d)
	}
	// The moved proxies' workloads stayed registered throughout.
	for _, p := range m.proxies {
		cfg := p.RunningConfig()
		if len(endpointAddrs(cfg, "reviews-v1.default:9080")) != 1 || len(endpointAddrs(cfg, "reviews-v2.default:9080")) != 1 {
			t.Errorf("endpoints after the failover: v1 %v v2 %v", endpointAddrs(cfg, "reviews-v1.default:9080"), endpointAddrs(cfg, "reviews-v2.default:9080"))
		}
	}
	tr.finish(t, "traffic while a control plane replica died")
}

// A proxy that declared its dependencies learns a service it did not
// declare the first time its app calls it; a name that is no service is
// refused without waiting out the learning timeout.
func TestPushLearnOnDemand(t *testing.T) {
	t.Parallel()
	cp := StartControl(t, ControlOptions{})
	m := startPushMesh(t, []*ControlPlane{cp}, 100, 0)
	if cfg := m.client.RunningConfig(); len(cfg.Services) != 1 {
		t.Fatalf("client starts with %d services, want only reviews", len(cfg.Services))
	}
	start := time.Now()
	r := mustOK(t, m.clientHTTP, "http://reviews-v2:9080/")
	if r.Backend() != "reviews-v2" {
		t.Errorf("reviews-v2 answered by %q", r.Backend())
	}
	t.Logf("first call of an undeclared service answered after %v", time.Since(start))
	eventually(t, 5*time.Second, func() string {
		for _, p := range cp.proxyStatus() {
			if p.Name == "productpage" {
				if reflect.DeepEqual(p.Learned, []string{"default/reviews-v2"}) {
					return ""
				}
				return fmt.Sprintf("learned %v", p.Learned)
			}
		}
		return "productpage not in status"
	})

	start = time.Now()
	r = get(t, m.clientHTTP, "http://nope.default:80/")
	if r.Status != http.StatusNotFound || r.WeftError() != "unknown-service" {
		t.Errorf("unknown service: %s", r)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("refusing an unknown service took %v", d)
	}
}
