package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/control/store"
)

const testToken = "test-admin-token"

const svcReviews = `apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, appProtocol: http}]
`

const svcRatings = `apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
`

const routeReviews = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - backendRefs: [{name: reviews, port: 9080}]
`

// badRoute has a negative weight.
const badRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - backendRefs: [{name: reviews, port: 9080, weight: -1}]
`

func join(docs ...string) string { return strings.Join(docs, "---\n") }

type fakeStatus struct{ proxies []ProxyStatus }

func (f fakeStatus) Proxies(context.Context) ([]ProxyStatus, error) { return f.proxies, nil }

type env struct {
	t   *testing.T
	srv *httptest.Server
	st  store.Store
	api *Server
}

func newEnv(t *testing.T, status StatusSource) *env {
	t.Helper()
	st, err := store.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a, err := New(Options{Store: st, StoreName: "bolt", AdminToken: testToken, Status: status, MaxBody: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, st: st, api: a}
}

// do sends a request with the admin token and decodes a JSON answer into
// out (when not nil); it returns the status code and the raw body.
func (e *env) do(method, path, contentType string, body io.Reader, out any) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: status %d, body not JSON: %v\n%s", method, path, resp.StatusCode, err, raw)
		}
	}
	return resp.StatusCode, string(raw)
}

func (e *env) apply(file, yaml string) (int, ApplyResponse, ErrorBody) {
	e.t.Helper()
	var raw json.RawMessage
	code, _ := e.do("POST", "/api/v1/apply?file="+file, "application/yaml", strings.NewReader(yaml), &raw)
	var ok ApplyResponse
	var fail ErrorBody
	if code == http.StatusOK {
		json.Unmarshal(raw, &ok)
	} else {
		json.Unmarshal(raw, &fail)
	}
	return code, ok, fail
}

func actions(rs []Result) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, strings.ToLower(r.Kind)+"/"+r.Name+" "+r.Action)
	}
	return strings.Join(parts, ", ")
}

func (e *env) keys() string {
	e.t.Helper()
	objs, _, err := e.st.List(context.Background(), "")
	if err != nil {
		e.t.Fatal(err)
	}
	var ks []string
	for _, o := range objs {
		if !internalKind(o.Kind) {
			ks = append(ks, o.Key()+"@"+o.ResourceVersion)
		}
	}
	return strings.Join(ks, " ")
}

func TestAuth(t *testing.T) {
	e := newEnv(t, nil)
	e.api.Handle("GET /dashboard/data", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) }))
	for _, tc := range []struct {
		path, auth string
		want       int
	}{
		{"/api/v1/resources/services", "", 401},
		{"/api/v1/resources/services", "Bearer wrong", 401},
		{"/api/v1/resources/services", "Basic " + testToken, 401},
		{"/api/v1/resources/services", "Bearer " + testToken + "x", 401},
		{"/api/v1/resources/services", "Bearer " + testToken, 200},
		{"/api/v1/nonsense", "", 401},
		{"/api/v1/nonsense", "Bearer " + testToken, 404},
		{"/dashboard/data", "", 401},
		{"/dashboard/data", "Bearer " + testToken, 200},
		{"/healthz", "", 200},
	} {
		req, _ := http.NewRequest("GET", e.srv.URL+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s with %q: status %d, want %d: %s", tc.path, tc.auth, resp.StatusCode, tc.want, body)
		}
		if resp.StatusCode == 401 {
			var eb ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
				t.Errorf("401 body is not a JSON error: %s", body)
			}
		}
	}
}

func TestApplyLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	code, resp, fail := e.apply("mesh.yaml", join(svcReviews, svcRatings, routeReviews))
	if code != 200 {
		t.Fatalf("apply: %d %+v", code, fail)
	}
	if got, want := actions(resp.Results), "service/reviews created, service/ratings created, httproute/reviews created"; got != want {
		t.Errorf("first apply: %s, want %s", got, want)
	}
	for _, r := range resp.Results {
		if r.ResourceVersion != fmt.Sprint(resp.Revision) {
			t.Errorf("%s at %s, revision %d", r.Name, r.ResourceVersion, resp.Revision)
		}
		if !strings.Contains(string(r.Object), `"resourceVersion":"`+r.ResourceVersion+`"`) {
			t.Errorf("returned object lacks its resourceVersion: %s", r.Object)
		}
	}
	rev1 := resp.Revision

	// The same input again changes nothing, not even the revision.
	code, resp, _ = e.apply("mesh.yaml", join(svcReviews, svcRatings, routeReviews))
	if code != 200 || actions(resp.Results) != "service/reviews unchanged, service/ratings unchanged, httproute/reviews unchanged" {
		t.Errorf("re-apply: %d %s", code, actions(resp.Results))
	}
	if objs, rev, _ := e.st.List(context.Background(), "Service"); rev != rev1 || len(objs) != 2 {
		t.Errorf("re-apply moved the revision from %d to %d", rev1, rev)
	}

	// A changed port: configured; creationTimestamp is kept.
	var before Item
	e.do("GET", "/api/v1/resources/Service/default/reviews", "", nil, &before)
	changed := strings.Replace(svcReviews, "port: 9080", "port: 9081", 1)
	code, resp, _ = e.apply("mesh.yaml", join(changed, svcRatings))
	if code != 200 || actions(resp.Results) != "service/reviews configured, service/ratings unchanged" {
		t.Fatalf("change: %d %s", code, actions(resp.Results))
	}
	var after Item
	e.do("GET", "/api/v1/resources/services/default/reviews", "", nil, &after)
	if after.ResourceVersion == before.ResourceVersion || !strings.Contains(string(after.Object), "9081") {
		t.Errorf("after change: %s", after.Object)
	}
	if ct := creation(t, before.Object); ct == "" || ct != creation(t, after.Object) {
		t.Errorf("creationTimestamp %q then %q", creation(t, before.Object), creation(t, after.Object))
	}
	if strings.Contains(string(after.Object), `"status"`) {
		t.Errorf("stored object has a status: %s", after.Object)
	}
}

func creation(t *testing.T, obj json.RawMessage) string {
	var v struct {
		Metadata struct {
			CreationTimestamp string `json:"creationTimestamp"`
		} `json:"metadata"`
	}
	json.Unmarshal(obj, &v)
	return v.Metadata.CreationTimestamp
}

func withRV(doc, rv string) string {
	return strings.Replace(doc, "metadata: {name: reviews}", "metadata: {name: reviews, resourceVersion: \""+rv+"\"}", 1)
}

func TestApplyOptimisticConcurrency(t *testing.T) {
	e := newEnv(t, nil)
	_, resp, _ := e.apply("a.yaml", svcReviews)
	rv := resp.Results[0].ResourceVersion
	// Someone else changes it.
	if code, _, fail := e.apply("b.yaml", strings.Replace(svcReviews, "9080", "9090", 1)); code != 200 {
		t.Fatalf("%d %+v", code, fail)
	}
	before := e.keys()
	// Our write carries the version we read: refused, and the route in the
	// same request is not stored either.
	code, _, fail := e.apply("a.yaml", join(withRV(strings.Replace(svcReviews, "9080", "9091", 1), rv), routeReviews))
	if code != http.StatusConflict {
		t.Fatalf("stale apply: status %d, want 409: %+v", code, fail)
	}
	if len(fail.Details) != 1 || fail.Details[0].Kind != "Service" || fail.Details[0].Name != "reviews" ||
		fail.Details[0].Field != "metadata.resourceVersion" || fail.Details[0].File != "a.yaml" || fail.Details[0].Document != 1 {
		t.Errorf("conflict details: %+v", fail.Details)
	}
	if !strings.Contains(fail.Error, "Service default/reviews") {
		t.Errorf("conflict message does not name the object: %s", fail.Error)
	}
	if after := e.keys(); after != before {
		t.Errorf("a refused apply changed the store:\n%s\n%s", before, after)
	}
	// With the current version it goes through.
	var cur Item
	e.do("GET", "/api/v1/resources/service/default/reviews", "", nil, &cur)
	code, resp, fail = e.apply("a.yaml", withRV(strings.Replace(svcReviews, "9080", "9091", 1), cur.ResourceVersion))
	if code != 200 || resp.Results[0].Action != ActionConfigured {
		t.Fatalf("apply with the current version: %d %+v %+v", code, resp, fail)
	}
	// A version for an object that does not exist is stale too.
	code, _, _ = e.apply("a.yaml", strings.Replace(withRV(svcReviews, "3"), "name: reviews", "name: ghost", 1))
	if code != http.StatusConflict {
		t.Errorf("resourceVersion on a missing object: %d, want 409", code)
	}
}

