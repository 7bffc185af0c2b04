package push

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
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

// svcEntry is a service's resource and the names of the clusters its
// config reaches (resolved through view.res, so that an endpoint change
// replaces a cluster without touching the services that reach it).
type svcEntry struct {
	res      *blob
	clusters []string
}

// view is the mesh at one store revision.
type view struct {
	rev      int64
	res      map[string]*blob     // resource name -> blob
	services map[string]*svcEntry // "namespace/name" -> entry
	all      *scoped              // every resource: proxies that declared no dependencies
	inbounds *inboundCache        // each workload's inbound policy, shared by views while policies do not change
	gateways map[string]*gwEntry  // "namespace/name" -> compiled Gateway (gateway.go)
	statuses *statusSet           // route and Gateway status to write back (status_write.go)

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
		for _, name := range e.clusters {
			if c := v.res[name]; c != nil {
				add(c)
			}
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
