package compile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"weft.dev/weft/internal/resource"
)

// Options say which proxy a Config is compiled for.
type Options struct {
	// Namespace is the proxy's own namespace. It is meant for resolving short
	// host names and GAMMA consumer routes; Compile does not use it yet.
	Namespace string
	// Services limits the output to these services, each "namespace/name".
	// nil means every service. Clusters that the included services' routes
	// send to (backends, mirrors) are always included, in or out of scope.
	Services []string
	// Self is the workload the proxy stands for; with it, the Config's
	// Inbound carries the policies of that workload's inbound.
	Self *Self
}

// Compile turns a validated resource set into the Config of one proxy. It is
// a pure function: no I/O, and the same input (in any order) gives the same
// output, byte for byte once marshalled, and the same Version.
//
// Input that slipped past validation never makes Compile panic: a rule that
// cannot be built is marked Invalid (it answers 500, as the Gateway API
// requires), and a reference to something missing still compiles to a
// backend that has no endpoints.
func Compile(set *resource.Set, opts Options) (*Config, error) {
	if set == nil {
		set = &resource.Set{}
	}
	scope, err := parseScope(opts.Services)
	if err != nil {
		return nil, err
	}
	c := newCompiler(set)

	cfg := &Config{Services: []*Service{}, Clusters: map[string]*Cluster{}}
	for _, svc := range c.serviceList {
		if scope != nil && !scope[c.key(svc.Namespace, svc.Name)] {
			continue
		}
		cfg.Services = append(cfg.Services, c.service(svc))
	}
	// Building the services recorded every cluster they reach: their own
	// ports, route backends and mirrors.
	for name, ref := range c.refs {
		cfg.Clusters[name] = c.cluster(name, ref)
	}
	if opts.Self != nil {
		cfg.Inbound = inbound(set, opts.Self)
	}
	v, err := version(cfg)
	if err != nil {
		return nil, err
	}
	cfg.Version = v
	return cfg, nil
}

// version is a content hash of cfg without its version: identical inputs give
// identical versions, so a proxy can tell a no-op push from a change.
func version(cfg *Config) (string, error) {
	cp := *cfg
	cp.Version = ""
	b, err := json.Marshal(&cp)
	if err != nil {
		return "", fmt.Errorf("compile: hashing config: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16], nil
}

func parseScope(services []string) (map[string]bool, error) {
	if services == nil {
		return nil, nil
	}
	scope := make(map[string]bool, len(services))
	for _, s := range services {
		ns, name, ok := strings.Cut(s, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("compile: scope entry %q: want namespace/name", s)
		}
		scope[s] = true
	}
	return scope, nil
}

// compiler holds the indexes of one compilation and the clusters it has
// referenced so far.
type compiler struct {
	serviceList []*corev1.Service                   // sorted by namespace, name
	services    map[string]*corev1.Service          // by namespace/name
	workloads   map[string][]*resource.Workload     // by namespace, sorted by name
	faults      map[string]*resource.FaultInjection // by namespace/name
	policies    map[string]*resource.TrafficPolicy  // by target namespace/name
	httpRoutes  []*gwv1.HTTPRoute
	grpcRoutes  []*gwv1.GRPCRoute
	tcpRoutes   []*gwv1.TCPRoute // oldest first, then namespace/name
	refs        map[string]clusterRef
	names       map[clusterRef]string // the name of each of refs
	joined      map[[2]string]string  // see join
}

func newCompiler(set *resource.Set) *compiler {
	c := &compiler{
		services:  map[string]*corev1.Service{},
		workloads: map[string][]*resource.Workload{},
		faults:    map[string]*resource.FaultInjection{},
		refs:      map[string]clusterRef{},
		names:     map[clusterRef]string{},
		joined:    map[[2]string]string{},
	}
	for _, s := range set.Services {
		if s == nil {
			continue
		}
		k := c.key(s.Namespace, s.Name)
		if _, dup := c.services[k]; dup {
			continue // Decode refuses duplicates; keep the first if a caller did not
		}
		c.services[k] = s
		c.serviceList = append(c.serviceList, s)
	}
	sort.Slice(c.serviceList, func(i, j int) bool {
		a, b := c.serviceList[i], c.serviceList[j]
		if na, nb := nsOf(a.Namespace), nsOf(b.Namespace); na != nb {
			return na < nb
		}
		return a.Name < b.Name
	})
	for _, w := range set.Workloads {
		if w == nil {
			continue
		}
		ns := nsOf(w.Namespace)
		c.workloads[ns] = append(c.workloads[ns], w)
	}
	for _, ws := range c.workloads {
		sort.SliceStable(ws, func(i, j int) bool { return ws[i].Name < ws[j].Name })
	}
	for _, f := range set.FaultInjections {
		if f == nil {
			continue
		}
		if k := c.key(f.Namespace, f.Name); c.faults[k] == nil {
			c.faults[k] = f
		}
	}
	c.policies = indexPolicies(set.TrafficPolicies)
	for _, r := range set.HTTPRoutes {
		if r != nil {
			c.httpRoutes = append(c.httpRoutes, r)
		}
	}
	for _, r := range set.GRPCRoutes {
		if r != nil {
			c.grpcRoutes = append(c.grpcRoutes, r)
		}
	}
	for _, r := range set.TCPRoutes {
		if r != nil {
			c.tcpRoutes = append(c.tcpRoutes, r)
		}
	}
	sort.SliceStable(c.tcpRoutes, func(i, j int) bool {
		a, b := c.tcpRoutes[i], c.tcpRoutes[j]
		return olderThan(a.CreationTimestamp.Time, b.CreationTimestamp.Time,
			c.key(a.Namespace, a.Name), c.key(b.Namespace, b.Name))
	})
	return c
}

// key is "namespace/name", with the namespace defaulted as Decode does.
func (c *compiler) key(ns, name string) string { return nsOf(ns) + "/" + name }

// nsOf defaults an empty namespace, for Sets built without Decode.
func nsOf(ns string) string {
	if ns == "" {
		return resource.DefaultNamespace
	}
	return ns
}
