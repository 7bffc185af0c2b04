package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/resource"
)

// Status write-back. Every full view knows, from compile.CompileGateway,
// why each route that names a Gateway is or is not attached to it, and the
// state of every Gateway and listener. The writer puts that into the
// stored objects' `status`, the Gateway API's place for it, so that `weft
// get httproute X -o yaml` shows it:
//
//   - a route's status.parents gets one entry per parentRef naming a
//     Gateway (controllerName weft.dev/gateway-controller): Accepted and
//     ResolvedRefs with their reasons; a Gateway that does not exist is
//     NoMatchingParent. Entries of other controllers are kept.
//   - a Gateway's status gets its conditions and its listeners'.
//
// Only the status changes: the write keeps every other byte of the object,
// is conditional on the version it read (a concurrent apply wins; the
// writer tries again on the next view), and is skipped when the status is
// already what it should be, lastTransitionTime included (kept while a
// condition's status does not change). The view builder treats a change
// that touches only status as no change (statusOnly), so a write-back does
// not recompile the mesh, and apply keeps the stored status of the objects
// it replaces. Every replica computes the same status from the same
// resources, so replicas sharing a store agree and write at most once.

// ControllerName is weft's Gateway API controller name in route status.
const ControllerName = "weft.dev/gateway-controller"

// statusKinds are the kinds whose status the control plane writes.
var statusKinds = map[string]bool{
	resource.KindGateway:   true,
	resource.KindHTTPRoute: true,
	resource.KindGRPCRoute: true,
	resource.KindTLSRoute:  true,
	resource.KindTCPRoute:  true,
}

// statusSet is the status every Gateway and route should have at one view.
type statusSet struct {
	// routes by store key: the parents that name Gateways.
	routes map[string][]*compile.RouteParentStatus
	// gateways by store key.
	gateways map[string]*compile.GatewayStatus
}

func newStatusSet(set *resource.Set, gws map[string]*gwEntry) *statusSet {
	st := &statusSet{routes: map[string][]*compile.RouteParentStatus{}, gateways: map[string]*compile.GatewayStatus{}}
	for key, e := range gws {
		ns, name := splitNS(key), splitName(key)
		st.gateways[resource.Key(resource.KindGateway, ns, name)] = e.status
		for _, rs := range e.status.Routes {
			k := resource.Key(rs.Kind, rs.Namespace, rs.Name)
			st.routes[k] = append(st.routes[k], rs.Parents...)
		}
	}
	// Parents naming a Gateway that does not exist (or did not compile).
	missing := func(kind, ns string, name string, refs []gwv1.ParentReference) {
		ns = nsOf(ns)
		for _, ref := range refs {
			gns, gname, ok := gatewayRef(ref, ns)
			if !ok || gws[gns+"/"+gname] != nil {
				continue
			}
			ps := &compile.RouteParentStatus{ParentRef: compile.ParentRef{Namespace: gns, Name: gname}}
			if ref.SectionName != nil {
				ps.ParentRef.SectionName = string(*ref.SectionName)
			}
			if ref.Port != nil {
				ps.ParentRef.Port = *ref.Port
			}
			ps.Conditions = []compile.Condition{{Type: string(gwv1.RouteConditionAccepted), Status: "False",
				Reason: string(gwv1.RouteReasonNoMatchingParent), Message: "Gateway " + gns + "/" + gname + " not found"}}
			k := resource.Key(kind, ns, name)
			st.routes[k] = append(st.routes[k], ps)
		}
	}
	for _, r := range set.HTTPRoutes {
		if r != nil {
			missing(resource.KindHTTPRoute, r.Namespace, r.Name, r.Spec.ParentRefs)
		}
	}
	for _, r := range set.GRPCRoutes {
		if r != nil {
			missing(resource.KindGRPCRoute, r.Namespace, r.Name, r.Spec.ParentRefs)
		}
	}
	for _, r := range set.TLSRoutes {
		if r != nil {
			missing(resource.KindTLSRoute, r.Namespace, r.Name, r.Spec.ParentRefs)
		}
	}
	for _, r := range set.TCPRoutes {
		if r != nil {
			missing(resource.KindTCPRoute, r.Namespace, r.Name, r.Spec.ParentRefs)
		}
	}
	for k, ps := range st.routes {
		sort.SliceStable(ps, func(i, j int) bool { return parentKey(ps[i].ParentRef) < parentKey(ps[j].ParentRef) })
		st.routes[k] = ps
	}
	return st
}

