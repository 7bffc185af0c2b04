package proxy

import (
	"fmt"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"weft.dev/weft/internal/compile"
)

func TestPrefixMatches(t *testing.T) {
	cases := []struct {
		prefix, path string
		want         bool
	}{
		{"/", "/anything", true},
		{"/foo", "/foo", true},
		{"/foo", "/foo/", true},
		{"/foo", "/foo/bar", true},
		{"/foo", "/foobar", false},
		{"/foo/", "/foo", true},
		{"/foo/", "/foo/bar", true},
		{"/foo/bar", "/foo", false},
	}
	for _, c := range cases {
		if got := prefixMatches(c.prefix, c.path); got != c.want {
			t.Errorf("prefixMatches(%q, %q) = %v, want %v", c.prefix, c.path, got, c.want)
		}
	}
}

func TestRewritePath(t *testing.T) {
	cases := []struct {
		rw   compile.PathRewrite
		path string
		want string
	}{
		{compile.PathRewrite{FullPath: "/new"}, "/old/x", "/new"},
		{compile.PathRewrite{ReplacePrefix: true, PrefixMatch: "/old", FullPath: "/new"}, "/old/x", "/new/x"},
		{compile.PathRewrite{ReplacePrefix: true, PrefixMatch: "/old", FullPath: "/new"}, "/old", "/new"},
		{compile.PathRewrite{ReplacePrefix: true, PrefixMatch: "/old", FullPath: "/"}, "/old/x", "/x"},
		{compile.PathRewrite{ReplacePrefix: true, PrefixMatch: "/old", FullPath: "/"}, "/old", "/"},
		{compile.PathRewrite{ReplacePrefix: true, PrefixMatch: "/old/", FullPath: "/new/"}, "/old/x", "/new/x"},
	}
	for _, c := range cases {
		if got := rewritePath(&c.rw, c.path); got != c.want {
			t.Errorf("rewritePath(%+v, %q) = %q, want %q", c.rw, c.path, got, c.want)
		}
	}
}