func TestApplyInvalidStoresNothing(t *testing.T) {
	e := newEnv(t, nil)
	code, _, fail := e.apply("mesh.yaml", join(svcReviews, badRoute, svcRatings))
	if code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", code)
	}
	if len(fail.Details) == 0 {
		t.Fatalf("no details: %+v", fail)
	}
	d := fail.Details[0]
	if d.File != "mesh.yaml" || d.Document != 2 || d.Kind != "HTTPRoute" || d.Name != "broken" ||
		!strings.Contains(d.Field, "weight") || d.Reason == "" {
		t.Errorf("detail %+v does not name file, document, kind, name, field and reason", d)
	}
	if k := e.keys(); k != "" {
		t.Errorf("stored after a refused apply: %s", k)
	}
	// Syntax errors and empty input are refused too.
	if code, _, fail := e.apply("x.yaml", "apiVersion: v1\nkind: [\n"); code != 400 || len(fail.Details) == 0 {
		t.Errorf("YAML syntax error: %d %+v", code, fail)
	}
	if code, _, _ := e.apply("x.yaml", "# nothing\n"); code != 400 {
		t.Errorf("empty input: %d", code)
	}
}

func multipartBody(t *testing.T, files map[string]string, order ...string) (string, io.Reader) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, name := range order {
		fw, err := mw.CreateFormFile("file", name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(files[name]))
	}
	mw.Close()
	return mw.FormDataContentType(), &buf
}

func TestApplyManyFiles(t *testing.T) {
	e := newEnv(t, nil)
	files := map[string]string{"dir/a.yaml": svcReviews, "dir/b.yaml": join(svcRatings, badRoute)}
	ct, body := multipartBody(t, files, "dir/a.yaml", "dir/b.yaml")
	var fail ErrorBody
	code, _ := e.do("POST", "/api/v1/apply", ct, body, &fail)
	if code != 400 || len(fail.Details) == 0 || fail.Details[0].File != "dir/b.yaml" || fail.Details[0].Document != 2 {
		t.Fatalf("bad second file: %d %+v", code, fail)
	}
	if k := e.keys(); k != "" {
		t.Errorf("stored after a refused apply: %s", k)
	}
	// The same object in two files is refused, naming both places.
	files["dir/b.yaml"] = join(svcRatings, svcReviews)
	ct, body = multipartBody(t, files, "dir/a.yaml", "dir/b.yaml")
	code, _ = e.do("POST", "/api/v1/apply", ct, body, &fail)
	if code != 400 || len(fail.Details) != 1 || !strings.Contains(fail.Details[0].Reason, "dir/a.yaml: document 1") {
		t.Fatalf("duplicate across files: %d %+v", code, fail)
	}
	files["dir/b.yaml"] = join(svcRatings, routeReviews)
	ct, body = multipartBody(t, files, "dir/a.yaml", "dir/b.yaml")
	var ok ApplyResponse
	code, raw := e.do("POST", "/api/v1/apply", ct, body, &ok)
	if code != 200 || len(ok.Results) != 3 {
		t.Fatalf("good files: %d %s", code, raw)
	}
}

