package proxy

import (
	"net/http/httptest"
	"testing"

	"weft.dev/weft/internal/compile"
)

func TestAuthorizer(t *testing.T) {
	a := newAuthorizer(&compile.Inbound{Authz: []*compile.AuthzPolicy{
		{Name: "ns/deny-admin", Action: "DENY", Rules: []*compile.AuthzRule{{To: []*compile.AuthzOperation{{Paths: []string{"/admin*"}, Ports: []int32{80}}}}}},
		{Name: "ns/allow", Action: "ALLOW", Rules: []*compile.AuthzRule{
			{
				From: []*compile.AuthzSource{{ServiceAccounts: []string{"*/reviews"}, Namespaces: []string{"shop"}}},
				To:   []*compile.AuthzOperation{{Methods: []string{"GET"}, Paths: []string{"/ratings/*", "*.png"}}},
				When: []*compile.AuthzCondition{{Header: "x-tenant", Values: []string{"gold", "silver*"}}},
			},
			{From: []*compile.AuthzSource{{Principals: []string{"spiffe://td/ns/ops/sa/*"}}}, To: []*compile.AuthzOperation{{Ports: []int32{9000}}}},
		}},
	}})
	reviews := &Peer{ID: "spiffe://td/ns/shop/sa/reviews"}
	reviewsElsewhere := &Peer{ID: "spiffe://td/ns/dev/sa/reviews"}
	ops := &Peer{ID: "spiffe://td/ns/ops/sa/robot"}
	cases := []struct {
		name   string
		peer   *Peer
		port   int32
		method string
		path   string
		tenant string
		tcp    bool
		allow  bool
	}{
		{"allowed", reviews, 80, "GET", "/ratings/1", "gold", false, true},
		{"suffix path", reviews, 80, "GET", "/img/a.png", "silver-2", false, true},
		{"wrong method", reviews, 80, "POST", "/ratings/1", "gold", false, false},
		{"wrong path", reviews, 80, "GET", "/other", "gold", false, false},
		{"wrong header", reviews, 80, "GET", "/ratings/1", "bronze", false, false},
		{"missing header", reviews, 80, "GET", "/ratings/1", "", false, false},
		{"wrong namespace", reviewsElsewhere, 80, "GET", "/ratings/1", "gold", false, false},
		{"plaintext caller", nil, 80, "GET", "/ratings/1", "gold", false, false},
		{"deny wins", reviews, 80, "GET", "/admin/x.png", "gold", false, false},
		{"principal prefix and port", ops, 9000, "GET", "/x", "", false, true},
		{"principal, other port", ops, 80, "GET", "/x", "", false, false},
		{"tcp allowed by port", ops, 9000, "", "", "", true, true},
		// HTTP-only conditions: the DENY rule matches TCP (fail closed).
		{"tcp denied by http-only deny rule", reviews, 80, "", "", "", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var by string
			if c.tcp {
				by = a.decide(callerOf(c.peer), c.port, nil)
			} else {
				r := httptest.NewRequest(c.method, "http://ratings"+c.path, nil)
				if c.tenant != "" {
					r.Header.Set("X-Tenant", c.tenant)
				}
				by = a.decide(callerOf(c.peer), c.port, r)
			}
			if (by == "") != c.allow {
				t.Fatalf("allowed=%v (by %q), want %v", by == "", by, c.allow)
			}
		})
	}
	if by := newAuthorizer(nil).decide(caller{}, 80, nil); by != "" {
		t.Fatalf("no policies denied: %s", by)
	}
	denyAll := newAuthorizer(&compile.Inbound{Authz: []*compile.AuthzPolicy{{Name: "ns/empty", Action: "ALLOW", Rules: []*compile.AuthzRule{}}}})
	if by := denyAll.decide(callerOf(reviews), 80, nil); by == "" {
		t.Fatal("an ALLOW policy without rules allowed a request")
	}
}
