package push

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/resource"
)

// Compiling the mesh. The compiler (internal/compile) is the one definition
// of what a proxy's config is; this file only decides what to hand it so
// that a revision costs little at scale:
//
//   - Services are compiled in batches, each with only the Workloads its
//     services select (found through a label index). The compiler matches
//     every cluster against every workload of its namespace, so one compile
//     of 1,000 services and 10,000 workloads makes ten million selector
//     checks; batches make it tens of thousands.
//   - A revision that changed only Workloads recompiles only the services
//     that select them (by the old or the new labels): their own clusters
//     are all that an endpoint change can alter.
//
// A batch's output is exact for its own services and their own clusters
// (every workload they select is in the batch). Clusters it reaches on
// other services are left to those services' batches, except clusters no
// batch owns (a service or port that does not exist), which have no
// endpoints and come out the same from any batch.

// batchSize is how many services one compile call holds.
const batchSize = 32

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
// status, tokens), which are not mesh resources.
func internalKind(kind string) bool { return strings.HasPrefix(kind, "_") }

// build makes the view of objs (a List at revision rev). It returns the
// previous view unchanged when no mesh resource changed (only internal
// objects, such as proxy status), so nothing is recompiled or pushed.
func (b *builder) build(objs []*store.Object, rev int64) (*view, error) {
	full := b.prev == nil // anything but Workloads changed: recompile all
	var moved []*resource.Workload
	seen := 0
	for _, o := range objs {
		if internalKind(o.Kind) {
			continue
		}
		seen++
		key := o.Key()
		old := b.decoded[key]
		if old != nil && bytes.Equal(old.data, o.Data) {
			continue
		}
		if old != nil && old.obj != nil && statusOnly(o.Kind, old.data, o.Data) {
			// The control plane's own status write-back: nothing to
			// compile (status_write.go).
			b.decoded[key] = &decoded{data: o.Data, obj: old.obj}
			continue
		}
		d := b.decode(o)
		b.decoded[key] = d
		b.log.Debug("resource changed", "key", key, "resourceVersion", o.ResourceVersion)
		if !b.noteChange(old, d, &moved) {
			full = true
		}
	}
	if seen != len(b.decoded) {
		live := make(map[string]bool, seen)
		for _, o := range objs {
			live[o.Key()] = true
		}
		for k, old := range b.decoded {
			if !live[k] {
				delete(b.decoded, k)
				b.log.Debug("resource gone", "key", k)
				if !b.noteChange(old, nil, &moved) {
					full = true
				}
			}
		}
	}
	if !full && len(moved) == 0 {
		return b.prev, nil
	}

	set := b.set()
	idx := indexWorkloads(set.Workloads)
	var v *view
	var err error
	if full {
		v, err = b.compileAll(set, idx, rev)
	} else {
		v, err = b.compileMoved(set, idx, moved, rev)
	}
	if err != nil {
		return nil, err
	}
	b.prev = v
	return v, nil
}

