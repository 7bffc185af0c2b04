package compile

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"weft.dev/weft/internal/resource"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the compiler's output")

// scenarioOptions are the Options of scenarios that need more than the
// zero value.
var scenarioOptions = map[string]Options{
	"scope": {Namespace: "default", Services: []string{"default/frontend"}},
	"authz": {Namespace: "shop", Services: []string{}, Self: &Self{Namespace: "shop", Labels: map[string]string{"app": "ratings", "version": "v1"}}},
}

// TestGolden compiles every testdata/<scenario>.yaml and compares the result
// with testdata/<scenario>.golden.json. Regenerate with -update, then read
// the diff: it is exactly what the change does to proxies' config.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in testdata: %v", err)
	}
	seen := map[string]bool{}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			got := marshal(t, compileFile(t, file, scenarioOptions[name]))
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
	for name := range scenarioOptions {
		if !seen[name] {
			t.Errorf("scenarioOptions names %q, which has no testdata/%s.yaml", name, name)
		}
	}
}

func loadSet(t *testing.T, file string) *resource.Set {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := resource.Decode(filepath.Base(file), data)
	if err != nil {
		t.Fatalf("decode %s: %v", file, err)
	}
	return resource.NewSet(objs)
}

func compileFile(t *testing.T, file string, opts Options) *Config {
	t.Helper()
	cfg, err := Compile(loadSet(t, file), opts)
	if err != nil {
		t.Fatalf("compile %s: %v", file, err)
	}
	return cfg
}

func marshal(t *testing.T, cfg *Config) []byte {
	t.Helper()
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func firstDiff(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want: %s\n  got:  %s", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}

// TestDeterministic compiles every scenario twice, the second time with
// every input list reversed, and wants the same bytes and version: the
// control plane's store may list resources in any order.
func TestDeterministic(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			opts := scenarioOptions[name]
			set := loadSet(t, file)
			a, err := Compile(set, opts)
			if err != nil {
				t.Fatal(err)
			}
			slices.Reverse(set.Services)
			slices.Reverse(set.Workloads)
			slices.Reverse(set.HTTPRoutes)
			slices.Reverse(set.GRPCRoutes)
			slices.Reverse(set.TCPRoutes)
			slices.Reverse(set.TrafficPolicies)
			slices.Reverse(set.FaultInjections)
			b, err := Compile(set, opts)
			if err != nil {
				t.Fatal(err)
			}
			if a.Version != b.Version {
				t.Errorf("versions differ: %s, %s", a.Version, b.Version)
			}
			if ja, jb := marshal(t, a), marshal(t, b); !bytes.Equal(ja, jb) {
				t.Errorf("output depends on input order:\n%s", firstDiff(ja, jb))
			}
			if len(a.Version) != 16 {
				t.Errorf("version %q: want 16 hex characters", a.Version)
			}
		})
	}
}

