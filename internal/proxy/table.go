package proxy

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"weft.dev/weft/internal/compile"
)

// table is the immutable, request-ready form of one compile.Config: host
// lookups are map reads and regexes are compiled once, when config loads.
type table struct {
	cfg *compile.Config
	// ports maps "host:port" (every host alias of a service) to its port.
	ports map[string]*servicePort
	// single maps a host to its only port when a service has exactly one, so
	// http://name/ works without the port.
	single map[string]*servicePort
	// byName maps "name", "name.ns" (and the other host aliases) to the
	// service, for --upstream NAME bindings.
	byName map[string]*compile.Service
	// authz decides the inbound's requests and connections.
	authz *authorizer
}

// servicePort is one port of one service with its compiled route table.
type servicePort struct {
	svc   *compile.Service
	port  *compile.ServicePort
	rules []*rule
	tcp   *weighted
}

type rule struct {
	*compile.HTTPRule
	hosts    []string
	matches  []*match
	backends *weighted
}

type match struct {
	*compile.HTTPMatch
	pathRe  *regexp.Regexp
	headers []valueMatcher
	query   []valueMatcher
}

type valueMatcher struct {
	name  string // canonical header key, or query key
	value string
	re    *regexp.Regexp
}

func (m valueMatcher) ok(v string, present bool) bool {
	if !present {
		return false
	}
	if m.re != nil {
		return m.re.MatchString(v)
	}
	return v == m.value
}

// weighted picks a backend in proportion to weights. Zero-weight backends
// are never picked; a rule whose weights are all zero answers 500, as the
// Gateway API asks.
type weighted struct {
	backends []*compile.Backend
	cum      []int64
	total    int64
}

func newWeighted(bs []*compile.Backend) *weighted {
	w := &weighted{backends: bs}
	for _, b := range bs {
		w.total += int64(b.Weight)
		w.cum = append(w.cum, w.total)
	}
	return w
}

func (w *weighted) pick() *compile.Backend {
	if w.total <= 0 {
		return nil
	}
	if len(w.backends) == 1 {
		return w.backends[0]
	}
	n := rand.Int64N(w.total)
	for i, c := range w.cum {
		if n < c {
			return w.backends[i]
		}
	}
	return w.backends[len(w.backends)-1]
}

func buildTable(cfg *compile.Config) (*table, error) {
	t := &table{cfg: cfg, ports: map[string]*servicePort{}, single: map[string]*servicePort{}, byName: map[string]*compile.Service{},
		authz: newAuthorizer(cfg.Inbound)}
	for _, svc := range cfg.Services {
		for _, h := range svc.Hosts {
			t.byName[h] = svc
		}
		for _, p := range svc.Ports {
			sp := &servicePort{svc: svc, port: p}
			if p.HTTP != nil {
				for i, r := range p.HTTP.Rules {
					cr, err := compileRule(r)
					if err != nil {
						return nil, fmt.Errorf("service %s/%s port %d rule %d (%s): %w", svc.Namespace, svc.Name, p.Port, i, r.Route, err)
					}
					sp.rules = append(sp.rules, cr)
				}
			}
			if p.TCP != nil {
				sp.tcp = newWeighted(p.TCP.Backends)
			}
			for _, h := range svc.Hosts {
				t.ports[net.JoinHostPort(h, strconv.Itoa(int(p.Port)))] = sp
				if len(svc.Ports) == 1 {
					t.single[h] = sp
				}
			}
		}
	}
	return t, nil
}

func compileRule(r *compile.HTTPRule) (*rule, error) {
	cr := &rule{HTTPRule: r, backends: newWeighted(r.Backends)}
	for _, h := range r.Hostnames {
		cr.hosts = append(cr.hosts, strings.ToLower(h))
	}
	for _, m := range r.Matches {
		cm := &match{HTTPMatch: m}
		if m.PathType == compile.PathRegex {
			re, err := regexp.Compile("^(?:" + m.Path + ")$")
			if err != nil {
				return nil, fmt.Errorf("path regex %q: %w", m.Path, err)
			}
			cm.pathRe = re
		}
		var err error
		if cm.headers, err = valueMatchers(m.Headers, true); err != nil {
			return nil, err
		}
		if cm.query, err = valueMatchers(m.Query, false); err != nil {
			return nil, err
		}
		cr.matches = append(cr.matches, cm)
	}
	return cr, nil
}

func valueMatchers(vs []*compile.ValueMatch, header bool) ([]valueMatcher, error) {
	var out []valueMatcher
	for _, v := range vs {
		vm := valueMatcher{name: v.Name, value: v.Value}
		if header {
			vm.name = http.CanonicalHeaderKey(v.Name)
		}
		if v.Regex {
			re, err := regexp.Compile("^(?:" + v.Value + ")$")
			if err != nil {
				return nil, fmt.Errorf("regex for %q: %w", v.Name, err)
			}
			vm.re = re
		}
		out = append(out, vm)
	}
	return out, nil
}

// lookup finds the service port a request's authority names. A missing port
// means 80, or the service's only port.
func (t *table) lookup(hostport string) *servicePort {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if port != "" {
		return t.ports[net.JoinHostPort(host, port)]
	}
	if sp := t.ports[net.JoinHostPort(host, "80")]; sp != nil {
		return sp
	}
	return t.single[host]
}

// route returns the first rule that matches the request, or nil.
func (sp *servicePort) route(r *http.Request) *rule {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	var query map[string][]string
	for _, ru := range sp.rules {
		if len(ru.hosts) > 0 && !hostMatches(ru.hosts, host) {
			continue
		}
		if len(ru.matches) == 0 {
			return ru
		}
		for _, m := range ru.matches {
			if m.ok(r, &query) {
				return ru
			}
		}
	}
	return nil
}

// hostMatches implements Gateway API hostname matching, with "*.example.com"
// wildcards covering one or more labels.
func hostMatches(hosts []string, host string) bool {
	for _, h := range hosts {
		if h == host {
			return true
		}
		if strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) && len(host) > len(h)-1 {
			return true
		}
	}
	return false
}

func (m *match) ok(r *http.Request, query *map[string][]string) bool {
	if m.Method != "" && r.Method != m.Method {
		return false
	}
	if m.Path != "" && !pathMatches(m, r.URL.Path) {
		return false
	}
	for _, h := range m.headers {
		vs, present := r.Header[h.name]
		v := ""
		if present && len(vs) > 0 {
			v = vs[0]
		}
		if !h.ok(v, present) {
			return false
		}
	}
	if len(m.query) > 0 {
		if *query == nil {
			*query = r.URL.Query()
		}
		for _, q := range m.query {
			vs, present := (*query)[q.name]
			v := ""
			if present && len(vs) > 0 {
				v = vs[0]
			}
			if !q.ok(v, present) {
				return false
			}
		}
	}
	return true
}

func pathMatches(m *match, path string) bool {
	if path == "" {
		path = "/"
	}
	switch m.PathType {
	case compile.PathExact:
		return path == m.Path
	case compile.PathRegex:
		return m.pathRe.MatchString(path)
	default:
		return prefixMatches(m.Path, path)
	}
}

// prefixMatches is the Gateway API's element-wise prefix match: "/foo"
// matches "/foo", "/foo/" and "/foo/bar", not "/foobar".
func prefixMatches(prefix, path string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}
