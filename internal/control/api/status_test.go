package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"weft.dev/weft/internal/control/store"
)

// The control plane writes route status into stored objects (push's
// write-back). Apply neither compares it nor drops it: re-applying the same
// route is unchanged, a changed route keeps its status until the control
// plane rewrites it.
func TestApplyKeepsStatus(t *testing.T) {
	e := newEnv(t, nil)
	if code, _, fail := e.apply("r.yaml", routeReviews); code != http.StatusOK {
		t.Fatalf("apply: %d %v", code, fail)
	}
	ctx := context.Background()
	o, err := e.st.Get(ctx, "HTTPRoute", "default", "reviews")
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(store.SetResourceVersion(o.Data, ""), &top); err != nil {
		t.Fatal(err)
	}
	top["status"] = json.RawMessage(`{"parents":[{"controllerName":"weft.dev/gateway-controller"}]}`)
	data, _ := json.Marshal(top)
	if _, err := e.st.Put(ctx, []store.Write{{Object: store.Object{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Data: data}, ExpectVersion: o.ResourceVersion}}); err != nil {
		t.Fatal(err)
	}

	code, ok, fail := e.apply("r.yaml", routeReviews)
	if code != http.StatusOK || actions(ok.Results) != "httproute/reviews unchanged" {
		t.Fatalf("re-apply: %d %s %v", code, actions(ok.Results), fail)
	}
	code, ok, fail = e.apply("r.yaml", strings.Replace(routeReviews, "backendRefs: [{name: reviews, port: 9080}]", "backendRefs: [{name: reviews, port: 9080, weight: 5}]", 1))
	if code != http.StatusOK || actions(ok.Results) != "httproute/reviews configured" {
		t.Fatalf("changed apply: %d %s %v", code, actions(ok.Results), fail)
	}
	o, err = e.st.Get(ctx, "HTTPRoute", "default", "reviews")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(o.Data), `"weight":5`) || !strings.Contains(string(o.Data), `"controllerName":"weft.dev/gateway-controller"`) {
		t.Fatalf("stored after a changed apply: %s", o.Data)
	}
	// Status in the input is ignored (kubectl does the same).
	code, ok, _ = e.apply("r.yaml", strings.Replace(routeReviews, "backendRefs: [{name: reviews, port: 9080}]", "backendRefs: [{name: reviews, port: 9080, weight: 5}]", 1)+"status: {parents: []}\n")
	if code != http.StatusOK || actions(ok.Results) != "httproute/reviews unchanged" {
		t.Fatalf("apply with a status: %d %s", code, actions(ok.Results))
	}
}

// Secrets hold TLS keys: a listing of everything leaves them out.
func TestListAllLeavesOutSecrets(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.st.Put(context.Background(), []store.Write{{Object: store.Object{Kind: "Secret", Namespace: "default", Name: "cert",
		Data: []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"cert"},"data":{"tls.key":"c2VjcmV0"}}`)}}}); err != nil {
		t.Fatal(err)
	}
	if code, _, fail := e.apply("r.yaml", routeReviews); code != http.StatusOK {
		t.Fatalf("apply: %d %v", code, fail)
	}
	var list ListResponse
	if code, body := e.do("GET", "/api/v1/resources", "", nil, &list); code != http.StatusOK || strings.Contains(body, "c2VjcmV0") || len(list.Items) != 1 {
		t.Fatalf("list all: %d %s", code, body)
	}
}