// TestVersionTracksContent: the version is the hash of the config without
// it, and any change in the output changes it.
func TestVersionTracksContent(t *testing.T) {
	set := loadSet(t, "testdata/canary.yaml")
	a, err := Compile(set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := version(a)
	if err != nil || v != a.Version {
		t.Fatalf("version(a) = %q, %v; want %q", v, err, a.Version)
	}
	set.Workloads[0].Spec.Address = "127.0.0.9"
	b, err := Compile(set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Version == b.Version {
		t.Errorf("an endpoint changed but the version did not: %s", a.Version)
	}
}

func TestPrecedence(t *testing.T) {
	old := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	young := old.Add(time.Hour)
	route := func(name string, created time.Time) routeMeta {
		return routeMeta{kind: kindHTTPRoute, ns: "default", name: name, created: created}
	}
	grpc := routeMeta{kind: kindGRPCRoute, ns: "default", name: "g", created: old}
	path := func(typ, p string) *HTTPMatch { return &HTTPMatch{PathType: typ, Path: p} }
	hdrs := func(m *HTTPMatch, n int) *HTTPMatch {
		for i := range n {
			m.Headers = append(m.Headers, &ValueMatch{Name: fmt.Sprint("h", i), Value: "v"})
		}
		return m
	}
	// Each entry is named for where it must end up; the input is shuffled.
	type entry struct {
		want  string
		meta  routeMeta
		rule  int
		match int
		m     *HTTPMatch
	}
	entries := []entry{
		{"01 exact long", route("b", young), 0, 0, path(PathExact, "/a/b/c")},
		{"02 exact short", route("b", young), 1, 0, path(PathExact, "/a")},
		{"03 prefix longest", route("b", young), 2, 0, path(PathPrefix, "/a/b/c")},
		{"04 prefix /a, method", route("b", young), 3, 0, &HTTPMatch{PathType: PathPrefix, Path: "/a", Method: "GET"}},
		{"05 prefix /a, 2 headers", route("b", young), 4, 0, hdrs(path(PathPrefix, "/a"), 2)},
		{"06 prefix /a, 1 header, 2 queries", route("b", young), 5, 0, func() *HTTPMatch {
			m := hdrs(path(PathPrefix, "/a"), 1)
			m.Query = []*ValueMatch{{Name: "x", Value: "1"}, {Name: "y", Value: "2"}}
			return m
		}()},
		{"07 prefix /a, 1 header, older route", route("z", old), 0, 0, hdrs(path(PathPrefix, "/a"), 1)},
		{"08 prefix /a, 1 header, route a", route("a", young), 0, 0, hdrs(path(PathPrefix, "/a"), 1)},
		{"09 prefix /a, 1 header, route b rule 6 match 0", route("b", young), 6, 0, hdrs(path(PathPrefix, "/a"), 1)},
		{"10 prefix /a, 1 header, route b rule 6 match 1", route("b", young), 6, 1, hdrs(path(PathPrefix, "/a"), 1)},
		{"11 prefix /a, 1 header, route b rule 7", route("b", young), 7, 0, hdrs(path(PathPrefix, "/a"), 1)},
		{"12 no matches", route("a", old), 0, 0, nil},
		{"13 regex, older", route("a", old), 1, 0, path(PathRegex, "/x.*")},
		{"14 regex, younger (length does not count)", route("a", young), 1, 0, path(PathRegex, "/very/long/x.*")},
		{"15 gRPC, no method, 1 header", grpc, 0, 0, hdrs(&HTTPMatch{}, 1)},
		{"16 gRPC rule without matches", grpc, 1, 0, nil},
	}
	var cands []candidate
	for _, i := range []int{7, 15, 13, 0, 11, 4, 9, 2, 14, 12, 5, 1, 10, 3, 8, 6} {
		e := entries[i]
		cands = append(cands, candidate{rule: &HTTPRule{Route: e.want}, key: keyOf(e.meta, e.rule, e.match, e.m)})
	}
	sortCandidates(cands)
	for i, c := range cands {
		if c.rule.Route != entries[i].want {
			var got []string
			for _, c := range cands {
				got = append(got, c.rule.Route)
			}
			t.Fatalf("order:\n  %s", strings.Join(got, "\n  "))
		}
	}
}

func TestPortProtocol(t *testing.T) {
	ap := func(s string) *string { return &s }
	tests := []struct {
		name string
		app  *string
		want string
	}{
		{"", nil, ProtocolSniff},
		{"web", nil, ProtocolSniff},
		{"http", nil, ProtocolHTTP},
		{"http-web", nil, ProtocolHTTP},
		{"HTTP-Web", nil, ProtocolHTTP},
		{"https", nil, ProtocolSniff},
		{"httpbin", nil, ProtocolSniff},
		{"grpc", nil, ProtocolGRPC},
		{"grpc-api", nil, ProtocolGRPC},
		{"h2c-x", nil, ProtocolH2C},
		{"tcp-db", nil, ProtocolTCP},
		{"web", ap(""), ProtocolSniff},
		{"grpc", ap("http"), ProtocolHTTP}, // appProtocol wins over the name
		{"x", ap("h2c"), ProtocolH2C},
		{"x", ap("kubernetes.io/h2c"), ProtocolH2C},
		{"x", ap("grpc"), ProtocolGRPC},
		{"x", ap("tcp"), ProtocolTCP},
		{"x", ap("ws"), ProtocolWebSocket},
		{"x", ap("kubernetes.io/ws"), ProtocolWebSocket},
		{"x", ap("HTTP"), ProtocolHTTP},
		{"http", ap("kubernetes.io/wss"), ProtocolTCP},
		{"x", ap("mysql"), ProtocolTCP},
	}
	for _, tt := range tests {
		p := &corev1.ServicePort{Name: tt.name, AppProtocol: tt.app}
		if got := portProtocol(p); got != tt.want {
			app := "<nil>"
			if tt.app != nil {
				app = *tt.app
			}
			t.Errorf("name %q appProtocol %q: got %q, want %q", tt.name, app, got, tt.want)
		}
	}
}

func TestScopeErrors(t *testing.T) {
	for _, s := range []string{"frontend", "/frontend", "default/", "a/b/c", ""} {
		if _, err := Compile(&resource.Set{}, Options{Services: []string{s}}); err == nil {
			t.Errorf("scope %q: want an error", s)
		}
	}
	cfg, err := Compile(&resource.Set{}, Options{Services: []string{}})
	if err != nil || len(cfg.Services) != 0 || len(cfg.Clusters) != 0 {
		t.Errorf("empty scope: got %+v, %v; want an empty config", cfg, err)
	}
}

// TestOddInput feeds what validation should have refused (nil entries,
// missing fields, unknown types) and wants no panic, and a config that still
// holds together: every cluster a rule names exists.
func TestOddInput(t *testing.T) {
	str := func(s string) *string { return &s }
	i32 := func(v int32) *int32 { return &v }
	group := func(s string) *gwv1.Group { g := gwv1.Group(s); return &g }
	kind := func(s string) *gwv1.Kind { k := gwv1.Kind(s); return &k }
	svcParent := []gwv1.ParentReference{
		{},
		{Group: group(""), Kind: kind("Service"), Name: "svc"},
	}
	pathType := func(s string) *gwv1.PathMatchType { p := gwv1.PathMatchType(s); return &p }
	hdrType := func(s string) *gwv1.HeaderMatchType { h := gwv1.HeaderMatchType(s); return &h }
	bogus := gwv1.Duration("soon")
	set := &resource.Set{
		Services: []*corev1.Service{
			nil,
			{ObjectMeta: metav1.ObjectMeta{Name: "svc"}, Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "svc"},
				Ports: []corev1.ServicePort{
					{Port: 80, TargetPort: intstr.FromString("missing")},
					{Port: 81, TargetPort: intstr.FromInt32(-1)},
					{Port: 0},
					{Port: 82, AppProtocol: str("http")},
					{Port: 82, Protocol: corev1.ProtocolUDP},
				},
			}},
			{ObjectMeta: metav1.ObjectMeta{Name: "svc"}}, // duplicate
		},
		Workloads: []*resource.Workload{
			nil,
			{ObjectMeta: metav1.ObjectMeta{Name: "w", Labels: map[string]string{"app": "svc"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "w2", Labels: map[string]string{"app": "svc"}},
				Spec: resource.WorkloadSpec{Address: "10.0.0.1", Ports: []resource.WorkloadPort{{Name: "missing"}}}},
		},
		HTTPRoutes: []*gwv1.HTTPRoute{nil, {
			ObjectMeta: metav1.ObjectMeta{Name: "r"},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: svcParent},
				Rules: []gwv1.HTTPRouteRule{
					{}, // no matches, no backends
					{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: pathType("Glob")}}}},
					{Matches: []gwv1.HTTPRouteMatch{{Headers: []gwv1.HTTPHeaderMatch{{Name: "x", Type: hdrType("Fuzzy")}}}}},
					{Filters: []gwv1.HTTPRouteFilter{
						{Type: gwv1.HTTPRouteFilterRequestRedirect},
						{Type: gwv1.HTTPRouteFilterURLRewrite, URLRewrite: &gwv1.HTTPURLRewriteFilter{Path: &gwv1.HTTPPathModifier{Type: "Nope"}}},
						{Type: gwv1.HTTPRouteFilterRequestMirror, RequestMirror: &gwv1.HTTPRequestMirrorFilter{
							Fraction: &gwv1.Fraction{Numerator: 5, Denominator: i32(0)}}},
						{Type: gwv1.HTTPRouteFilterExtensionRef},
						{Type: gwv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gwv1.LocalObjectReference{Group: "example.com", Kind: "RateLimit", Name: "gold"}},
						{Type: gwv1.HTTPRouteFilterCORS, CORS: &gwv1.HTTPCORSFilter{}},
						{Type: "Teleport"},
					}},
					{
						Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: pathType(PathExact), Value: str("/x")}}},
						Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterURLRewrite, URLRewrite: &gwv1.HTTPURLRewriteFilter{
							Path: &gwv1.HTTPPathModifier{Type: gwv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: str("/y")}}}},
						BackendRefs: []gwv1.HTTPBackendRef{
							{},
							{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "svc"}}},
							{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
								Kind: kind("Bucket"), Name: "b", Port: i32(1)}}},
							{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "svc", Port: i32(80)}, Weight: i32(-5)},
								Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestHeaderModifier}}},
						},
						Timeouts: &gwv1.HTTPRouteTimeouts{Request: &bogus},
					},
				},
			},
		}},
		GRPCRoutes: []*gwv1.GRPCRoute{nil, {
			ObjectMeta: metav1.ObjectMeta{Name: "g"},
			Spec: gwv1.GRPCRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: svcParent},
				Rules: []gwv1.GRPCRouteRule{
					{Matches: []gwv1.GRPCRouteMatch{{Method: &gwv1.GRPCMethodMatch{}}, {Method: &gwv1.GRPCMethodMatch{Type: new(gwv1.GRPCMethodMatchType)}}}},
					{Filters: []gwv1.GRPCRouteFilter{{Type: "RequestRedirect"}}},
				},
			},
		}},
		TCPRoutes: []*gwv1.TCPRoute{nil, {
			ObjectMeta: metav1.ObjectMeta{Name: "t"},
			Spec: gwv1.TCPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: svcParent},
				Rules:           []gwv1.TCPRouteRule{{BackendRefs: []gwv1.BackendRef{{}, {BackendObjectReference: gwv1.BackendObjectReference{Name: "nowhere", Port: i32(9)}}}}},
			},
		}},
		TrafficPolicies: []*resource.TrafficPolicy{nil,
			{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: resource.TrafficPolicySpec{
				TargetRef:        resource.PolicyTargetRef{Kind: "Service", Name: "svc"},
				LoadBalancer:     &resource.LoadBalancer{Type: resource.LBRingHash},
				Retry:            &resource.Retry{Attempts: -1, Backoff: &resource.RetryBackoff{}, Budget: &resource.RetryBudget{}},
				OutlierDetection: &resource.OutlierDetection{MaxEjectionPercent: i32(500)},
				HealthCheck:      &resource.HealthCheck{},
				ZoneAware:        &resource.ZoneAware{Enabled: true, MinHealthyPercent: 1000},
			}},
			{ObjectMeta: metav1.ObjectMeta{Name: "q"}, Spec: resource.TrafficPolicySpec{TargetRef: resource.PolicyTargetRef{Kind: "Pod", Name: "svc"}}},
		},
		FaultInjections: []*resource.FaultInjection{nil},
	}
	cfg, err := Compile(set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Services) != 1 || len(cfg.Services[0].Ports) != 3 {
		t.Fatalf("want one service with ports 80, 81, 82; got %s", marshal(t, cfg))
	}
	for _, p := range cfg.Services[0].Ports {
		for _, b := range p.TCP.Backends {
			if cfg.Clusters[b.Cluster] == nil {
				t.Errorf("port %d: TCP backend %s has no cluster", p.Port, b.Cluster)
			}
		}
		if p.HTTP == nil {
			t.Fatalf("port %d: no HTTP routing", p.Port)
		}
		rules := p.HTTP.Rules
		// Routes attach to every port, so no port gets the no-route default.
		for _, r := range rules {
			if r.Route == "" {
				t.Errorf("port %d: a default rule sits beside attached routes: %+v", p.Port, r)
			}
		}
		invalid := 0
		for _, r := range rules {
			if r.Invalid != "" {
				invalid++
			}
			for _, b := range r.Backends {
				if cfg.Clusters[b.Cluster] == nil {
					t.Errorf("port %d rule %s: backend %s has no cluster", p.Port, r.Route, b.Cluster)
				}
			}
			for _, m := range r.Mirrors {
				if cfg.Clusters[m.Cluster] == nil {
					t.Errorf("port %d rule %s: mirror %s has no cluster", p.Port, r.Route, m.Cluster)
				}
			}
		}
		// Every rule of r but the first (no matches, no backends) and of g
		// but the one with an empty method match is broken in some way.
		if invalid != 6 {
			t.Errorf("port %d: %d invalid rules, want 6:\n%s", p.Port, invalid, marshal(t, cfg))
		}
	}
	// Only w2 has an address, and it lacks the named port of 80 while 81's
	// targetPort is nonsense: it is an endpoint of 82 alone.
	for name, cl := range cfg.Clusters {
		want := 0
		if name == "svc.default:82" {
			want = 1
		}
		if len(cl.Endpoints) != want {
			t.Errorf("cluster %s: %d endpoints, want %d", name, len(cl.Endpoints), want)
		}
	}
	if eps := cfg.Clusters["svc.default:82"].Endpoints; len(eps) == 1 && eps[0].Address != "10.0.0.1:82" {
		t.Errorf("endpoint %s, want 10.0.0.1:82", eps[0].Address)
	}
}

// TestNilSet: a nil set is an empty mesh, not a crash.
func TestNilSet(t *testing.T) {
	cfg, err := Compile(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(marshal(t, cfg)); !strings.Contains(got, `"services": []`) || !strings.Contains(got, `"clusters": {}`) {
		t.Errorf("got %s", got)
	}
}
