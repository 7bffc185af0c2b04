package compile

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGatewayGolden compiles every testdata/gateway/<scenario>.yaml for its
// only Gateway and compares the redacted result (certificates name only
// their Secret) with <scenario>.golden.json. Regenerate with -update.
func TestGatewayGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/gateway/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in testdata/gateway: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			g, err := CompileGateway(loadSet(t, file), GatewayOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(g.Redacted(), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(file, ".yaml") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/compile -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the compiler's output (run with -update and review the diff):\n%s", golden, firstDiff(want, got))
			}
		})
	}
}

// TestGatewayDeterministic wants the same Gateway from reversed inputs.
func TestGatewayDeterministic(t *testing.T) {
	files, _ := filepath.Glob("testdata/gateway/*.yaml")
	for _, file := range files {
		set := loadSet(t, file)
		a, err := CompileGateway(set, GatewayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		slices.Reverse(set.Services)
		slices.Reverse(set.HTTPRoutes)
		slices.Reverse(set.GRPCRoutes)
		slices.Reverse(set.TLSRoutes)
		slices.Reverse(set.TCPRoutes)
		slices.Reverse(set.Secrets)
		slices.Reverse(set.ReferenceGrants)
		slices.Reverse(set.RequestAuthentications)
		slices.Reverse(set.RateLimitPolicies)
		b, err := CompileGateway(set, GatewayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if a.Version != b.Version || !bytes.Equal(ja, jb) {
			t.Errorf("%s: output depends on input order:\n%s", file, firstDiff(ja, jb))
		}
	}
}

// TestGatewayStatus checks the reason of each route that does not attach
// or does not resolve, in the edge scenario.
func TestGatewayStatus(t *testing.T) {
	g, err := CompileGateway(loadSet(t, "testdata/gateway/edge.yaml"), GatewayOptions{Name: "edge"})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, r := range g.Status.Routes {
		for _, p := range r.Parents {
			for _, c := range p.Conditions {
				reasons[r.Kind+"/"+r.Name+"/"+c.Type] = c.Status + "/" + c.Reason
			}
		}
	}
	for k, want := range map[string]string{
		"HTTPRoute/web/Accepted":                  "True/Accepted",
		"HTTPRoute/web/ResolvedRefs":              "True/ResolvedRefs",
		"HTTPRoute/no-such-listener/Accepted":     "False/NoMatchingParent",
		"HTTPRoute/wrong-host/Accepted":           "False/NoMatchingListenerHostname",
		"HTTPRoute/foreign/Accepted":              "False/NotAllowedByListeners",
		"HTTPRoute/broken/Accepted":               "True/Accepted",
		"HTTPRoute/broken/ResolvedRefs":           "False/BackendNotFound",
		"TLSRoute/db-tls/Accepted":                "True/Accepted",
		"TCPRoute/db/Accepted":                    "True/Accepted",
		"GRPCRoute/api/Accepted":                  "True/Accepted",
		"HTTPRoute/to-https/Accepted":             "True/Accepted",
		"HTTPRoute/to-https/ResolvedRefs":         "True/ResolvedRefs",
		"HTTPRoute/no-such-listener/ResolvedRefs": "True/ResolvedRefs",
	} {
		if got := reasons[k]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	served := map[string]bool{}
	for _, l := range g.Listeners {
		served[l.Name] = true
	}
	for name, want := range map[string]bool{"http": true, "https-a": true, "https-b": true, "https-c": false, "pass": true, "db": true, "clash": false} {
		if served[name] != want {
			t.Errorf("listener %s served = %v, want %v", name, served[name], want)
		}
	}
	if _, err := CompileGateway(loadSet(t, "testdata/gateway/edge.yaml"), GatewayOptions{Name: "other"}); err == nil {
		t.Error("no error for a Gateway that does not exist")
	}
}

func TestIntersectHostnames(t *testing.T) {
	for _, c := range []struct {
		listener string
		route    []string
		want     []string
		ok       bool
	}{
		{"", nil, nil, true},
		{"", []string{"a.com"}, []string{"a.com"}, true},
		{"a.com", nil, []string{"a.com"}, true},
		{"*.a.com", []string{"x.a.com", "b.com", "*.y.a.com", "a.com"}, []string{"x.a.com", "*.y.a.com"}, true},
		{"x.a.com", []string{"*.a.com"}, []string{"x.a.com"}, true},
		{"x.a.com", []string{"*.b.com"}, nil, false},
		{"*.a.com", []string{"*.a.com", "*.com"}, []string{"*.a.com"}, true},
	} {
		got, ok := intersectHostnames(c.listener, c.route)
		if ok != c.ok || !slices.Equal(got, c.want) {
			t.Errorf("intersect(%q, %q) = %q, %v; want %q, %v", c.listener, c.route, got, ok, c.want, c.ok)
		}
	}
}
