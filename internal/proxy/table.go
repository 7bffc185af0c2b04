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
	// byName maps "name", "name.ns" (and the other host aliases) to the
	// service, for --upstream NAME bindings and lookup.
	byName map[string]*compile.Service
	// servicePorts holds each service's ports, in its order.
	servicePorts map[*compile.Service][]*servicePort
	// ports maps "host:port" to a port for the hosts that byName alone
	// does not settle: every service's short name (Hosts[0], which
	// services of several namespaces may share, and which --upstream
	// bindings look up), and any host that several services claim. For
	// those, the last service in config order that has the port wins, port
	// by port. Other hosts, such as name.ns.svc.cluster.local, are looked up
	// through byName: one entry per host instead of one per host and port.
	ports map[string]*servicePort
	// single maps such a host to the only port of the last service with
	// exactly one, so http://name/ works without the port.
	single map[string]*servicePort
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
	if len(bs) == 1 {
		w.total = int64(bs[0].Weight) // pick needs no sums for one
		return w
	}
	w.cum = make([]int64, len(bs))
	for i, b := range bs {
		w.total += int64(b.Weight)
		w.cum[i] = w.total
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
	t := &table{cfg: cfg, byName: make(map[string]*compile.Service, 4*len(cfg.Services)),
		servicePorts: make(map[*compile.Service][]*servicePort, len(cfg.Services)),
		ports:        make(map[string]*servicePort, len(cfg.Services)), single: map[string]*servicePort{},
		authz: newAuthorizer(cfg.Inbound)}
	var shared map[string]bool // hosts several services claim; usually none
	for _, svc := range cfg.Services {
		for _, h := range svc.Hosts {
			if prev := t.byName[h]; prev != nil && prev != svc {
				if shared == nil {
					shared = map[string]bool{}
				}
				shared[h] = true
			}
			t.byName[h] = svc
		}
	}
	for _, svc := range cfg.Services {
		sps := make([]*servicePort, 0, len(svc.Ports))
		for _, p := range svc.Ports {
			sp := &servicePort{svc: svc, port: p}
			if p.TCP != nil {
				sp.tcp = newWeighted(p.TCP.Backends)
			}
			if p.HTTP != nil {
				sp.rules = make([]*rule, 0, len(p.HTTP.Rules))
				for i, r := range p.HTTP.Rules {
					cr, err := compilePortRule(r, sp.tcp)
					if err != nil {
						return nil, fmt.Errorf("service %s/%s port %d rule %d (%s): %w", svc.Namespace, svc.Name, p.Port, i, r.Route, err)
					}
					sp.rules = append(sp.rules, cr)
				}
			}
			sps = append(sps, sp)
			for i, h := range svc.Hosts {
				if i != 0 && !shared[h] {
					continue
				}
				t.ports[h+":"+strconv.Itoa(int(p.Port))] = sp
				if len(svc.Ports) == 1 {
					t.single[h] = sp
				}
			}
		}
		t.servicePorts[svc] = sps
	}
	return t, nil
}

// compileRule builds a rule's matchers and picker.
func compileRule(r *compile.HTTPRule) (*rule, error) { return compilePortRule(r, nil) }

// compilePortRule is compileRule for a rule of a service port whose TCP
// picker is tcp: the rule shares it when it has the same single backend,
// as a port's default rule does.
func compilePortRule(r *compile.HTTPRule, tcp *weighted) (*rule, error) {
	cr := &rule{HTTPRule: r}
	if tcp != nil && len(r.Backends) == 1 && len(tcp.backends) == 1 && r.Backends[0] == tcp.backends[0] {
		cr.backends = tcp
	} else {
		cr.backends = newWeighted(r.Backends)
	}
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
	if port == "" {
		if sp := t.ports[host+":80"]; sp != nil {
			return sp
		}
		if sp := t.single[host]; sp != nil {
			return sp
		}
	} else if sp := t.ports[host+":"+port]; sp != nil {
		return sp
	}
	// Not a host of ports: one service's alone, or nothing.
	svc := t.byName[host]
	if svc == nil {
		return nil
	}
	sps := t.servicePorts[svc]
	if port == "" {
		for _, sp := range sps {
			if sp.port.Port == 80 {
				return sp
			}
		}
		if len(sps) == 1 {
			return sps[0]
		}
		return nil
	}
	n, ok := portNumber(port)
	if !ok {
		return nil
	}
	for _, sp := range sps {
		if sp.port.Port == n {
			return sp
		}
	}
	return nil
}

// portNumber reads the port of an authority as the keys of ports spell it
// (strconv.Itoa), so "080" or "+80" name no port, as they never did.
func portNumber(s string) (int32, bool) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, false
	}
	var buf [12]byte
	if string(strconv.AppendInt(buf[:0], n, 10)) != s {
		return 0, false
	}
	return int32(n), true
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
		if len(ru.hosts) > 0 && !HostMatches(ru.hosts, host) {
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

// HostMatches implements Gateway API hostname matching, with "*.example.com"
// wildcards covering one or more labels: for routes here and for the
// gateway's TLSRoutes by SNI.
func HostMatches(hosts []string, host string) bool {
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