// noteChange records a changed object (old or now may be nil). It returns
// false when the change is not a Workload's: everything must be
// recompiled. A Workload's old and new forms go to moved, whose labels say
// which services' endpoints changed.
func (b *builder) noteChange(old, now *decoded, moved *[]*resource.Workload) bool {
	isWorkload := func(d *decoded) (*resource.Workload, bool) {
		if d == nil {
			return nil, true
		}
		if d.obj == nil {
			return nil, true // did not decode: it contributes nothing
		}
		w, ok := d.obj.Value.(*resource.Workload)
		return w, ok
	}
	ow, ok1 := isWorkload(old)
	nw, ok2 := isWorkload(now)
	if !ok1 || !ok2 {
		return false
	}
	for _, w := range []*resource.Workload{ow, nw} {
		if w != nil {
			*moved = append(*moved, w)
		}
	}
	return true
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

// set is every decoded resource, in key order.
func (b *builder) set() *resource.Set {
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
	return resource.NewSet(list)
}

// compileAll builds a view from scratch: every service, batch by batch.
func (b *builder) compileAll(set *resource.Set, idx *workloadIndex, rev int64) (*view, error) {
	v := &view{
		rev:      rev,
		res:      map[string]*blob{},
		services: make(map[string]*svcEntry, len(set.Services)),
		scopes:   map[string]*scoped{},
		inbounds: newInboundCache(set),
	}
	exists, ownPorts := serviceIndex(set.Services)
	err := forBatches(set, idx, set.Services, func(group map[string]bool, cfg *compile.Config) error {
		for _, s := range cfg.Services {
			body, err := json.Marshal(s)
			if err != nil {
				return fmt.Errorf("marshal service %s/%s: %w", s.Namespace, s.Name, err)
			}
			name := meshv1.ServiceResource(s.Namespace, s.Name)
			v.services[s.Namespace+"/"+s.Name] = &svcEntry{res: b.reuse(v, name, body), clusters: clusterResources(s)}
		}
		return b.takeClusters(v, cfg, group, exists, ownPorts, true)
	})
	if err != nil {
		return nil, err
	}
	b.compileGateways(set, v)
	v.statuses = newStatusSet(set, v.gateways)
	v.all = allScoped(v)
	return v, nil
}

// compileMoved builds a view from the previous one when only Workloads
// changed: the services selecting them get new clusters, everything else
// is shared with the previous view.
func (b *builder) compileMoved(set *resource.Set, idx *workloadIndex, moved []*resource.Workload, rev int64) (*view, error) {
	prev := b.prev
	var dirty []*corev1.Service
	for _, s := range set.Services {
		if s == nil || len(s.Spec.Selector) == 0 {
			continue
		}
		for _, w := range moved {
			if nsOf(w.Namespace) == nsOf(s.Namespace) && selects(s.Spec.Selector, w.Labels) {
				dirty = append(dirty, s)
				break
			}
		}
	}
	if len(dirty) == 0 {
		return prev, nil // no service selects what changed
	}
	v := &view{
		rev:      rev,
		res:      make(map[string]*blob, len(prev.res)),
		services: prev.services, // services do not depend on workloads
		scopes:   map[string]*scoped{},
		inbounds: prev.inbounds, // nor does inbound policy
		gateways: prev.gateways, // nor do Gateways (their clusters come from res)
		statuses: prev.statuses,
	}
	for k, bl := range prev.res {
		v.res[k] = bl
	}
	exists, ownPorts := serviceIndex(set.Services)
	err := forBatches(set, idx, dirty, func(group map[string]bool, cfg *compile.Config) error {
		return b.takeClusters(v, cfg, group, exists, ownPorts, false)
	})
	if err != nil {
		return nil, err
	}
	v.all = allScoped(v)
	return v, nil
}

// takeClusters adds the clusters of one batch's output that the batch owns
// (see the file comment); with orphans, also those no batch owns.
func (b *builder) takeClusters(v *view, cfg *compile.Config, group map[string]bool, exists map[string]bool, ownPorts map[string]bool, orphans bool) error {
	for name, c := range cfg.Clusters {
		own := group[c.Service]
		orphan := !exists[c.Service] || !ownPorts[compile.ClusterName(splitNS(c.Service), splitName(c.Service), c.Port)]
		if !own && !(orphans && orphan) {
			continue
		}
		body, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("marshal cluster %s: %w", name, err)
		}
		rn := meshv1.ClusterResource(name)
		b.reuse(v, rn, body)
	}
	return nil
}

// reuse stores a resource in v, keeping the previous view's blob when its
// JSON did not change so that deltas compare pointers.
func (b *builder) reuse(v *view, name string, body []byte) *blob {
	if b.prev != nil {
		if old := b.prev.res[name]; old != nil && bytes.Equal(old.body, body) {
			v.res[name] = old
			return old
		}
	}
	nb := newBlob(name, body)
	v.res[name] = nb
	return nb
}

