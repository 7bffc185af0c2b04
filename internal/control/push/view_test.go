package push

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/resource"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// storeObjects decodes YAML into store objects, as `weft apply` stores them.
func storeObjects(t testing.TB, yaml string) []*store.Object {
	t.Helper()
	objs, err := resource.Decode("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	out := make([]*store.Object, len(objs))
	for i, o := range objs {
		data, err := json.Marshal(o.Value)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = &store.Object{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Data: data, ResourceVersion: "1"}
	}
	return out
}

// assemble turns a scoped view into the Config a proxy would build.
func assemble(t testing.TB, sc *scoped) *compile.Config {
	t.Helper()
	cfg := &compile.Config{Services: []*compile.Service{}, Clusters: map[string]*compile.Cluster{}}
	for _, b := range sc.items {
		switch {
		case strings.HasPrefix(b.name, meshv1.ServicePrefix):
			s := &compile.Service{}
			if err := json.Unmarshal(b.body, s); err != nil {
				t.Fatal(err)
			}
			cfg.Services = append(cfg.Services, s)
		case strings.HasPrefix(b.name, meshv1.ClusterPrefix):
			c := &compile.Cluster{}
			if err := json.Unmarshal(b.body, c); err != nil {
				t.Fatal(err)
			}
			cfg.Clusters[strings.TrimPrefix(b.name, meshv1.ClusterPrefix)] = c
		}
	}
	sort.Slice(cfg.Services, func(i, j int) bool {
		a, b := cfg.Services[i], cfg.Services[j]
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	return cfg
}

func configJSON(t testing.TB, cfg *compile.Config) string {
	t.Helper()
	cp := *cfg
	cp.Version = ""
	b, err := json.MarshalIndent(&cp, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestScopedMatchesCompile checks that cutting the whole-mesh config into
// resources and picking a proxy's scope gives exactly what compiling for
// that proxy would, for every compiler scenario and every service alone,
// in pairs, and all together.
func TestScopedMatchesCompile(t *testing.T) {
	files, _ := filepath.Glob("../../compile/testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no compiler scenarios found")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := resource.Decode(f, data)
			if err != nil {
				t.Fatal(err)
			}
			set := resource.NewSet(objs)
			b := newBuilder(quietLog)
			v, err := b.build(storeObjects(t, string(data)), 1)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for k := range v.services {
				names = append(names, k)
			}
			sort.Strings(names)
			scopes := [][]string{names}
			for i, a := range names {
				scopes = append(scopes, []string{a})
				if i+1 < len(names) {
					scopes = append(scopes, []string{a, names[i+1]})
				}
			}
			for _, sc := range scopes {
				want, err := compile.Compile(set, compile.Options{Services: sc})
				if err != nil {
					t.Fatal(err)
				}
				m := map[string]bool{}
				for _, s := range sc {
					m[s] = true
				}
				got := assemble(t, v.scoped(newScope(false, m)))
				if g, w := configJSON(t, got), configJSON(t, want); g != w {
					t.Errorf("scope %v: scoped view differs from Compile\n got: %s\nwant: %s", sc, g, w)
				}
			}
			all, err := compile.Compile(set, compile.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if g, w := configJSON(t, assemble(t, v.all)), configJSON(t, all); g != w {
				t.Errorf("scope all differs from Compile\n got: %s\nwant: %s", g, w)
			}
		})
	}
}

const meshYAML = `
apiVersion: v1
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
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080, targetPort: http, appProtocol: http}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: 90}
    - {name: reviews-v2, port: 9080, weight: 10}
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: reviews-v1-a, labels: {app: reviews, version: v1}}
spec: {address: 127.0.0.1, ports: [{name: http, port: 18081}]}
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: ratings-a, labels: {app: ratings}}
spec: {address: 127.0.0.2, ports: [{name: http, port: 9080}]}
`

func names(rs []*meshv1.Resource) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Name)
	}
	sort.Strings(out)
	return out
}

