package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `weft gateway --control`: the gateway runs a Gateway applied to the
// control plane, with an identity the control plane issues, and reaches
// sidecar'd services over mutual TLS.

// StartControlGateway runs `weft gateway --control` for Gateway name
// until the test ends, and returns once /ready answers (it has its
// config).
func StartControlGateway(t testing.TB, cp *ControlPlane, name string, args ...string) *Proxy {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "join.token")
	if err := os.WriteFile(tokenFile, []byte(cp.JoinToken()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &Proxy{t: t, Admin: freeAddr(t), Upstream: map[string]string{}, Stderr: &syncBuffer{}, exited: make(chan struct{})}
	argv := append([]string{"gateway", "--control", cp.GRPC, "--token-file", tokenFile, "--name", name,
		"--bind", "127.0.0.1", "--admin", g.Admin, "--access-log", "off", "--log-level", "debug"}, args...)
	g.cmd = exec.Command(weftBin, argv...)
	g.cmd.Stdout, g.cmd.Stderr = g.Stderr, g.Stderr
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", weftBin, err)
	}
	go func() { g.err = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		g.Stop()
		if t.Failed() {
			t.Logf("weft %s\n--- gateway output ---\n%s--- end of gateway output ---", strings.Join(argv, " "), g.Stderr.String())
		}
	})
	if err := g.waitReady(20 * time.Second); err != nil {
		t.Fatalf("weft gateway --control did not become ready: %v\n%s", err, g.Stderr.String())
	}
	return g
}

// controlEdgeGateway is a Gateway with an HTTP listener and an HTTPS one (the
// certificate from a Secret) on the given ports.
func controlEdgeGateway(name string, httpPort, httpsPort int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: %s}
spec:
  gatewayClassName: weft
  listeners:
  - {name: web, port: %d, protocol: HTTP}
  - name: secure
    port: %d
    protocol: HTTPS
    hostname: shop.example.test
    tls: {certificateRefs: [{name: shop-cert}]}
