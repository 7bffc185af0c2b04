package push

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/resource"
)

// Gateways. A `weft gateway --control` says in its Hello which Gateway it
// runs. Every view compiles each Gateway once (compile.CompileGateway, from
// the same resources as the mesh) and keeps it as one resource,
// "gateway/<ns>/<name>", without its clusters: those are the mesh view's
// cluster resources, so an endpoint change reaches a gateway exactly as it
// reaches a sidecar (only the cluster is resent). A gateway's scope is its
// Gateway resource and the clusters its routes reach.
//
// The Gateway resource holds the listeners' TLS keys (from Secrets). It is
// sent only on a gateway's stream, which is mutual TLS with an SVID whose
// service account the Gateway allows (gatewayAccounts), and never logged.

// AnnotationGatewayServiceAccount on a Gateway names the service account
// of the `weft gateway` processes that may run it; default the Gateway's
// own name.
const AnnotationGatewayServiceAccount = resource.Group + "/service-account"

// gwEntry is one compiled Gateway in a view.
type gwEntry struct {
	res *blob // compile.Gateway without clusters
	// clusters are the resource names of the clusters its routes reach.
	clusters []string
	// own holds those clusters as the gateway compile made them, for the
	// ones the mesh view has not (a backend port no Service has): they
	// have no endpoints, whoever compiles them.
	own map[string]*blob
	// accounts are the service accounts that may run it.
	accounts []string
	status   *compile.GatewayStatus
}

// compileGateways compiles every Gateway of set into v.gateways. A Gateway
// that does not compile is left out (its gateway keeps its last config)
// and the mesh is not held up by it.
func (b *builder) compileGateways(set *resource.Set, v *view) {
	v.gateways = make(map[string]*gwEntry, len(set.Gateways))
	if len(set.Gateways) == 0 {
		return
	}
	// Workloads only matter to clusters, which come from the mesh view.
	part := *set
	part.Workloads = nil
	var prev map[string]*gwEntry
	if b.prev != nil {
		prev = b.prev.gateways
	}
	for _, g := range set.Gateways {
		if g == nil {
			continue
		}
		key := nsOf(g.Namespace) + "/" + g.Name
		e, err := b.compileGateway(&part, nsOf(g.Namespace), g.Name, prev[key])
		if err != nil {
			b.log.Error("gateway not compiled; its gateway keeps its config", "gateway", key, "error", err)
			continue
		}
		e.accounts = []string{g.Name}
		if sa := g.Annotations[AnnotationGatewayServiceAccount]; sa != "" {
			e.accounts = []string{sa}
		}
		v.gateways[key] = e
	}
}

func (b *builder) compileGateway(set *resource.Set, ns, name string, prev *gwEntry) (*gwEntry, error) {
	gw, err := compile.CompileGateway(set, compile.GatewayOptions{Name: name, Namespace: ns})
	if err != nil {
		return nil, err
	}
	e := &gwEntry{own: map[string]*blob{}, status: gw.Status}
	names := make([]string, 0, len(gw.Clusters))
	for n := range gw.Clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		rn := meshv1.ClusterResource(n)
		e.clusters = append(e.clusters, rn)
		body, err := json.Marshal(gw.Clusters[n])
		if err != nil {
			return nil, fmt.Errorf("marshal cluster %s: %w", n, err)
		}
		e.own[rn] = reuseBlob(prev, rn, body, func(p *gwEntry) *blob { return p.own[rn] })
	}
	cp := *gw
	cp.Version = "" // the stream's version is the gateway's version
	cp.Clusters = map[string]*compile.Cluster{}
	body, err := json.Marshal(&cp)
	if err != nil {
		return nil, fmt.Errorf("marshal gateway: %w", err)
	}
	rn := meshv1.GatewayResource(ns, name)
	e.res = reuseBlob(prev, rn, body, func(p *gwEntry) *blob { return p.res })
	return e, nil
}

// reuseBlob keeps the previous entry's blob when its JSON did not change.
func reuseBlob(prev *gwEntry, name string, body []byte, old func(*gwEntry) *blob) *blob {
	if prev != nil {
		if o := old(prev); o != nil && bytes.Equal(o.body, body) {
			return o
		}
	}
	return newBlob(name, body)
}

// gatewayScoped is the config of the gateways running Gateway key
// ("namespace/name"): its resource and its clusters, live from the mesh
// view. Empty when the Gateway does not exist (or does not compile).
func (v *view) gatewayScoped(key string) *scoped {
	sk := "gateway\x00" + key
	v.mu.Lock()
	s := v.scopes[sk]
	v.mu.Unlock()
	if s != nil {
		return s
	}
	var items []*blob
	if e := v.gateways[key]; e != nil {
		items = append(items, e.res)
		for _, rn := range e.clusters {
			if c := v.res[rn]; c != nil {
				items = append(items, c)
			} else {
				items = append(items, e.own[rn])
			}
		}
	}
	s = newScoped(v.rev, items, nil)
	v.mu.Lock()
	defer v.mu.Unlock()
	if prev := v.scopes[sk]; prev != nil {
		return prev
	}
	v.scopes[sk] = s
	return s
}

// gatewayAllowed reports whether a gateway with service account sa may
// run Gateway key in this view; a Gateway that does not exist (yet)
// allows it: it gets nothing until the Gateway is applied.
func (v *view) gatewayAllowed(key, sa string) (bool, []string) {
	e := v.gateways[key]
	if e == nil {
		return true, nil
	}
	return slices.Contains(e.accounts, sa), e.accounts
}
