package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const ctlServices = `apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v1}
spec:
  selector: {app: reviews, version: v1}
  ports: [{name: http, port: 9080, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2}
spec:
  selector: {app: reviews, version: v2}
  ports: [{name: http, port: 9080, appProtocol: http}]
`

// ctlRoute is a canary split; weights vary per test step.
func ctlRoute(w1, w2 int, resourceVersion string) string {
	rv := ""
	if resourceVersion != "" {
		rv = ", resourceVersion: \"" + resourceVersion + "\""
	}
	return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews` + rv + `}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: ` + strconv.Itoa(w1) + `}
    - {name: reviews-v2, port: 9080, weight: ` + strconv.Itoa(w2) + `}
`
}

const ctlPolicy = `apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: reviews}
spec:
  targetRef: {kind: Service, name: reviews}
  retry: {attempts: 3, perTryTimeout: 500ms, retryOn: [5xx]}
`

var rvLine = regexp.MustCompile(`(?m)^\s*resourceVersion: "?(\d+)"?$`)

// resourceVersionOf reads metadata.resourceVersion from `weft get -o yaml`.
func resourceVersionOf(t testing.TB, yaml string) string {
	t.Helper()
	m := rvLine.FindStringSubmatch(yaml)
	if m == nil {
		t.Fatalf("no resourceVersion in:\n%s", yaml)
	}
	return m[1]
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func wantLines(t testing.TB, what, got string, want ...string) {
	t.Helper()
	if g := strings.TrimSpace(got); g != strings.Join(want, "\n") {
		t.Errorf("%s:\n%s\nwant:\n%s", what, g, strings.Join(want, "\n"))
	}
}

func TestControlApplyGetDelete(t *testing.T) {
	c := StartControl(t, ControlOptions{})

	// First start: the CLI context and join token are written, private,
	// and the log says where, never what.
	cfg := c.ClientConfig()
	join := c.JoinToken()
	for _, f := range []string{filepath.Join(c.Home, "config"), filepath.Join(c.DataDir, "join.token")} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
		if !strings.Contains(c.Stderr.String(), f) {
			t.Errorf("control output does not say where %s is", f)
		}
	}
	if out := c.Stderr.String(); strings.Contains(out, cfg.Token) || strings.Contains(out, join) {
		t.Error("control output shows a token")
	}

	mesh := writeControlFile(t, "mesh.yaml", docs(ctlServices, ctlRoute(90, 10, ""), ctlPolicy))
	wantLines(t, "first apply", c.MustCLI("apply", "-f", mesh),
		"service/reviews created", "service/reviews-v1 created", "service/reviews-v2 created",
		"httproute/reviews created", "trafficpolicy/reviews created")
	wantLines(t, "re-apply", c.MustCLI("apply", "-f", mesh),
		"service/reviews unchanged", "service/reviews-v1 unchanged", "service/reviews-v2 unchanged",
		"httproute/reviews unchanged", "trafficpolicy/reviews unchanged")

	table := c.MustCLI("get", "services")
	if !regexp.MustCompile(`(?m)^NAMESPACE\s+NAME\s+VERSION\s+AGE$`).MatchString(table) ||
		!regexp.MustCompile(`(?m)^default\s+reviews-v2\s+\d+\s+\d+s$`).MatchString(table) || strings.Count(table, "\n") != 4 {
		t.Errorf("get services:\n%s", table)
	}

	routeYAML := c.MustCLI("get", "httproute", "reviews", "-o", "yaml")
	rv := resourceVersionOf(t, routeYAML)
	if !strings.Contains(routeYAML, "weight: 90") || !strings.Contains(routeYAML, "kind: HTTPRoute") {
		t.Errorf("get -o yaml:\n%s", routeYAML)
	}
	if js := c.MustCLI("get", "HTTPRoutes/reviews", "-o", "json"); !strings.Contains(js, `"resourceVersion": "`+rv+`"`) {
		t.Errorf("get -o json:\n%s", js)
	}

	// Someone else changes the route; an apply of what we read (carrying
	// the old resourceVersion) is refused and changes nothing.
	wantLines(t, "change weights", c.CLIStdin(ctlRoute(50, 50, ""), "apply", "-f", "-").Stdout, "httproute/reviews configured")
	current := c.MustCLI("get", "httproute", "reviews", "-o", "yaml")
	stale := writeControlFile(t, "stale.yaml", docs(ctlRoute(0, 100, rv), strings.Replace(ctlPolicy, "attempts: 3", "attempts: 5", 1)))
	r := c.CLI("apply", "-f", stale)
	if r.Code == 0 || !strings.Contains(r.Stderr, `(HTTPRoute "reviews"): metadata.resourceVersion: resourceVersion `+rv+` is stale`) ||
		!strings.Contains(r.Stderr, stale+": document 1") {
		t.Errorf("stale apply: %s", r)
	}
	if got := c.MustCLI("get", "httproute", "reviews", "-o", "yaml"); got != current {
		t.Errorf("a refused apply changed the route:\n%s\nwas:\n%s", got, current)
	}
	if got := c.MustCLI("get", "trafficpolicy", "reviews", "-o", "yaml"); !strings.Contains(got, "attempts: 3") {
		t.Errorf("a refused apply changed the policy in the same request:\n%s", got)
	}
	// With the current version it is accepted.
	wantLines(t, "apply with current version",
		c.CLIStdin(ctlRoute(0, 100, resourceVersionOf(t, current)), "apply", "-f", "-").Stdout, "httproute/reviews configured")

	// One invalid document refuses the whole file; the error names file,
	// document, kind and name, field and reason.
	bad := writeControlFile(t, "bad.yaml", docs(
		strings.Replace(ctlPolicy, "name: reviews}", "name: ratings}", 1),
		strings.Replace(ctlRoute(90, 10, ""), "weight: 10", "weight: -1", 1)))
	r = c.CLI("apply", "-f", bad)
	wantErr := bad + `: document 2 (HTTPRoute "reviews"): spec.rules[0].backendRefs[1].weight: must be between 0 and 1000000, got -1`
	if r.Code == 0 || !strings.Contains(r.Stderr, wantErr) || !strings.Contains(r.Stderr, "nothing was changed") {
		t.Errorf("invalid apply: %s\nwant the line %s", r, wantErr)
	}
	if r := c.CLI("get", "trafficpolicy", "ratings"); r.Code == 0 || !strings.Contains(r.Stderr, "not found") {
		t.Errorf("the valid document of a refused file was stored: %s", r)
	}

	// A directory is one all-or-nothing apply too.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(strings.Replace(ctlPolicy, "name: reviews}", "name: ratings}", 1)), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 0}]}\n"), 0o644)
	if r := c.CLI("apply", "-f", dir); r.Code == 0 || !strings.Contains(r.Stderr, filepath.Join(dir, "b.yaml")+": document 1") {
		t.Errorf("bad dir: %s", r)
	}
	if r := c.CLI("get", "trafficpolicy", "ratings"); r.Code == 0 {
		t.Errorf("a file of a refused directory was stored: %s", r)
	}
	os.Remove(filepath.Join(dir, "b.yaml"))
	wantLines(t, "apply dir", c.MustCLI("apply", "-f", dir), "trafficpolicy/ratings created")

	// Delete by name and by file.
	wantLines(t, "delete by name", c.MustCLI("delete", "trafficpolicy", "ratings"), "trafficpolicy/ratings deleted")
	policyFile := writeControlFile(t, "policy.yaml", ctlPolicy)
	wantLines(t, "delete -f", c.MustCLI("delete", "-f", policyFile), "trafficpolicy/reviews deleted")
	if r := c.CLI("delete", "-f", policyFile); r.Code == 0 || !strings.Contains(r.Stderr, "not found") {
		t.Errorf("delete of a missing object: %s", r)
	}
	if r := c.CLI("get", "trafficpolicies"); r.Code != 0 || !strings.Contains(r.Stdout, "No resources found") {
		t.Errorf("get after delete: %s", r)
	}
	if r := c.CLI("get", "gizmos"); r.Code == 0 || !strings.Contains(r.Stderr, `unknown kind "gizmos"`) {
		t.Errorf("get unknown kind: %s", r)
	}
	if r := c.CLI("status"); r.Code != 0 || !strings.Contains(r.Stdout, "No proxies connected") {
		t.Errorf("status: %s", r)
	}
}

func TestControlAuth(t *testing.T) {
	c := StartControl(t, ControlOptions{})
	token := c.ClientConfig().Token
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/api/v1/resources/services", "", 401},
		{"GET", "/api/v1/resources/services", "wrong", 401},
		{"GET", "/api/v1/resources/services", token[:len(token)-1], 401},
		{"GET", "/api/v1/status", "", 401},
		{"POST", "/api/v1/apply", "", 401},
		{"DELETE", "/api/v1/resources/service/default/x", "", 401},
		{"GET", "/api/v1/resources/services", token, 200},
		{"GET", "/api/v1/status", token, 200},
	} {
		code, body := c.APICall(tc.method, tc.path, tc.token, "")
		if code != tc.want {
			t.Errorf("%s %s with token %q: %d, want %d: %s", tc.method, tc.path, tc.token, code, tc.want, body)
		}
		if code == 401 && !strings.Contains(body, `"error"`) {
			t.Errorf("401 without a JSON error: %s", body)
		}
	}
	// The CLI with a wrong token says so and fails.
	r := c.CLI("get", "services", "--token", "wrong")
	if r.Code == 0 || !strings.Contains(r.Stderr, "admin token") {
		t.Errorf("CLI with a wrong token: %s", r)
	}
	// Flags override the context: another home with no context works with
	// --server and --token.
	r = runCLI(t, []string{"WEFT_HOME=" + t.TempDir()}, "", "get", "services", "--server", "http://"+c.HTTP, "--token", token)
	if r.Code != 0 {
		t.Errorf("CLI with --server and --token: %s", r)
	}
	r = runCLI(t, []string{"WEFT_HOME=" + t.TempDir()}, "", "get", "services")
	if r.Code == 0 || !strings.Contains(r.Stderr, "no CLI context") {
		t.Errorf("CLI without a context: %s", r)
	}
}

func TestControlRestartKeepsData(t *testing.T) {
	c := StartControl(t, ControlOptions{})
	mesh := writeControlFile(t, "mesh.yaml", docs(ctlServices, ctlRoute(90, 10, "")))
	c.MustCLI("apply", "-f", mesh)
	before := c.MustCLI("get", "all", "-o", "yaml")
	token, join := c.ClientConfig().Token, c.JoinToken()

	c = c.Restart()
	if after := c.MustCLI("get", "all", "-o", "yaml"); after != before {
		t.Errorf("resources changed across a restart:\n%s\nbefore:\n%s", after, before)
	}
	if c.ClientConfig().Token != token || c.JoinToken() != join {
		t.Error("tokens changed across a restart")
	}
	wantLines(t, "re-apply after restart", c.MustCLI("apply", "-f", mesh),
		"service/reviews unchanged", "service/reviews-v1 unchanged", "service/reviews-v2 unchanged", "httproute/reviews unchanged")
	// Revisions keep counting from where they were.
	rv := resourceVersionOf(t, c.MustCLI("get", "httproute", "reviews", "-o", "yaml"))
	c.CLIStdin(ctlRoute(10, 90, ""), "apply", "-f", "-")
	rv2 := resourceVersionOf(t, c.MustCLI("get", "httproute", "reviews", "-o", "yaml"))
	if a, b := atoi(t, rv), atoi(t, rv2); b <= a {
		t.Errorf("resourceVersion after restart went from %s to %s", rv, rv2)
	}
}
