package push

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/control/store"
)

// selfSigned returns a PEM certificate and key for host.
func selfSigned(t testing.TB, host string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func indentLines(s, pfx string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pfx + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func edgeYAML(t testing.TB) string {
	cert, key := selfSigned(t, "shop.example.test")
	return `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: weft
  listeners:
  - {name: web, port: 8080, protocol: HTTP}
  - name: tls
    port: 8443
    protocol: HTTPS
    hostname: shop.example.test
    tls: {certificateRefs: [{name: shop-cert}]}
---
apiVersion: v1
kind: Secret
metadata: {name: shop-cert}
type: kubernetes.io/tls
stringData:
  tls.crt: |
` + indentLines(cert, "    ") + `  tls.key: |
` + indentLines(key, "    ") + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: edge}]
  rules: [{backendRefs: [{name: ratings, port: 9080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken}
spec:
  parentRefs: [{name: edge, sectionName: web}, {name: nowhere}]
  rules: [{backendRefs: [{name: missing, port: 80}]}]
`
}

func gatewayOf(t testing.TB, res map[string][]byte) *compile.Gateway {
	t.Helper()
	body, ok := res[meshv1.GatewayResource("default", "edge")]
	if !ok {
		return nil
	}
	var gw compile.Gateway
	if err := json.Unmarshal(body, &gw); err != nil {
		t.Fatal(err)
	}
	return &gw
}

// A gateway's stream carries its compiled Gateway (with the certificates)
// and the clusters its routes reach, and nothing else; endpoint changes
// resend only the cluster. Sidecars never get a Gateway.
func TestGatewayStream(t *testing.T) {
	st := newMemStore()
	putYAML(t, st, meshYAML+"---"+edgeYAML(t))
	_, addr := startServer(t, st, Options{})

	gw := dialProxy(t, addr, testToken, &meshv1.Hello{Name: "edge", Namespace: "default", ServiceAccount: "edge", Gateway: "edge"})
	u := gw.next(5 * time.Second)
	gw.ack(u.Version)
	got := names(u.Resources)
	want := []string{"cluster/missing.default:80", "cluster/ratings.default:9080", "gateway/default/edge"}
	if !u.Snapshot || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("first update: snapshot=%v resources %v, want %v", u.Snapshot, got, want)
	}
	g := gatewayOf(t, gw.res)
	if len(g.Listeners) != 2 || len(g.Clusters) != 0 || g.Status == nil {
		t.Fatalf("gateway resource: %d listeners, %d clusters, status %v", len(g.Listeners), len(g.Clusters), g.Status)
	}
	if c := g.Certificates["default/shop-cert"]; c == nil || !strings.Contains(string(c.Key), "PRIVATE KEY") {
		t.Fatalf("the gateway did not get its certificate: %+v", g.Certificates)
	}
	if eps := endpointsOf(t, gw.res, "ratings.default:9080"); len(eps) != 1 || !strings.HasPrefix(eps[0], "127.0.0.2:9080") {
		t.Fatalf("ratings endpoints %v", eps)
	}

	// A new workload of ratings: only its cluster is resent.
	w := dialProxy(t, addr, testToken, &meshv1.Hello{Name: "ratings-b", Labels: map[string]string{"app": "ratings"},
		Address: "127.0.0.3", Ports: []*meshv1.Port{{Name: "http", Port: 9080}}, ServiceAccount: "ratings", Dependencies: []string{"reviews"}})
	u = gw.next(5 * time.Second)
	gw.ack(u.Version)
	if u.Snapshot || strings.Join(names(u.Resources), " ") != "cluster/ratings.default:9080" || len(u.Removed) != 0 {
		t.Fatalf("endpoint change: snapshot=%v resources %v removed %v", u.Snapshot, names(u.Resources), u.Removed)
	}
	if eps := endpointsOf(t, gw.res, "ratings.default:9080"); len(eps) != 2 {
		t.Fatalf("ratings endpoints after registration: %v", eps)
	}

	// Sidecars (declared or every service) get no Gateway.
	w.waitFor(5*time.Second, "the sidecar's snapshot", func(res map[string][]byte) bool { return len(res) > 0 })
	all := dialProxy(t, addr, testToken, &meshv1.Hello{Name: "all"})
	all.waitFor(5*time.Second, "the snapshot", func(res map[string][]byte) bool { return len(res) > 0 })
	for _, p := range []*rawProxy{w, all} {
		for _, n := range p.names() {
			if strings.HasPrefix(n, meshv1.GatewayPrefix) {
				t.Errorf("a sidecar got %s", n)
			}
		}
	}

	// The route goes: the gateway gets the new Gateway and loses the
	// cluster.
	if _, err := st.Delete(context.Background(), []string{"HTTPRoute/default/shop"}); err != nil {
		t.Fatal(err)
	}
	gw.waitFor(5*time.Second, "ratings' cluster leaves", func(res map[string][]byte) bool {
		_, ok := res["cluster/ratings.default:9080"]
		return !ok
	})
	// The Gateway goes: so does its resource.
	if _, err := st.Delete(context.Background(), []string{"Gateway/default/edge"}); err != nil {
		t.Fatal(err)
	}
	gw.waitFor(5*time.Second, "the gateway resource leaves", func(res map[string][]byte) bool { return len(res) == 0 })
}

// Only the Gateway's service account may run it: its config holds keys.
func TestGatewayServiceAccount(t *testing.T) {
	st := newMemStore()
	putYAML(t, st, meshYAML+"---"+edgeYAML(t))
	_, addr := startServer(t, st, Options{})
	p := dialProxy(t, addr, testToken, &meshv1.Hello{Name: "edge", Namespace: "default", ServiceAccount: "ratings", Gateway: "edge"})
	select {
	case u, ok := <-p.updates:
		if ok {
			t.Fatalf("a gateway with another service account got %v", names(u.Resources))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
	}
	if err := <-p.err; status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "service account edge") {
		t.Fatalf("got %v, want PermissionDenied naming the allowed account", err)
	}

	// The annotation names another account.
	putYAML(t, st, strings.Replace(edgeYAML(t), "metadata: {name: edge}", "metadata: {name: edge, annotations: {weft.dev/service-account: ingress}}", 1))
	time.Sleep(100 * time.Millisecond)
	ok := dialProxy(t, addr, testToken, &meshv1.Hello{Name: "edge", Namespace: "default", ServiceAccount: "ingress", Gateway: "edge"})
	ok.waitFor(5*time.Second, "the gateway resource", func(res map[string][]byte) bool { return gatewayOf(t, res) != nil })

	// A gateway Hello registers no workload.
	bad := dialProxy(t, addr, testToken, &meshv1.Hello{Name: "edge", ServiceAccount: "edge", Gateway: "edge", Address: "127.0.0.1"})
	<-bad.updates
	if err := <-bad.err; status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gateway with an address: %v, want InvalidArgument", err)
	}
}

// statusOf returns the stored status of an object, as generic JSON.
func statusOf(t testing.TB, st store.Store, kind, name string) map[string]any {
	t.Helper()
	o, err := st.Get(context.Background(), kind, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	var top struct {
		Status map[string]any `json:"status"`
	}
	if err := json.Unmarshal(o.Data, &top); err != nil {
		t.Fatal(err)
	}
	return top.Status
}

// conds lists a route's conditions as "gateway/section Type=Status Reason: Message".
func conds(st map[string]any) []string {
	var out []string
	ps, _ := st["parents"].([]any)
	for _, p := range ps {
		pm := p.(map[string]any)
		ref := pm["parentRef"].(map[string]any)
		where := ref["name"].(string)
		if s, ok := ref["sectionName"].(string); ok {
			where += "/" + s
		}
		for _, c := range pm["conditions"].([]any) {
			cm := c.(map[string]any)
			out = append(out, where+" "+cm["type"].(string)+"="+cm["status"].(string)+" "+cm["reason"].(string)+": "+cm["message"].(string))
		}
	}
	return out
}

// Route and Gateway status are written back into the stored objects;
// the write does not recompile the mesh, and it converges (no loop).
func TestStatusWriteBack(t *testing.T) {
	st := newMemStore()
	putYAML(t, st, meshYAML+"---"+edgeYAML(t))
	s, _ := startServer(t, st, Options{})

	wantBroken := []string{
		"edge/web Accepted=True Accepted: ",
		"edge/web ResolvedRefs=False BackendNotFound: Service default/missing not found",
		"nowhere Accepted=False NoMatchingParent: Gateway default/nowhere not found",
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Join(conds(statusOf(t, st, "HTTPRoute", "broken")), "\n") != strings.Join(wantBroken, "\n") {
		if time.Now().After(deadline) {
			t.Fatalf("broken route status:\n%s\nwant:\n%s", strings.Join(conds(statusOf(t, st, "HTTPRoute", "broken")), "\n"), strings.Join(wantBroken, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Objects are written one by one: wait for the shop route's turn too.
	shopOK := func(got []string) bool {
		return len(got) == 2 && strings.HasPrefix(got[0], "edge Accepted=True") && strings.HasPrefix(got[1], "edge ResolvedRefs=True")
	}
	for !shopOK(conds(statusOf(t, st, "HTTPRoute", "shop"))) {
		if time.Now().After(deadline) {
			t.Fatalf("shop route status %v", conds(statusOf(t, st, "HTTPRoute", "shop")))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		gs := statusOf(t, st, "Gateway", "edge")
		if ls, _ := gs["listeners"].([]any); len(ls) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway status %v", gs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if statusOf(t, st, "HTTPRoute", "reviews") != nil {
		t.Fatal("a mesh route got a status")
	}

	// Settled: no further writes, no recompile.
	time.Sleep(200 * time.Millisecond)
	rev0, builds0 := st.revision(), s.Metrics().Builds.Load()
	time.Sleep(300 * time.Millisecond)
	if st.revision() != rev0 || s.Metrics().Builds.Load() != builds0 {
		t.Fatalf("status write-back does not settle: revision %d -> %d, builds %d -> %d", rev0, st.revision(), builds0, s.Metrics().Builds.Load())
	}

	// The route is fixed: its status follows, keeping the transition time
	// of the condition that did not change.
	before := statusOf(t, st, "HTTPRoute", "broken")
	// As apply writes it: the new spec with the stored status.
	o, err := st.Get(context.Background(), "HTTPRoute", "default", "broken")
	if err != nil {
		t.Fatal(err)
	}
	fixed := strings.Replace(string(o.Data), `"name":"missing","port":80`, `"name":"ratings","port":9080`, 1)
	if fixed == string(o.Data) {
		t.Fatalf("backend not found in %s", o.Data)
	}
	o.Data = []byte(fixed)
	if _, err := st.Put(context.Background(), []store.Write{{Object: *o, ExpectVersion: o.ResourceVersion}}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(strings.Join(conds(statusOf(t, st, "HTTPRoute", "broken")), "\n"), "ResolvedRefs=True") {
		if time.Now().After(deadline) {
			t.Fatalf("status not updated: %v", conds(statusOf(t, st, "HTTPRoute", "broken")))
		}
		time.Sleep(10 * time.Millisecond)
	}
	after := statusOf(t, st, "HTTPRoute", "broken")
	ltt := func(st map[string]any, i int) string {
		c := st["parents"].([]any)[0].(map[string]any)["conditions"].([]any)[i].(map[string]any)
		return c["lastTransitionTime"].(string)
	}
	if ltt(before, 0) != ltt(after, 0) {
		t.Errorf("Accepted did not change but its lastTransitionTime did: %s -> %s", ltt(before, 0), ltt(after, 0))
	}
}

func TestStatusOnly(t *testing.T) {
	a := []byte(`{"apiVersion":"v1","kind":"HTTPRoute","metadata":{"name":"x","resourceVersion":"3"},"spec":{"a":1}}`)
	b := []byte(`{"apiVersion":"v1","kind":"HTTPRoute","metadata":{"name":"x","resourceVersion":"4"},"spec":{"a":1},"status":{"parents":[]}}`)
	c := []byte(`{"apiVersion":"v1","kind":"HTTPRoute","metadata":{"name":"x","resourceVersion":"5"},"spec":{"a":2},"status":{"parents":[]}}`)
	if !statusOnly("HTTPRoute", a, b) {
		t.Error("a status write is not status-only")
	}
	if statusOnly("HTTPRoute", b, c) {
		t.Error("a spec change is status-only")
	}
	if statusOnly("Service", a, b) {
		t.Error("Service status is not ours")
	}
}

// Parents written by other controllers stay; ours are replaced; a route
// that names no Gateway any more loses ours.
func TestRouteStatusMerge(t *testing.T) {
	stored := json.RawMessage(`{"parents":[
	  {"parentRef":{"name":"other"},"controllerName":"example.net/ctl","conditions":[]},
	  {"parentRef":{"group":"gateway.networking.k8s.io","kind":"Gateway","namespace":"default","name":"edge"},"controllerName":"weft.dev/gateway-controller",
	   "conditions":[{"type":"Accepted","status":"True","reason":"Accepted","message":"","lastTransitionTime":"2020-01-01T00:00:00Z"}]}]}`)
	want := []*compile.RouteParentStatus{{ParentRef: compile.ParentRef{Namespace: "default", Name: "edge"},
		Conditions: []compile.Condition{{Type: "Accepted", Status: "True", Reason: "Accepted"}, {Type: "ResolvedRefs", Status: "False", Reason: "BackendNotFound", Message: "m"}}}}
	out, err := routeStatus(stored, want, "2030-01-01T00:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, w := range []string{`"controllerName":"example.net/ctl"`, `"lastTransitionTime":"2020-01-01T00:00:00Z"`, `"reason":"BackendNotFound"`, `"lastTransitionTime":"2030-01-01T00:00:00Z"`} {
		if !strings.Contains(s, w) {
			t.Errorf("merged status lacks %s: %s", w, s)
		}
	}
	out, err = routeStatus(stored, nil, "2030-01-01T00:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "weft.dev") || !strings.Contains(string(out), "example.net") {
		t.Errorf("without Gateway parents: %s", out)
	}
	if out, _ := routeStatus(json.RawMessage(`{"parents":[{"parentRef":{"name":"edge"},"controllerName":"weft.dev/gateway-controller","conditions":[]}]}`), nil, "x"); out != nil {
		t.Errorf("status of only our parents, none wanted: %s, want none", out)
	}
}

func (m *memStore) revision() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rev
}

// On the real store (which fills in resourceVersion on read), the
// write-back settles too: one write per object, no recompile.
func TestStatusWriteBackSettlesOnBolt(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	putYAML(t, st, meshYAML+"---"+edgeYAML(t))
	s, _ := startServer(t, st, Options{})
	deadline := time.Now().Add(5 * time.Second)
	for statusOf(t, st, "HTTPRoute", "broken") == nil || statusOf(t, st, "HTTPRoute", "shop") == nil || statusOf(t, st, "Gateway", "edge") == nil {
		if time.Now().After(deadline) {
			t.Fatal("no status written")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	_, rev0, _ := st.List(context.Background(), "Gateway")
	builds0 := s.Metrics().Builds.Load()
	time.Sleep(300 * time.Millisecond)
	_, rev1, _ := st.List(context.Background(), "Gateway")
	if rev1 != rev0 || s.Metrics().Builds.Load() != builds0 || builds0 != 1 {
		t.Fatalf("revision %d -> %d, builds %d -> %d (want 1: status writes recompile nothing)", rev0, rev1, builds0, s.Metrics().Builds.Load())
	}
}
