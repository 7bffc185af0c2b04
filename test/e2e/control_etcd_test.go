package e2e

import (
	"strings"
	"testing"

	"weft.dev/weft/internal/control/store/etcdtest"
)

// StartEtcdControls starts n `weft control --store etcd` replicas on one
// test-started etcd (skipping when the etcd binary is absent), each with
// its own home, as on separate machines.
func StartEtcdControls(t *testing.T, n int, args ...string) []*ControlPlane {
	t.Helper()
	e := etcdtest.Start(t)
	cs := make([]*ControlPlane, n)
	for i := range cs {
		cs[i] = StartControl(t, ControlOptions{Store: "etcd", EtcdEndpoints: e.Endpoint, Args: args})
	}
	return cs
}

func TestControlEtcdReplicas(t *testing.T) {
	cs := StartEtcdControls(t, 2)
	a, b := cs[0], cs[1]

	// Replicas share the tokens: the CLI context of either works on both.
	if a.ClientConfig().Token != b.ClientConfig().Token || a.JoinToken() != b.JoinToken() {
		t.Fatal("replicas on one etcd have different tokens")
	}

	mesh := writeControlFile(t, "mesh.yaml", docs(ctlServices, ctlRoute(90, 10, "")))
	wantLines(t, "apply through a", a.MustCLI("apply", "-f", mesh),
		"service/reviews created", "service/reviews-v1 created", "service/reviews-v2 created", "httproute/reviews created")
	viaA := a.MustCLI("get", "all", "-o", "yaml")
	if viaB := b.MustCLI("get", "all", "-o", "yaml"); viaB != viaA {
		t.Errorf("replicas disagree:\nthrough a:\n%s\nthrough b:\n%s", viaA, viaB)
	}
	wantLines(t, "re-apply through b", b.MustCLI("apply", "-f", mesh),
		"service/reviews unchanged", "service/reviews-v1 unchanged", "service/reviews-v2 unchanged", "httproute/reviews unchanged")

	// Optimistic concurrency holds across replicas: a change through b
	// makes the version read through a stale.
	rv := resourceVersionOf(t, a.MustCLI("get", "httproute", "reviews", "-o", "yaml"))
	b.CLIStdin(ctlRoute(50, 50, ""), "apply", "-f", "-")
	r := a.CLIStdin(ctlRoute(0, 100, rv), "apply", "-f", "-")
	if r.Code == 0 || !strings.Contains(r.Stderr, "is stale") {
		t.Errorf("stale apply through a: %s", r)
	}
	if got := b.MustCLI("get", "httproute", "reviews", "-o", "yaml"); !strings.Contains(got, "weight: 50") {
		t.Errorf("route after a refused apply:\n%s", got)
	}

	// Deleted through a, gone through b; and b keeps serving when a dies.
	a.MustCLI("delete", "service", "reviews-v2")
	a.Kill()
	if r := b.CLI("get", "service", "reviews-v2"); r.Code == 0 || !strings.Contains(r.Stderr, "not found") {
		t.Errorf("deleted through a, still through b: %s", r)
	}
	b.CLIStdin(ctlRoute(100, 0, ""), "apply", "-f", "-")
	if got := b.MustCLI("get", "httproute", "reviews", "-o", "yaml"); !strings.Contains(got, "weight: 100") {
		t.Errorf("apply through b after a died:\n%s", got)
	}

	// A restarted replica rejoins with the same tokens and data.
	a = a.Restart()
	if a.ClientConfig().Token != b.ClientConfig().Token {
		t.Error("restarted replica has another token")
	}
	if viaA, viaB := a.MustCLI("get", "all", "-o", "yaml"), b.MustCLI("get", "all", "-o", "yaml"); viaA != viaB {
		t.Errorf("restarted replica disagrees:\n%s\n%s", viaA, viaB)
	}
}
