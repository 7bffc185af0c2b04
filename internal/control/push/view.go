package push

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/resource"
)

// The mesh view: the whole mesh compiled once per store revision, cut into
// named resources (one per service, one per cluster). Every proxy's config
// is a subset of those resources, picked by its scope; proxies with the same
// scope share one scoped view, and proxies moving between the same two
// scoped views share one delta message. So a revision costs one compile and
// one marshal per resource, not one per proxy.

// blob is one config resource. A resource whose JSON did not change keeps
// its blob from the previous view, so deltas compare pointers.
type blob struct {
	name string
	body []byte
	sum  [sha256.Size]byte
	pb   *meshv1.Resource // shared by every message that carries it
}

func newBlob(name string, body []byte) *blob {
	return &blob{name: name, body: body, sum: sha256.Sum256(body), pb: &meshv1.Resource{Name: name, Body: body}}
}

// svcEntry is a service's resource and the clusters its config reaches.
type svcEntry struct {
	res      *blob
	clusters []*blob
}

// view is the mesh at one store revision.
type view struct {
	rev      int64
	res      map[string]*blob     // resource name -> blob
	services map[string]*svcEntry // "namespace/name" -> entry
	all      *scoped              // every resource: proxies that declared no dependencies
	inbounds *inboundCache        // each workload's inbound policy, shared by views while policies do not change

	mu     sync.Mutex
	scopes map[string]*scoped // scope key -> scoped view, built on first use
}

// scoped is the config of every proxy with one scope at one view.
type scoped struct {
	id      uint64 // unique within a Server; 0 means "nothing sent yet"
	rev     int64
	version string
	items   []*blob  // sorted by name
	unknown []string // requested "namespace/name" services that do not exist

	mu     sync.Mutex
	deltas map[uint64]*meshv1.ConfigUpdate // from scoped id -> update
}

var scopedIDs atomic.Uint64

func newScoped(rev int64, items []*blob, unknown []string) *scoped {
	sort.Slice(items, func(i, j int) bool { return items[i].name < items[j].name })
	h := sha256.New()
	for _, b := range items {
		h.Write([]byte(b.name))
		h.Write([]byte{0})
		h.Write(b.sum[:])
	}
	return &scoped{
		id:      scopedIDs.Add(1),
		rev:     rev,
		version: hex.EncodeToString(h.Sum(nil))[:16],
		items:   items,
		unknown: unknown,
	}
}

// scope is what one proxy asks for: every service, or a set of
// "namespace/name".
type scope struct {
	all      bool
	services []string // sorted, unique
	key      string
}

func newScope(all bool, services map[string]bool) scope {
	if all {
		return scope{all: true, key: "*"}
	}
	s := scope{services: make([]string, 0, len(services))}
	for k := range services {
		s.services = append(s.services, k)
	}
	sort.Strings(s.services)
	s.key = strings.Join(s.services, ",")
	return s
}

// scoped returns the config of proxies with scope sc, computing it on the
// first call for this view.
func (v *view) scoped(sc scope) *scoped {
	if sc.all {
		return v.all
	}
	v.mu.Lock()
	s := v.scopes[sc.key]
	v.mu.Unlock()
	if s != nil {
		return s
	}
	seen := map[*blob]bool{}
	var items []*blob
	var unknown []string
	add := func(b *blob) {
		if !seen[b] {
			seen[b] = true
			items = append(items, b)
		}
	}
	for _, k := range sc.services {
		e := v.services[k]
		if e == nil {
			unknown = append(unknown, k)
			continue
		}
		add(e.res)
		for _, c := range e.clusters {
			add(c)
		}
	}
	s = newScoped(v.rev, items, unknown)
	v.mu.Lock()
	defer v.mu.Unlock()
	if prev := v.scopes[sc.key]; prev != nil {
		return prev // computed concurrently by another proxy's sender
	}
	v.scopes[sc.key] = s
	return s
}