func TestGetAndList(t *testing.T) {
	e := newEnv(t, nil)
	e.apply("mesh.yaml", join(svcReviews, svcRatings, routeReviews))
	// Internal kinds and registrations live beside resources.
	ctx := context.Background()
	e.st.Put(ctx, []store.Write{{Object: store.Object{Kind: "_Token", Namespace: "weft", Name: "admin", Data: []byte(`{"token":"x"}`)}}})
	e.st.Register(ctx, store.Object{Kind: "Workload", Namespace: "default", Name: "reviews-1", Data: []byte(`{"spec":{}}`)}, time.Minute)

	for _, tc := range []struct {
		path string
		want string
	}{
		{"/api/v1/resources/services", "Service/default/reviews Service/shop/ratings"},
		{"/api/v1/resources/SERVICE", "Service/default/reviews Service/shop/ratings"},
		{"/api/v1/resources/svc?namespace=shop", "Service/shop/ratings"},
		{"/api/v1/resources/httproutes", "HTTPRoute/default/reviews"},
		{"/api/v1/resources/trafficpolicies", ""},
		{"/api/v1/resources/workloads", "Workload/default/reviews-1(registered)"},
		{"/api/v1/resources", "HTTPRoute/default/reviews Service/default/reviews Service/shop/ratings Workload/default/reviews-1(registered)"},
	} {
		var lr ListResponse
		code, raw := e.do("GET", tc.path, "", nil, &lr)
		var got []string
		for _, it := range lr.Items {
			s := it.Kind + "/" + it.Namespace + "/" + it.Name
			if it.Registered {
				s += "(registered)"
			}
			got = append(got, s)
		}
		if code != 200 || strings.Join(got, " ") != tc.want {
			t.Errorf("GET %s: %d %v, want %s\n%s", tc.path, code, got, tc.want, raw)
		}
	}
	var it Item
	if code, raw := e.do("GET", "/api/v1/resources/httproute/default/reviews", "", nil, &it); code != 200 || it.Name != "reviews" || it.ResourceVersion == "" {
		t.Errorf("get one: %d %s", code, raw)
	}
	var fail ErrorBody
	if code, _ := e.do("GET", "/api/v1/resources/service/default/nope", "", nil, &fail); code != 404 || !strings.Contains(fail.Error, `"nope" not found`) {
		t.Errorf("get missing: %d %+v", code, fail)
	}
	if code, _ := e.do("GET", "/api/v1/resources/gizmos", "", nil, &fail); code != 404 || !strings.Contains(fail.Error, "unknown kind") {
		t.Errorf("unknown kind: %d %+v", code, fail)
	}
	if code, _ := e.do("GET", "/api/v1/resources/_token", "", nil, &fail); code != 404 {
		t.Errorf("internal kind served: %d", code)
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t, nil)
	e.apply("mesh.yaml", join(svcReviews, svcRatings, routeReviews))
	var resp ApplyResponse
	if code, raw := e.do("DELETE", "/api/v1/resources/services/shop/ratings", "", nil, &resp); code != 200 || actions(resp.Results) != "service/ratings deleted" {
		t.Errorf("delete one: %d %s", code, raw)
	}
	var fail ErrorBody
	if code, _ := e.do("DELETE", "/api/v1/resources/services/shop/ratings", "", nil, &fail); code != 404 {
		t.Errorf("delete again: %d %+v", code, fail)
	}
	// delete -f: what exists goes, the missing one is reported.
	code, _ := e.do("POST", "/api/v1/delete?file=mesh.yaml", "", strings.NewReader(join(svcReviews, svcRatings, routeReviews)), &fail)
	if code != 404 || len(fail.Details) != 1 || fail.Details[0].Name != "ratings" || fail.Details[0].Document != 2 {
		t.Errorf("delete -f with a missing object: %d %+v", code, fail)
	}
	if actions(fail.Results) != "service/reviews deleted, service/ratings not found, httproute/reviews deleted" {
		t.Errorf("results: %s", actions(fail.Results))
	}
	if k := e.keys(); k != "" {
		t.Errorf("left after delete: %s", k)
	}
	// A proxy's registration cannot be deleted through the API.
	e.st.Register(context.Background(), store.Object{Kind: "Workload", Namespace: "default", Name: "w", Data: []byte(`{}`)}, time.Minute)
	if code, _ := e.do("DELETE", "/api/v1/resources/workload/default/w", "", nil, &fail); code != 409 || !strings.Contains(fail.Error, "registered") {
		t.Errorf("delete registration: %d %+v", code, fail)
	}
}

func TestStatus(t *testing.T) {
	var sr StatusResponse
	e := newEnv(t, nil)
	if code, raw := e.do("GET", "/api/v1/status", "", nil, &sr); code != 200 || sr.Store != "bolt" || sr.Proxies == nil || len(sr.Proxies) != 0 {
		t.Errorf("status without a source: %d %s", code, raw)
	}
	e = newEnv(t, fakeStatus{[]ProxyStatus{{Name: "reviews-1", Namespace: "default", VersionSent: "7", VersionAcked: "7"}}})
	if code, raw := e.do("GET", "/api/v1/status", "", nil, &sr); code != 200 || len(sr.Proxies) != 1 || sr.Proxies[0].VersionAcked != "7" {
		t.Errorf("status: %d %s", code, raw)
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, nil)
	big := svcReviews + "#" + strings.Repeat("x", 70<<10) + "\n"
	if code, _, fail := e.apply("big.yaml", big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d %+v", code, fail)
	}
}

func TestResolveKind(t *testing.T) {
	for in, want := range map[string]string{
		"service": "Service", "Services": "Service", "svc": "Service", "HTTPRoute": "HTTPRoute",
		"httproutes": "HTTPRoute", "trafficpolicies": "TrafficPolicy", "TrafficPolicy": "TrafficPolicy",
		"faultinjections": "FaultInjection", "wl": "Workload", "grpcroutes": "GRPCRoute", "tcproute": "TCPRoute",
	} {
		if got, ok := ResolveKind(in); !ok || got != want {
			t.Errorf("ResolveKind(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "_token", "serviceses", "pods"} {
		if got, ok := ResolveKind(in); ok {
			t.Errorf("ResolveKind(%q) = %q", in, got)
		}
	}
}