func testTable(t *testing.T, rules ...*compile.HTTPRule) *table {
	t.Helper()
	cfg := &compile.Config{
		Services: []*compile.Service{{
			Name: "web", Namespace: "default",
			Hosts: []string{"web", "web.default", "web.default.svc", "web.default.svc.cluster.local"},
			Ports: []*compile.ServicePort{{Port: 8080, Protocol: "http", HTTP: &compile.HTTPRouting{Rules: rules}}},
		}},
	}
	tb, err := buildTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestRouteMatching(t *testing.T) {
	be := []*compile.Backend{{Cluster: "web.default:8080", Weight: 1}}
	tb := testTable(t,
		&compile.HTTPRule{Route: "exact", Matches: []*compile.HTTPMatch{{PathType: compile.PathExact, Path: "/exact"}}, Backends: be},
		&compile.HTTPRule{Route: "regex", Matches: []*compile.HTTPMatch{{PathType: compile.PathRegex, Path: "/items/[0-9]+"}}, Backends: be},
		&compile.HTTPRule{Route: "header", Matches: []*compile.HTTPMatch{{Headers: []*compile.ValueMatch{{Name: "x-canary", Value: "1"}}}}, Backends: be},
		&compile.HTTPRule{Route: "header-re", Matches: []*compile.HTTPMatch{{Headers: []*compile.ValueMatch{{Name: "x-user", Regex: true, Value: "gold-.*"}}}}, Backends: be},
		&compile.HTTPRule{Route: "query", Matches: []*compile.HTTPMatch{{Query: []*compile.ValueMatch{{Name: "v", Value: "2"}}}}, Backends: be},
		&compile.HTTPRule{Route: "method", Matches: []*compile.HTTPMatch{{Method: "DELETE"}}, Backends: be},
		&compile.HTTPRule{Route: "host", Hostnames: []string{"*.example.com"}, Backends: be},
		&compile.HTTPRule{Route: "prefix", Matches: []*compile.HTTPMatch{{PathType: compile.PathPrefix, Path: "/api"}}, Backends: be},
		&compile.HTTPRule{Route: "default", Backends: be},
	)
	sp := tb.lookup("web:8080")
	if sp == nil {
		t.Fatal("lookup web:8080 failed")
	}
	if tb.lookup("web.default.svc.cluster.local:8080") != sp || tb.lookup("web") != sp || tb.lookup("WEB.default.:8080") != sp {
		t.Fatal("host aliases do not resolve to the same port")
	}
	if tb.lookup("web:9999") != nil || tb.lookup("nope:8080") != nil {
		t.Fatal("unknown host or port resolved")
	}
	cases := []struct {
		method, target string
		headers        map[string]string
		want           string
	}{
		{"GET", "http://web:8080/exact", nil, "exact"},
		{"GET", "http://web:8080/exact/", nil, "default"},
		{"GET", "http://web:8080/items/42", nil, "regex"},
		{"GET", "http://web:8080/items/42x", nil, "default"},
		{"GET", "http://web:8080/", map[string]string{"X-Canary": "1"}, "header"},
		{"GET", "http://web:8080/", map[string]string{"X-Canary": "2"}, "default"},
		{"GET", "http://web:8080/", map[string]string{"X-User": "gold-7"}, "header-re"},
		{"GET", "http://web:8080/?v=2", nil, "query"},
		{"DELETE", "http://web:8080/", nil, "method"},
		{"GET", "http://a.example.com/", nil, "host"},
		{"GET", "http://web:8080/api/x", nil, "prefix"},
		{"GET", "http://web:8080/apix", nil, "default"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.target, nil)
		for k, v := range c.headers {
			r.Header.Set(k, v)
		}
		got := sp.route(r)
		if got == nil || got.Route != c.want {
			name := "<nil>"
			if got != nil {
				name = got.Route
			}
			t.Errorf("%s %s %v: routed to %s, want %s", c.method, c.target, c.headers, name, c.want)
		}
	}
}

// TestLookupHosts checks lookup against the plain definition: a map from
// every "host:port" of every service, later services overwriting earlier
// ones, with a missing port meaning 80 or a service's only port. Short
// names shared across namespaces, and a host one service has as a short
// name and another as an alias, are where the two could part.
func TestLookupHosts(t *testing.T) {
	svc := func(ns, name string, hosts []string, ports ...int32) *compile.Service {
		if hosts == nil {
			hosts = []string{name, name + "." + ns, name + "." + ns + ".svc", name + "." + ns + ".svc.cluster.local"}
		}
		s := &compile.Service{Name: name, Namespace: ns, Hosts: hosts}
		for _, p := range ports {
			s.Ports = append(s.Ports, &compile.ServicePort{Port: p, Protocol: "http", HTTP: &compile.HTTPRouting{
				Rules: []*compile.HTTPRule{{Backends: []*compile.Backend{{Cluster: ns + "/" + name, Weight: 1}}}}}})
		}
		return s
	}
	cfg := &compile.Config{Services: []*compile.Service{
		svc("default", "web", nil, 80, 8080),
		svc("prod", "web", nil, 8080, 9090),
		svc("default", "one", nil, 7000),
		svc("prod", "one", nil, 80),
		svc("default", "two", nil, 81, 82),
		svc("other", "odd", []string{"odd", "web.prod"}, 9090, 1),
		svc("x", "big", nil, 70000),
	}}
	tb, err := buildTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*servicePort{}
	single := map[string]*servicePort{}
	for _, s := range cfg.Services {
		for _, p := range s.Ports {
			var sp *servicePort
			for _, x := range tb.servicePorts[s] {
				if x.port == p {
					sp = x
				}
			}
			if sp == nil || sp.svc != s {
				t.Fatalf("%s/%s port %d has no servicePort", s.Namespace, s.Name, p.Port)
			}
			for _, h := range s.Hosts {
				want[net.JoinHostPort(h, strconv.Itoa(int(p.Port)))] = sp
				if len(s.Ports) == 1 {
					single[h] = sp
				}
			}
		}
	}
	name := func(sp *servicePort) string {
		if sp == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%s/%s:%d", sp.svc.Namespace, sp.svc.Name, sp.port.Port)
	}
	for _, s := range cfg.Services {
		for _, h := range append(s.Hosts, "nope", "") {
			for _, port := range []string{"", "80", "1", "7000", "8080", "9090", "81", "82", "70000", "080", "+80", "-1", "x"} {
				authority := h
				if port != "" {
					authority = net.JoinHostPort(h, port)
				}
				exp := want[net.JoinHostPort(h, port)]
				if port == "" {
					if exp = want[net.JoinHostPort(h, "80")]; exp == nil {
						exp = single[h]
					}
				}
				if got := tb.lookup(authority); got != exp {
					t.Errorf("lookup(%q) = %s, want %s", authority, name(got), name(exp))
				}
				if got := tb.lookup(strings.ToUpper(authority) + "."); port == "" && got != exp {
					t.Errorf("lookup(%q) = %s, want %s", strings.ToUpper(authority)+".", name(got), name(exp))
				}
			}
		}
	}
	if len(tb.ports) >= len(want) {
		t.Errorf("ports holds %d keys, no fewer than one per host and port (%d)", len(tb.ports), len(want))
	}
}

func TestBadRegexRefused(t *testing.T) {
	cfg := &compile.Config{Services: []*compile.Service{{Name: "a", Namespace: "default", Hosts: []string{"a"},
		Ports: []*compile.ServicePort{{Port: 80, HTTP: &compile.HTTPRouting{Rules: []*compile.HTTPRule{{
			Matches: []*compile.HTTPMatch{{PathType: compile.PathRegex, Path: "("}}}}}}}}}}
	if _, err := buildTable(cfg); err == nil {
		t.Fatal("a bad regex was accepted")
	}
}

func TestWeightedPick(t *testing.T) {
	w := newWeighted([]*compile.Backend{{Cluster: "a", Weight: 90}, {Cluster: "b", Weight: 10}, {Cluster: "z", Weight: 0}})
	counts := map[string]int{}
	for i := 0; i < 100000; i++ {
		counts[w.pick().Cluster]++
	}
	if counts["z"] != 0 {
		t.Errorf("zero-weight backend picked %d times", counts["z"])
	}
	if a := counts["a"]; a < 89000 || a > 91000 {
		t.Errorf("a picked %d of 100000, want ~90000", a)
	}
	if newWeighted([]*compile.Backend{{Cluster: "a", Weight: 0}}).pick() != nil {
		t.Error("all-zero weights picked a backend")
	}
}