func allScoped(v *view) *scoped {
	all := make([]*blob, 0, len(v.res))
	for _, bl := range v.res {
		all = append(all, bl)
	}
	return newScoped(v.rev, all, nil)
}

// forBatches compiles services in batches, each with the workloads its
// services select, and hands each result to take with the batch's
// "namespace/name" set.
func forBatches(set *resource.Set, idx *workloadIndex, services []*corev1.Service, take func(map[string]bool, *compile.Config) error) error {
	for start := 0; start < len(services); start += batchSize {
		batch := services[start:min(start+batchSize, len(services))]
		group := make(map[string]bool, len(batch))
		scope := make([]string, 0, len(batch))
		seen := map[*resource.Workload]bool{}
		var workloads []*resource.Workload
		for _, s := range batch {
			k := nsOf(s.Namespace) + "/" + s.Name
			group[k] = true
			scope = append(scope, k)
			for _, w := range idx.selected(nsOf(s.Namespace), s.Spec.Selector) {
				if !seen[w] {
					seen[w] = true
					workloads = append(workloads, w)
				}
			}
		}
		part := *set // every kind, so new kinds the compiler learns are kept
		part.Workloads = workloads
		cfg, err := compile.Compile(&part, compile.Options{Services: scope})
		if err != nil {
			return fmt.Errorf("compile: %w", err)
		}
		if err := take(group, cfg); err != nil {
			return err
		}
	}
	return nil
}

// serviceIndex says which services exist and which of their ports are
// their own clusters (TCP ports, as the compiler makes them).
func serviceIndex(services []*corev1.Service) (exists, ownPorts map[string]bool) {
	exists = make(map[string]bool, len(services))
	ownPorts = make(map[string]bool, len(services))
	for _, s := range services {
		if s == nil {
			continue
		}
		ns := nsOf(s.Namespace)
		exists[ns+"/"+s.Name] = true
		for _, p := range s.Spec.Ports {
			if p.Port > 0 && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) {
				ownPorts[compile.ClusterName(ns, s.Name, p.Port)] = true
			}
		}
	}
	return exists, ownPorts
}

// clusterResources are the resource names of the clusters a service
// reaches.
func clusterResources(s *compile.Service) []string {
	refs := ClusterRefs(s)
	for i, r := range refs {
		refs[i] = meshv1.ClusterResource(r)
	}
	return refs
}

// workloadIndex finds the workloads a selector picks without testing every
// workload: by namespace and label.
type workloadIndex struct {
	byLabel map[string][]*resource.Workload // "ns\x00key=value" -> workloads
}

func indexWorkloads(ws []*resource.Workload) *workloadIndex {
	idx := &workloadIndex{byLabel: map[string][]*resource.Workload{}}
	for _, w := range ws {
		if w == nil {
			continue
		}
		ns := nsOf(w.Namespace)
		for k, val := range w.Labels {
			key := ns + "\x00" + k + "=" + val
			idx.byLabel[key] = append(idx.byLabel[key], w)
		}
	}
	return idx
}

// selected returns the workloads of ns whose labels match sel (none for an
// empty selector, as the compiler does).
func (idx *workloadIndex) selected(ns string, sel map[string]string) []*resource.Workload {
	var smallest []*resource.Workload
	first := true
	for k, val := range sel {
		c := idx.byLabel[ns+"\x00"+k+"="+val]
		if first || len(c) < len(smallest) {
			smallest, first = c, false
		}
	}
	var out []*resource.Workload
	for _, w := range smallest {
		if selects(sel, w.Labels) {
			out = append(out, w)
		}
	}
	return out
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// nsOf defaults an empty namespace, as the compiler does.
func nsOf(ns string) string {
	if ns == "" {
		return resource.DefaultNamespace
	}
	return ns
}

func splitNS(nsName string) string   { ns, _, _ := strings.Cut(nsName, "/"); return ns }
func splitName(nsName string) string { _, n, _ := strings.Cut(nsName, "/"); return n }