func TestDelta(t *testing.T) {
	b := newBuilder(quietLog)
	objs := storeObjects(t, meshYAML)
	v1, err := b.build(objs, 1)
	if err != nil {
		t.Fatal(err)
	}
	reviews := newScope(false, map[string]bool{"default/reviews": true})
	s1 := v1.scoped(reviews)
	snap := delta(nil, s1)
	if !snap.Snapshot {
		t.Fatal("first update is not a snapshot")
	}
	wantSnap := []string{
		"cluster/reviews-v1.default:9080", "cluster/reviews-v2.default:9080", "cluster/reviews.default:9080",
		"service/default/reviews",
	}
	if got := names(snap.Resources); !reflect.DeepEqual(got, wantSnap) {
		t.Fatalf("snapshot of reviews' scope: %v, want %v", got, wantSnap)
	}
	if delta(nil, s1) != snap {
		t.Error("the same move is computed twice, not shared")
	}

	// The same store contents: the same view, nothing to send.
	if v, _ := b.build(objs, 2); v != v1 {
		t.Error("unchanged store gave a new view")
	}

	// A workload of reviews-v2 appears: only that cluster changes for
	// reviews' proxies; ratings' proxies get nothing.
	more := storeObjects(t, meshYAML+`
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: reviews-v2-a, labels: {app: reviews, version: v2}}
spec: {address: 127.0.0.3, ports: [{name: http, port: 18082}]}
`)
	v2, err := b.build(more, 3)
	if err != nil {
		t.Fatal(err)
	}
	s2 := v2.scoped(reviews)
	d := delta(s1, s2)
	if d.Snapshot || len(d.Removed) != 0 {
		t.Fatalf("delta: snapshot %v removed %v", d.Snapshot, d.Removed)
	}
	if got, want := names(d.Resources), []string{"cluster/reviews-v2.default:9080", "cluster/reviews.default:9080"}; !reflect.DeepEqual(got, want) {
		t.Errorf("delta resources %v, want %v", got, want)
	}
	if s2.version == s1.version {
		t.Error("version did not change")
	}
	ratings := newScope(false, map[string]bool{"default/ratings": true})
	if d := delta(v1.scoped(ratings), v2.scoped(ratings)); len(d.Resources)+len(d.Removed) != 0 || v1.scoped(ratings).version != v2.scoped(ratings).version {
		t.Errorf("ratings' proxies get %v (removed %v) for a change outside their scope", names(d.Resources), d.Removed)
	}

	// The route goes away: reviews no longer reaches v1 and v2.
	var noRoute []*store.Object
	for _, o := range more {
		if o.Kind != resource.KindHTTPRoute {
			noRoute = append(noRoute, o)
		}
	}
	v3, err := b.build(noRoute, 4)
	if err != nil {
		t.Fatal(err)
	}
	d = delta(s2, v3.scoped(reviews))
	if got, want := d.Removed, []string{"cluster/reviews-v1.default:9080", "cluster/reviews-v2.default:9080"}; !reflect.DeepEqual(got, want) {
		t.Errorf("removed %v, want %v", got, want)
	}
	if got, want := names(d.Resources), []string{"service/default/reviews"}; !reflect.DeepEqual(got, want) {
		t.Errorf("changed %v, want %v", got, want)
	}

	// Unknown services are reported, and versions are content hashes: the
	// same scope over equal content has the same version in a new builder
	// (another replica).
	withMissing := newScope(false, map[string]bool{"default/reviews": true, "default/nope": true})
	if got := v3.scoped(withMissing).unknown; !reflect.DeepEqual(got, []string{"default/nope"}) {
		t.Errorf("unknown %v", got)
	}
	other, err := newBuilder(quietLog).build(noRoute, 99)
	if err != nil {
		t.Fatal(err)
	}
	if other.scoped(reviews).version != v3.scoped(reviews).version {
		t.Error("equal content has different versions on two builders")
	}
}

func TestBadObjectLeftOut(t *testing.T) {
	objs := storeObjects(t, meshYAML)
	objs = append(objs, &store.Object{Kind: "Service", Namespace: "default", Name: "broken", Data: []byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"broken"},"spec":{"ports":[{"port":0}]}}`)})
	v, err := newBuilder(quietLog).build(objs, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v.services["default/broken"] != nil || v.services["default/reviews"] == nil {
		t.Errorf("services %v: want reviews and not broken", v.services)
	}
}

func TestStatusObjectsDoNotRecompile(t *testing.T) {
	b := newBuilder(quietLog)
	objs := storeObjects(t, meshYAML)
	v1, _ := b.build(objs, 1)
	st := append(objs, &store.Object{Kind: StatusKind, Namespace: "_", Name: "r1", Data: []byte(`{}`)})
	if v2, _ := b.build(st, 2); v2 != v1 {
		t.Error("a status write recompiled the mesh")
	}
}

// Each workload gets its own inbound policy, equal to what compiling for it
// gives; endpoint churn reuses it, a policy change recomputes it.
func TestInboundPolicy(t *testing.T) {
	data, err := os.ReadFile("../../compile/testdata/authz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := resource.Decode("authz.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	b := newBuilder(quietLog)
	stored := storeObjects(t, string(data))
	v1, err := b.build(stored, 1)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "ratings"}
	in, err := v1.inbound(selfKey("shop", labels), "shop", labels)
	if err != nil {
		t.Fatal(err)
	}
	want, err := compile.Compile(resource.NewSet(objs), compile.Options{Services: []string{}, Self: &compile.Self{Namespace: "shop", Labels: labels}})
	if err != nil {
		t.Fatal(err)
	}
	wantBody, _ := json.Marshal(want.Inbound)
	if string(in.body) != string(wantBody) {
		t.Errorf("inbound\n got %s\nwant %s", in.body, wantBody)
	}
	other := map[string]string{"app": "reviews"}
	in2, _ := v1.inbound(selfKey("shop", other), "shop", other)
	if in2.sum == in.sum {
		t.Error("ratings and reviews workloads got the same inbound policy")
	}

	withWorkload := append(stored, storeObjects(t, `
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: ratings-a, namespace: shop, labels: {app: ratings}}
spec: {address: 127.0.0.2, ports: [{name: http, port: 9080}]}
`)...)
	v2, _ := b.build(withWorkload, 2)
	if v2 == v1 || v2.inbounds != v1.inbounds {
		t.Error("a workload change recomputed inbound policy (or nothing)")
	}
	var noDeny []*store.Object
	for _, o := range withWorkload {
		if o.Name != "no-deletes" {
			noDeny = append(noDeny, o)
		}
	}
	v3, _ := b.build(noDeny, 3)
	in3, _ := v3.inbound(selfKey("shop", labels), "shop", labels)
	if v3.inbounds == v2.inbounds || in3.sum == in.sum {
		t.Error("removing a policy did not change the inbound policy")
	}
}
