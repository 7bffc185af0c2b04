package push

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/resource"
)

// decodeCache saves the tests decoding the same data again.
var decodeCache = map[string][]*resource.Object{}

// wholeMesh is what one compile of everything gives, as resources.
func wholeMesh(t testing.TB, objs []*store.Object) map[string]string {
	t.Helper()
	var list []*resource.Object
	for _, o := range objs {
		ds, ok := decodeCache[string(o.Data)]
		if !ok {
			ds, _ = resource.Decode(o.Key(), o.Data) // nil when invalid: the builder leaves it out too
			decodeCache[string(o.Data)] = ds
		}
		list = append(list, ds...)
	}
	cfg, err := compile.Compile(resource.NewSet(list), compile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range cfg.Services {
		b, _ := json.Marshal(s)
		out[meshv1.ServiceResource(s.Namespace, s.Name)] = string(b)
	}
	for n, c := range cfg.Clusters {
		b, _ := json.Marshal(c)
		out[meshv1.ClusterResource(n)] = string(b)
	}
	return out
}

func viewResources(v *view) map[string]string {
	out := map[string]string{}
	for n, b := range v.res {
		out[n] = string(b.body)
	}
	return out
}

func diffResources(got, want map[string]string) string {
	var d []string
	for n, w := range want {
		if g, ok := got[n]; !ok {
			d = append(d, "missing "+n)
		} else if g != w {
			d = append(d, fmt.Sprintf("%s differs:\n  got  %s\n  want %s", n, g, w))
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			d = append(d, "extra "+n)
		}
	}
	sort.Strings(d)
	if len(d) > 5 {
		d = append(d[:5], fmt.Sprintf("... %d more", len(d)-5))
	}
	return strings.Join(d, "\n")
}

// randomMesh makes services over three namespaces (some without selector,
// some with two ports, named and numbered target ports), routes that send
// across services (also to services and ports that do not exist), policies
// and workloads.
type randomMesh struct {
	r    *rand.Rand
	objs map[string]*store.Object
	rev  int
}

func (m *randomMesh) put(kind, ns, name, data string) {
	m.rev++
	o := &store.Object{Kind: kind, Namespace: ns, Name: name, Data: []byte(data), ResourceVersion: fmt.Sprint(m.rev)}
	m.objs[o.Key()] = o
}

func (m *randomMesh) list() []*store.Object {
	out := make([]*store.Object, 0, len(m.objs))
	for _, o := range m.objs {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

var meshNamespaces = []string{"default", "shop", "ops"}

func (m *randomMesh) service(i int) {
	ns := meshNamespaces[i%3]
	name := fmt.Sprintf("s%d", i)
	sel := fmt.Sprintf(`{"app":"a%d"}`, m.r.IntN(12))
	switch m.r.IntN(6) {
	case 0:
		sel = `{}`
	case 1:
		sel = fmt.Sprintf(`{"app":"a%d","version":"v%d"}`, m.r.IntN(12), m.r.IntN(2))
	}
	ports := `[{"name":"http","port":80,"targetPort":"http","appProtocol":"http"}]`
	if m.r.IntN(3) == 0 {
		ports = `[{"name":"http","port":80,"targetPort":"http","appProtocol":"http"},{"name":"tcp","port":9000,"targetPort":9001,"appProtocol":"tcp"}]`
	}
	m.put("Service", ns, name, fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":%q,"namespace":%q},"spec":{"selector":%s,"ports":%s}}`, name, ns, sel, ports))
}

func (m *randomMesh) route(i, nSvc int) {
	ns := meshNamespaces[i%3]
	var backends []string
	for j := 0; j < 1+m.r.IntN(3); j++ {
		target := fmt.Sprintf("s%d", m.r.IntN(nSvc+5)) // some do not exist
		port := 80
		if m.r.IntN(8) == 0 {
			port = 8080 // a port the service does not have
		}
		backends = append(backends, fmt.Sprintf(`{"name":%q,"port":%d,"weight":%d}`, target, port, 1+m.r.IntN(5)))
	}
	m.put("HTTPRoute", ns, fmt.Sprintf("r%d", i), fmt.Sprintf(`{"apiVersion":"gateway.networking.k8s.io/v1","kind":"HTTPRoute","metadata":{"name":"r%d","namespace":%q},"spec":{"parentRefs":[{"group":"","kind":"Service","name":"s%d","port":80}],"rules":[{"backendRefs":[%s]}]}}`,
		i, ns, i, strings.Join(backends, ",")))
}

func (m *randomMesh) workload(i int) {
	ns := meshNamespaces[m.r.IntN(3)]
	labels := fmt.Sprintf(`{"app":"a%d","version":"v%d"}`, m.r.IntN(12), m.r.IntN(2))
	m.put("Workload", ns, fmt.Sprintf("w%d", i), fmt.Sprintf(`{"apiVersion":"weft.dev/v1alpha1","kind":"Workload","metadata":{"name":"w%d","namespace":%q,"labels":%s},"spec":{"address":"10.0.%d.%d","ports":[{"name":"http","port":8080},{"port":9001}]}}`,
		i, ns, labels, i/250, i%250+1))
}

// The batched and incremental compile gives exactly what one compile of the
// whole mesh gives, through random workload churn and occasional changes
// of services, routes and policies.
func TestIncrementalMatchesWholeCompile(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			m := &randomMesh{r: rand.New(rand.NewPCG(seed, 7)), objs: map[string]*store.Object{}}
			const nSvc, nWl = 90, 300 // several batches
			for i := 0; i < nSvc; i++ {
				m.service(i)
				if i%2 == 0 {
					m.route(i, nSvc)
				}
			}
			m.put("TrafficPolicy", "default", "p0", `{"apiVersion":"weft.dev/v1alpha1","kind":"TrafficPolicy","metadata":{"name":"p0","namespace":"default"},"spec":{"targetRef":{"kind":"Service","name":"s3"},"loadBalancer":{"type":"LeastRequest"}}}`)
			for i := 0; i < nWl; i++ {
				m.workload(i)
			}
			b := newBuilder(quietLog)
			check := func(step string) {
				t.Helper()
				objs := m.list()
				v, err := b.build(objs, int64(m.rev))
				if err != nil {
					t.Fatal(err)
				}
				if d := diffResources(viewResources(v), wholeMesh(t, objs)); d != "" {
					t.Fatalf("%s: view differs from one whole compile:\n%s", step, d)
				}
				for k, e := range v.services {
					if e.res == nil || v.res[e.res.name] != e.res {
						t.Fatalf("%s: service %s entry does not point into the view", step, k)
					}
				}
			}
			check("first build")
			for step := 0; step < 60; step++ {
				switch k := m.r.IntN(10); {
				case k < 5: // a workload moves, appears or changes labels
					m.workload(m.r.IntN(nWl + 20))
				case k < 7: // a workload goes
					for key := range m.objs {
						if strings.HasPrefix(key, "Workload/") {
							delete(m.objs, key)
							m.rev++
							break
						}
					}
				case k < 8:
					m.service(m.r.IntN(nSvc))
				case k < 9:
					m.route(2*m.r.IntN(nSvc/2), nSvc)
				default: // a workload that does not decode
					m.put("Workload", "default", "broken", `{"apiVersion":"weft.dev/v1alpha1","kind":"Workload","metadata":{"name":"broken"},"spec":{}}`)
				}
				check(fmt.Sprint("step ", step))
			}
		})
	}
}