// delta is the update that takes a proxy holding from (nil: nothing) to to:
// a snapshot when from is nil, else only what changed. It is computed once
// per (from, to) pair and shared by every proxy making that move. The
// result has no resources and no removals when nothing changed.
func delta(from, to *scoped) *meshv1.ConfigUpdate {
	var fromID uint64
	if from != nil {
		fromID = from.id
	}
	to.mu.Lock()
	defer to.mu.Unlock()
	if u := to.deltas[fromID]; u != nil {
		return u
	}
	u := &meshv1.ConfigUpdate{Version: to.version, Revision: to.rev, Unknown: to.unknown}
	if from == nil {
		u.Snapshot = true
		u.Resources = make([]*meshv1.Resource, len(to.items))
		for i, b := range to.items {
			u.Resources[i] = b.pb
		}
	} else {
		a, b := from.items, to.items
		i, j := 0, 0
		for i < len(a) || j < len(b) {
			switch {
			case j == len(b) || i < len(a) && a[i].name < b[j].name:
				u.Removed = append(u.Removed, a[i].name)
				i++
			case i == len(a) || b[j].name < a[i].name:
				u.Resources = append(u.Resources, b[j].pb)
				j++
			default:
				if a[i] != b[j] && a[i].sum != b[j].sum {
					u.Resources = append(u.Resources, b[j].pb)
				}
				i++
				j++
			}
		}
	}
	if to.deltas == nil {
		to.deltas = map[uint64]*meshv1.ConfigUpdate{}
	}
	to.deltas[fromID] = u
	return u
}

// builder turns store contents into views. It keeps decoded objects
// between revisions, so a revision decodes only what changed. Not safe for
// concurrent use: the server's watch loop owns it.
type builder struct {
	log     *slog.Logger
	decoded map[string]*decoded // store key -> decoded object
	prev    *view
}

type decoded struct {
	data []byte
	obj  *resource.Object // nil when the object does not decode
}

func newBuilder(log *slog.Logger) *builder {
	return &builder{log: log, decoded: map[string]*decoded{}}
}

// internalKind reports kinds the control plane keeps for itself (proxy
// status), which are not mesh resources.
func internalKind(kind string) bool { return strings.HasPrefix(kind, "_") }