// gatewayRef reads a parentRef that names a Gateway (the default kind).
func gatewayRef(ref gwv1.ParentReference, routeNS string) (ns, name string, ok bool) {
	if ref.Kind != nil && string(*ref.Kind) != resource.KindGateway {
		return "", "", false
	}
	if ref.Group != nil && string(*ref.Group) != resource.GatewayGroup {
		return "", "", false
	}
	ns = routeNS
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	return ns, string(ref.Name), true
}

func parentKey(p compile.ParentRef) string {
	b, _ := json.Marshal(p)
	return string(b)
}

// The stored shapes (Gateway API status, as JSON).

type condJSON struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	Reason             string `json:"reason"`
	Message            string `json:"message"`
	LastTransitionTime string `json:"lastTransitionTime"`
}

type parentRefJSON struct {
	Group       string `json:"group"`
	Kind        string `json:"kind"`
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	SectionName string `json:"sectionName,omitempty"`
	Port        int32  `json:"port,omitempty"`
}

type parentJSON struct {
	ParentRef      parentRefJSON `json:"parentRef"`
	ControllerName string        `json:"controllerName"`
	Conditions     []condJSON    `json:"conditions"`
}

type groupKindJSON struct {
	Group string `json:"group"`
	Kind  string `json:"kind"`
}

type listenerJSON struct {
	Name           string          `json:"name"`
	SupportedKinds []groupKindJSON `json:"supportedKinds"`
	AttachedRoutes int             `json:"attachedRoutes"`
	Conditions     []condJSON      `json:"conditions"`
}

type gatewayStatusJSON struct {
	Conditions []condJSON     `json:"conditions"`
	Listeners  []listenerJSON `json:"listeners"`
}

// conditions converts compile conditions, keeping the transition times of
// old conditions whose status did not change.
func conditions(cs []compile.Condition, old []condJSON, now string) []condJSON {
	out := make([]condJSON, 0, len(cs))
	for _, c := range cs {
		t := now
		for _, o := range old {
			if o.Type == c.Type && o.Status == c.Status && o.LastTransitionTime != "" {
				t = o.LastTransitionTime
			}
		}
		out = append(out, condJSON{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: t})
	}
	return out
}

func sameRef(a, b parentRefJSON) bool { return a == b }

// routeStatus is the status a route should have: its stored status with
// weft's parents replaced by want. It returns nil when the route should
// have no status at all.
func routeStatus(stored json.RawMessage, want []*compile.RouteParentStatus, now string) (json.RawMessage, error) {
	var cur struct {
		Parents []json.RawMessage `json:"parents"`
	}
	var rest map[string]json.RawMessage
	if len(stored) > 0 && string(stored) != "null" {
		if err := json.Unmarshal(stored, &cur); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(stored, &rest); err != nil {
			return nil, err
		}
	}
	var ours []parentJSON
	var parents []any
	for _, raw := range cur.Parents {
		var p parentJSON
		if err := json.Unmarshal(raw, &p); err == nil && p.ControllerName == ControllerName {
			ours = append(ours, p)
			continue
		}
		parents = append(parents, raw) // another controller's
	}
	for _, w := range want {
		ref := parentRefJSON{Group: resource.GatewayGroup, Kind: resource.KindGateway, Namespace: w.ParentRef.Namespace,
			Name: w.ParentRef.Name, SectionName: w.ParentRef.SectionName, Port: w.ParentRef.Port}
		var old []condJSON
		for _, o := range ours {
			if sameRef(o.ParentRef, ref) {
				old = o.Conditions
			}
		}
		parents = append(parents, parentJSON{ParentRef: ref, ControllerName: ControllerName, Conditions: conditions(w.Conditions, old, now)})
	}
	if rest == nil {
		rest = map[string]json.RawMessage{}
	}
	delete(rest, "parents")
	if len(parents) == 0 && len(rest) == 0 {
		return nil, nil
	}
	if len(parents) > 0 {
		b, err := json.Marshal(parents)
		if err != nil {
			return nil, err
		}
		rest["parents"] = b
	}
	return json.Marshal(rest)
}

// gatewayStatus is the status a Gateway should have.
func gatewayStatus(stored json.RawMessage, want *compile.GatewayStatus, now string) (json.RawMessage, error) {
	var cur gatewayStatusJSON
	if len(stored) > 0 && string(stored) != "null" {
		_ = json.Unmarshal(stored, &cur) // a status of another shape is replaced
	}
	if want == nil {
		return nil, nil
	}
	out := gatewayStatusJSON{Conditions: conditions(want.Conditions, cur.Conditions, now), Listeners: []listenerJSON{}}
	for _, l := range want.Listeners {
		var old []condJSON
		for _, o := range cur.Listeners {
			if o.Name == l.Name {
				old = o.Conditions
			}
		}
		lj := listenerJSON{Name: l.Name, SupportedKinds: []groupKindJSON{}, AttachedRoutes: l.AttachedRoutes, Conditions: conditions(l.Conditions, old, now)}
		for _, k := range l.SupportedKinds {
			lj.SupportedKinds = append(lj.SupportedKinds, groupKindJSON{Group: resource.GatewayGroup, Kind: k})
		}
		out.Listeners = append(out.Listeners, lj)
	}
	return json.Marshal(out)
}

