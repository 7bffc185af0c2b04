package stats

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/resource"
)

// The mesh as the graph needs it: which services exist and which workloads
// each selects, read from the store (applied Services, applied and
// registered Workloads) and cached for a moment, so that a dashboard that
// polls does not list the store on every call.

const meshCacheFor = 2 * time.Second

type meshService struct {
	namespace, name string
	selector        map[string]string
}

type meshModel struct {
	services  []meshService // sorted by namespace, name
	workloads []api.WorkloadInfo
}

type meshCache struct {
	st  store.Store
	now func() time.Time

	mu   sync.Mutex
	at   time.Time
	last *meshModel
}

func (m *meshCache) get(ctx context.Context) (*meshModel, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last != nil && m.now().Sub(m.at) < meshCacheFor {
		return m.last, nil
	}
	mm := &meshModel{}
	svcs, _, err := m.st.List(ctx, resource.KindService)
	if err != nil {
		return nil, err
	}
	for _, o := range svcs {
		var v struct {
			Spec struct {
				Selector map[string]string `json:"selector"`
			} `json:"spec"`
		}
		if json.Unmarshal(o.Data, &v) != nil {
			continue
		}
		mm.services = append(mm.services, meshService{namespace: o.Namespace, name: o.Name, selector: v.Spec.Selector})
	}
	wls, _, err := m.st.List(ctx, resource.KindWorkload)
	if err != nil {
		return nil, err
	}
	for _, o := range wls {
		var v struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Address string `json:"address"`
				Zone    string `json:"zone"`
			} `json:"spec"`
		}
		if json.Unmarshal(o.Data, &v) != nil {
			continue
		}
		mm.workloads = append(mm.workloads, api.WorkloadInfo{
			Namespace: o.Namespace, Name: o.Name, Address: v.Spec.Address, Labels: v.Metadata.Labels,
			Zone: v.Spec.Zone, Registered: o.Ephemeral,
		})
	}
	sort.Slice(mm.services, func(i, j int) bool {
		a, b := mm.services[i], mm.services[j]
		if a.namespace != b.namespace {
			return a.namespace < b.namespace
		}
		return a.name < b.name
	})
	m.last, m.at = mm, m.now()
	return mm, nil
}

// selects is Kubernetes' rule: every selector label present with its
// value; an empty selector selects nothing (its endpoints are managed by
// hand).
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// serviceOf names the service a caller workload belongs to, for the graph:
// of the services in its namespace that select its labels, the broadest
// (fewest selector labels: "reviews" rather than "reviews-v2"), then by
// name. ok is false when none does.
func (mm *meshModel) serviceOf(namespace string, labels map[string]string) (name string, ok bool) {
	best := -1
	for _, s := range mm.services {
		if s.namespace != namespace || !selects(s.selector, labels) {
			continue
		}
		if best < 0 || len(s.selector) < best {
			name, best, ok = s.name, len(s.selector), true
		}
	}
	return name, ok
}

// workloadsOf lists the workloads the service selects.
func (mm *meshModel) workloadsOf(namespace, name string) []api.WorkloadInfo {
	var sel map[string]string
	for _, s := range mm.services {
		if s.namespace == namespace && s.name == name {
			sel = s.selector
		}
	}
	out := []api.WorkloadInfo{}
	for _, w := range mm.workloads {
		if w.Namespace == namespace && selects(sel, w.Labels) {
			out = append(out, w)
		}
	}
	return out
}

func (mm *meshModel) hasService(namespace, name string) bool {
	for _, s := range mm.services {
		if s.namespace == namespace && s.name == name {
			return true
		}
	}
	return false
}