// build makes the view of objs (a List at revision rev). It returns the
// previous view unchanged when no mesh resource changed (only internal
// objects, such as proxy status), so nothing is recompiled or pushed.
func (b *builder) build(objs []*store.Object, rev int64) (*view, error) {
	changed := b.prev == nil
	// Inbound policy depends on everything but Workloads: endpoint churn
	// must not recompute it.
	policyChanged := changed
	seen := 0
	for _, o := range objs {
		if internalKind(o.Kind) {
			continue
		}
		seen++
		key := o.Key()
		if d := b.decoded[key]; d != nil && bytes.Equal(d.data, o.Data) {
			continue
		}
		changed = true
		policyChanged = policyChanged || o.Kind != resource.KindWorkload
		b.decoded[key] = b.decode(o)
		b.log.Debug("resource changed", "key", key, "resourceVersion", o.ResourceVersion)
	}
	if seen != len(b.decoded) {
		changed = true
		live := make(map[string]bool, seen)
		for _, o := range objs {
			live[o.Key()] = true
		}
		for k := range b.decoded {
			if !live[k] {
				delete(b.decoded, k)
				b.log.Debug("resource gone", "key", k)
				policyChanged = policyChanged || !strings.HasPrefix(k, resource.KindWorkload+"/")
			}
		}
	}
	if !changed {
		return b.prev, nil
	}

	keys := make([]string, 0, len(b.decoded))
	for k, d := range b.decoded {
		if d.obj != nil {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	list := make([]*resource.Object, len(keys))
	for i, k := range keys {
		list[i] = b.decoded[k].obj
	}
	set := resource.NewSet(list)
	cfg, err := compile.Compile(set, compile.Options{})
	if err != nil {
		return nil, fmt.Errorf("compile at revision %d: %w", rev, err)
	}
	v, err := b.cut(cfg, rev)
	if err != nil {
		return nil, err
	}
	if policyChanged || b.prev == nil {
		v.inbounds = newInboundCache(set)
	} else {
		v.inbounds = b.prev.inbounds
	}
	b.prev = v
	return v, nil
}

func (b *builder) decode(o *store.Object) *decoded {
	d := &decoded{data: o.Data}
	objs, err := resource.Decode(o.Key(), o.Data)
	if err == nil && len(objs) != 1 {
		err = fmt.Errorf("holds %d resources, want 1", len(objs))
	}
	if err != nil {
		// One bad object must not stop the mesh: leave it out, say why.
		b.log.Warn("stored resource left out of the mesh: it does not decode", "key", o.Key(), "error", err)
		return d
	}
	d.obj = objs[0]
	return d
}

// cut splits a whole-mesh config into resources, reusing the previous
// view's blobs for resources whose JSON did not change.
func (b *builder) cut(cfg *compile.Config, rev int64) (*view, error) {
	v := &view{
		rev:      rev,
		res:      make(map[string]*blob, len(cfg.Services)+len(cfg.Clusters)),
		services: make(map[string]*svcEntry, len(cfg.Services)),
		scopes:   map[string]*scoped{},
	}
	mk := func(name string, x any) (*blob, error) {
		body, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("marshal %s: %w", name, err)
		}
		if b.prev != nil {
			if old := b.prev.res[name]; old != nil && bytes.Equal(old.body, body) {
				v.res[name] = old
				return old, nil
			}
		}
		nb := newBlob(name, body)
		v.res[name] = nb
		return nb, nil
	}
	clusters := make(map[string]*blob, len(cfg.Clusters))
	for name, c := range cfg.Clusters {
		cb, err := mk(meshv1.ClusterResource(name), c)
		if err != nil {
			return nil, err
		}
		clusters[name] = cb
	}
	all := make([]*blob, 0, len(v.res)+len(cfg.Services))
	for _, cb := range clusters {
		all = append(all, cb)
	}
	for _, s := range cfg.Services {
		sb, err := mk(meshv1.ServiceResource(s.Namespace, s.Name), s)
		if err != nil {
			return nil, err
		}
		e := &svcEntry{res: sb}
		for _, name := range ClusterRefs(s) {
			if cb := clusters[name]; cb != nil {
				e.clusters = append(e.clusters, cb)
			}
		}
		v.services[s.Namespace+"/"+s.Name] = e
		all = append(all, sb)
	}
	v.all = newScoped(rev, all, nil)
	return v, nil
}

// inboundCache holds the inbound policy of each distinct workload (its
// namespace and labels), computed on first use.
type inboundCache struct {
	set *resource.Set // only what inbound policy depends on

	mu sync.Mutex
	m  map[string]*blob // selfKey -> blob
}

func newInboundCache(full *resource.Set) *inboundCache {
	return &inboundCache{
		set: &resource.Set{
			Services:              full.Services,
			AuthorizationPolicies: full.AuthorizationPolicies,
			PeerAuthentications:   full.PeerAuthentications,
		},
		m: map[string]*blob{},
	}
}

// selfKey identifies a workload for inbound policy: namespace and labels.
func selfKey(ns string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(ns)
	for _, k := range keys {
		b.WriteString("\x00")
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(labels[k])
	}
	return b.String()
}

// inbound returns the inbound policy of the workload ns/labels.
func (v *view) inbound(key, ns string, labels map[string]string) (*blob, error) {
	c := v.inbounds
	c.mu.Lock()
	b := c.m[key]
	c.mu.Unlock()
	if b != nil {
		return b, nil
	}
	cfg, err := compile.Compile(c.set, compile.Options{Namespace: ns, Services: []string{}, Self: &compile.Self{Namespace: ns, Labels: labels}})
	if err != nil {
		return nil, fmt.Errorf("inbound policy: %w", err)
	}
	body, err := json.Marshal(cfg.Inbound)
	if err != nil {
		return nil, fmt.Errorf("inbound policy: %w", err)
	}
	b = newBlob(meshv1.InboundResource, body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev := c.m[key]; prev != nil {
		return prev, nil
	}
	c.m[key] = b
	return b, nil
}

// proxyVersion is the version of a proxy's whole config: its scoped view
// and its inbound policy. Equal content gives equal versions on every
// replica.
func proxyVersion(sc *scoped, in *blob) string {
	h := sha256.New()
	h.Write([]byte(sc.version))
	h.Write(in.sum[:])
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ClusterRefs lists the clusters a compiled service reaches: each port's own
// cluster, route backends and mirrors, sorted and without duplicates. A
// proxy that may call the service gets these clusters with it, exactly as
// compile.Compile with the service in Options.Services would give.
func ClusterRefs(s *compile.Service) []string {
	var out []string
	for _, p := range s.Ports {
		out = append(out, compile.ClusterName(s.Namespace, s.Name, p.Port))
		if p.HTTP != nil {
			for _, r := range p.HTTP.Rules {
				for _, be := range r.Backends {
					out = append(out, be.Cluster)
				}
				for _, m := range r.Mirrors {
					out = append(out, m.Cluster)
				}
			}
		}
		if p.TCP != nil {
			for _, be := range p.TCP.Backends {
				out = append(out, be.Cluster)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