// withStatus returns a stored object's data with its status replaced
// (status nil: removed), and whether that changes it. Every other field
// keeps its bytes.
func withStatus(data []byte, status json.RawMessage) ([]byte, bool, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(store.SetResourceVersion(data, ""), &top); err != nil {
		return nil, false, err
	}
	old, had := top["status"]
	if status == nil {
		if !had {
			return nil, false, nil
		}
		delete(top, "status")
	} else {
		if had && jsonEqual(old, status) {
			return nil, false, nil
		}
		top["status"] = status
	}
	out, err := json.Marshal(top)
	return out, err == nil, err
}

// jsonEqual compares two JSON values whatever their key order and spacing.
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xa, yb)
}

// statusOnly reports whether two stored forms of an object of kind differ
// only in status (and resourceVersion).
func statusOnly(kind string, a, b []byte) bool {
	if !statusKinds[kind] {
		return false
	}
	var x, y map[string]json.RawMessage
	if json.Unmarshal(store.SetResourceVersion(a, ""), &x) != nil || json.Unmarshal(store.SetResourceVersion(b, ""), &y) != nil {
		return false
	}
	delete(x, "status")
	delete(y, "status")
	if len(x) != len(y) {
		return false
	}
	for k, v := range x {
		if w, ok := y[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// statusRetry is how soon a write-back that lost a race (or failed) is
// tried again.
const statusRetry = 500 * time.Millisecond

// writeStatuses runs until the server stops: whenever a view with new
// statuses is built (statusWake), it brings the stored objects in line.
func (s *Server) writeStatuses() {
	defer s.wg.Done()
	var done *statusSet // the last set fully written
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.statusWake:
		case <-retry.C:
			done = nil
		}
		v := s.current.Load()
		if v == nil || v.statuses == nil || v.statuses == done {
			continue
		}
		if err := s.writeStatusSet(v.statuses); err != nil {
			if s.ctx.Err() != nil {
				return
			}
			if !errors.Is(err, store.ErrConflict) {
				s.log.Warn("route status not written back; retrying", "error", err)
			}
			retry.Reset(statusRetry)
			continue
		}
		done = v.statuses
	}
}

// wakeStatus asks the writer to look at the current view.
func (s *Server) wakeStatus() {
	select {
	case s.statusWake <- struct{}{}:
	default:
	}
}

// writeStatusSet writes every status of st that differs from the stored
// one. A conflict (the object changed meanwhile) is returned after the
// other objects were written.
func (s *Server) writeStatusSet(st *statusSet) error {
	now := time.Now().UTC().Format(time.RFC3339)
	var firstErr error
	kinds := make([]string, 0, len(statusKinds))
	for k := range statusKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		objs, _, err := s.st.List(ctx, kind)
		cancel()
		if err != nil {
			return err
		}
		for _, o := range objs {
			if o.Ephemeral {
				continue
			}
			if err := s.writeObjectStatus(o, st, now); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

func (s *Server) writeObjectStatus(o *store.Object, st *statusSet, now string) error {
	var top struct {
		Status json.RawMessage `json:"status"`
	}
	if err := json.Unmarshal(o.Data, &top); err != nil {
		return nil // not ours to fix; the builder says it does not decode
	}
	key := o.Key()
	var want json.RawMessage
	var err error
	if o.Kind == resource.KindGateway {
		gs := st.gateways[key]
		if gs == nil {
			return nil // did not compile: leave what is there
		}
		want, err = gatewayStatus(top.Status, gs, now)
	} else {
		want, err = routeStatus(top.Status, st.routes[key], now)
	}
	if err != nil {
		return nil // a status of a shape we do not know: leave it
	}
	data, changed, err := withStatus(o.Data, want)
	if err != nil || !changed {
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	_, err = s.st.Put(ctx, []store.Write{{
		Object:        store.Object{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Data: data},
		ExpectVersion: o.ResourceVersion,
	}})
	if err == nil {
		s.log.Debug("status written back", "object", key)
	}
	return err
}
