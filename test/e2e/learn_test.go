package e2e

import (
	"net/http"
	"testing"
	"time"
	"weft.dev/weft/internal/compile"
)

// TestLearnOnDemand: a proxy that declared only service a is not sent b,
// yet its app's first call to b succeeds: the proxy asks the control plane
// for b and waits for it. A host that is no service is refused quickly.
func TestLearnOnDemand(t *testing.T) {
	t.Parallel()
	cp := StartControl(t, ControlOptions{})
	a := NewHTTPBackend(t, "a-1")
	b := NewHTTPBackend(t, "b-1")
	file := writeControlFile(t, "mesh.yaml", docs(serviceWith(t, "a", 80, "http", a), serviceWith(t, "b", 80, "http", b)))
	cp.MustCLI("apply", "-f", file)
	p := StartMeshProxy(t, []*ControlPlane{cp}, MeshProxyOptions{Name: "client", Labels: "app=client", DependsOn: "a"})
	has := func(cfg *compile.Config, name string) bool {
		for _, s := range cfg.Services {
			if s.Name == name {
				return true
			}
		}
		return false
	}
	// The first config may predate the apply's recompile; wait for a.
	waitAll(t, 5*time.Second, "service a", []*Proxy{p}, func(cfg *compile.Config) bool { return has(cfg, "a") })
	if has(p.RunningConfig(), "b") {
		t.Fatal("b was pushed though the proxy declared only a")
	}
	c := proxyClient(t, p)
	if r := mustOK(t, c, "http://a/"); r.Backend() != "a-1" {
		t.Fatalf("a answered by %q", r.Backend())
	}
	if r := mustOK(t, c, "http://b/"); r.Backend() != "b-1" {
		t.Fatalf("b answered by %q (learned on demand)", r.Backend())
	}
	start := time.Now()
	r := get(t, c, "http://nope/")
	if r.Status != http.StatusNotFound || r.WeftError() != "unknown-service" {
		t.Fatalf("unknown host: %s, want 404 unknown-service", r)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("unknown host took %s to refuse", d)
	}
	if !has(p.RunningConfig(), "b") {
		t.Fatal("b is not in the config after it was learned")
	}
}