`, name, httpPort, httpsPort)
}

// routeStatusYAML is `weft get httproute NAME -o yaml`.
func routeStatusYAML(cp *ControlPlane, name string) string {
	return cp.MustCLI("get", "httproute", name, "-o", "yaml")
}

// The whole edge path through the control plane: HTTP and HTTPS through
// the gateway reach a sidecar'd app over mTLS with the gateway's SPIFFE ID;
// a workload registered later gets traffic; a route change takes effect
// within a second; route status says why a route is not attached; the
// certificate's key shows nowhere.
func TestGatewayControlPlane(t *testing.T) {
	t.Parallel()
	cp := StartControl(t, ControlOptions{})
	ca := newTestCA(t)
	httpPort, httpsPort := freePort(t), freePort(t)
	secret := ca.tlsSecret(t, "shop-cert", "shop.example.test")
	cp.MustCLI("apply", "-f", writeControlFile(t, "edge.yaml", docs(
		service("web", 9080, "http", "app: web"),
		service("web-b", 9080, "http", "app: web, track: b"),
		controlEdgeGateway("edge", httpPort, httpsPort),
		secret,
		gatewayRoute("shop", "edge", "", "", "- backendRefs: [{name: web, port: 9080}]"),
		gatewayRoute("bad-backend", "edge", "", "bad.example.test", "- backendRefs: [{name: nowhere, port: 9080}]"),
		gatewayRoute("no-listener", "edge", "websocket", "", "- backendRefs: [{name: web, port: 9080}]"),
		gatewayRoute("no-gateway", "elsewhere", "", "", "- backendRefs: [{name: web, port: 9080}]"),
	)))

	app1 := NewHTTPBackend(t, "web-1")
	StartMeshProxy(t, []*ControlPlane{cp}, MeshProxyOptions{Name: "web-1", Labels: "app=web,track=a", Apps: map[string]string{"main": app1.Addr}})
	gw := StartControlGateway(t, cp, "edge")
	c := gatewayClient(fmt.Sprintf("127.0.0.1:%d", httpPort), nil)

	// HTTP through the gateway, over mTLS to web's sidecar: the app sees
	// the gateway's identity (service account = the Gateway's name). The
	// gateway may have its config a moment before web-1's endpoint.
	var r Result
	eventually(t, 5*time.Second, func() string {
		var err error
		if r, err = send(c, http.MethodGet, "http://shop.example.test/hello", nil); err != nil || r.Backend() != "web-1" {
			return fmt.Sprintf("%v %v", r, err)
		}
		return ""
	})
	if xfcc := r.Echo.Header.Get("X-Forwarded-Client-Cert"); !strings.Contains(xfcc, "URI=spiffe://weft.local/ns/default/sa/edge") {
		t.Errorf("the app saw X-Forwarded-Client-Cert %q, want the gateway's SPIFFE ID", xfcc)
	}
	// HTTPS with the Secret's certificate, delivered by the control plane.
	tc := gatewayClient(fmt.Sprintf("127.0.0.1:%d", httpsPort), ca.Pool)
	if r := mustOK(t, tc, "https://shop.example.test/secure"); r.Backend() != "web-1" {
		t.Errorf("HTTPS backend %q", r.Backend())
	}

	// A workload registered later receives gateway traffic.
	app2 := NewHTTPBackend(t, "web-2")
	StartMeshProxy(t, []*ControlPlane{cp}, MeshProxyOptions{Name: "web-2", Labels: "app=web,track=b", Apps: map[string]string{"main": app2.Addr}})
	eventually(t, 10*time.Second, func() string {
		got := countBackends(t, c, "http://shop.example.test/", 20)
		if got["web-1"] == 0 || got["web-2"] == 0 {
			return fmt.Sprintf("backends %v, want both web-1 and web-2", got)
		}
		return ""
	})

	// A changed route takes effect within about a second of the apply.
	start := time.Now()
	cp.MustCLI("apply", "-f", writeControlFile(t, "shop.yaml", gatewayRoute("shop", "edge", "", "", "- backendRefs: [{name: web-b, port: 9080}]")))
	applied := time.Now()
	for {
		got := countBackends(t, c, "http://shop.example.test/", 10)
		if got["web-2"] == 10 {
			break
		}
		if time.Since(applied) > 5*time.Second {
			t.Fatalf("route change not in effect after 5s: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(applied)
	t.Logf("route change in effect %v after apply returned (%v after it started)", took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if took > 1500*time.Millisecond {
		t.Errorf("route change took %v, want about a second at most", took)
	}

	// Why routes are (not) attached, in weft get -o yaml.
	eventually(t, 5*time.Second, func() string {
		for name, want := range map[string][]string{
			"shop":        {"type: Accepted", `status: "True"`, "reason: ResolvedRefs", "controllerName: weft.dev/gateway-controller"},
			"bad-backend": {"reason: BackendNotFound", "message: Service default/nowhere not found"},
			"no-listener": {"reason: NoMatchingParent", `has no listener named "websocket"`},
			"no-gateway":  {"reason: NoMatchingParent", "message: Gateway default/elsewhere not found"},
		} {
			y := routeStatusYAML(cp, name)
			for _, w := range want {
				if !strings.Contains(y, w) {
					return fmt.Sprintf("httproute %s lacks %q:\n%s", name, w, y)
				}
			}
		}
		return ""
	})
	// Re-applying a route leaves it unchanged, status included.
	if out := cp.MustCLI("apply", "-f", writeControlFile(t, "bad.yaml", gatewayRoute("bad-backend", "edge", "", "bad.example.test", "- backendRefs: [{name: nowhere, port: 9080}]"))); !strings.Contains(out, "unchanged") {
		t.Errorf("re-apply: %s", out)
	}
	if y := routeStatusYAML(cp, "bad-backend"); !strings.Contains(y, "reason: BackendNotFound") {
		t.Errorf("status gone after a re-apply:\n%s", y)
	}
	if y := cp.MustCLI("get", "gateway", "edge", "-o", "yaml"); !strings.Contains(y, "attachedRoutes: 2") || !strings.Contains(y, "reason: Programmed") {
		t.Errorf("gateway status:\n%s", y)
	}

	// The certificate's key travels only on the gateway's stream.
	key := secretKeyLine(t, secret)
	for what, text := range map[string]string{
		"weft get all -o yaml":       cp.MustCLI("get", "all", "-o", "yaml"),
		"weft get gateway -o yaml":   cp.MustCLI("get", "gateway", "edge", "-o", "yaml"),
		"the gateway's /config":      gw.ConfigDump(),
		"the gateway's log":          gw.Stderr.String(),
		"the control plane's log":    cp.Stderr.String(),
		"weft get httproute -o yaml": routeStatusYAML(cp, "shop"),
	} {
		if strings.Contains(text, key) || strings.Contains(text, "PRIVATE KEY") {
			t.Errorf("%s shows the certificate's private key", what)
		}
	}
}

// secretKeyLine is a line of the base64 body of the Secret's key.
func secretKeyLine(t testing.TB, secret string) string {
	t.Helper()
	lines := strings.Split(secret, "\n")
	for i, l := range lines {
		if strings.Contains(l, "BEGIN") && strings.Contains(l, "PRIVATE KEY") && i+1 < len(lines) {
			return strings.TrimSpace(lines[i+1])
		}
	}
	t.Fatal("no key in the secret")
	return ""
}

// A gateway whose Gateway is applied after it starts waits for it; when
// the Gateway is deleted, its listeners close. A Gateway may name the
// service account that runs it; another identity is refused.
func TestGatewayControlLifecycle(t *testing.T) {
	t.Parallel()
	cp := StartControl(t, ControlOptions{})
	port := freePort(t)
	tokenFile := filepath.Join(t.TempDir(), "join.token")
	if err := os.WriteFile(tokenFile, []byte(cp.JoinToken()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &Proxy{t: t, Admin: freeAddr(t), Upstream: map[string]string{}, Stderr: &syncBuffer{}, exited: make(chan struct{})}
	g.cmd = exec.Command(weftBin, "gateway", "--control", cp.GRPC, "--token-file", tokenFile, "--name", "late",
		"--bind", "127.0.0.1", "--admin", g.Admin, "--access-log", "off")
	g.cmd.Stdout, g.cmd.Stderr = g.Stderr, g.Stderr
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.err = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		g.Stop()
		if t.Failed() {
			t.Logf("--- gateway output ---\n%s", g.Stderr.String())
		}
	})
	g.WaitOutput(10*time.Second, "waiting for it")
	if status, _ := g.adminGet("/ready"); status == http.StatusOK {
		t.Fatal("ready without a Gateway")
	}

	backend := NewHTTPBackend(t, "api-1")
	cp.MustCLI("apply", "-f", writeControlFile(t, "late.yaml", docs(
		service("api", 80, "http", ""),
		workload(t, "api-1", backend.Addr, "app: api", ""),
		fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: late}
spec:
  gatewayClassName: weft
  listeners: [{name: web, port: %d, protocol: HTTP}]
`, port),
		gatewayRoute("api", "late", "", "", "- backendRefs: [{name: api, port: 80}]"),
	)))
	if err := g.waitReady(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	c := gatewayClient(fmt.Sprintf("127.0.0.1:%d", port), nil)
	eventually(t, 5*time.Second, func() string {
		if r, err := send(c, http.MethodGet, "http://api.example.test/", nil); err != nil || r.Backend() != "api-1" {
			return fmt.Sprintf("%v %v", r, err)
		}
		return ""
	})

	cp.MustCLI("delete", "gateway", "late")
	eventually(t, 5*time.Second, func() string {
		if _, err := send(c, http.MethodGet, "http://api.example.test/", nil); err == nil {
			return "the listener still answers after the Gateway was deleted"
		}
		return ""
	})

	// Another service account may not run a Gateway that names its own.
	cp.MustCLI("apply", "-f", writeControlFile(t, "owned.yaml", fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: owned, annotations: {weft.dev/service-account: ingress}}
spec:
  gatewayClassName: weft
  listeners: [{name: web, port: %d, protocol: HTTP}]
`, freePort(t))))
	out, err := exec.Command(weftBin, "gateway", "--control", cp.GRPC, "--token-file", tokenFile, "--name", "owned",
		"--admin", "", "--access-log", "off").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "may be run by service account ingress, not owned") {
		t.Fatalf("a gateway with the wrong identity: %v\n%s", err, out)
	}
	StartControlGateway(t, cp, "owned", "--service-account", "ingress")
}
