package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/resource"
)

func (s *Server) kindParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	raw := r.PathValue("kind")
	kind, ok := ResolveKind(raw)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown kind %q (known: %s)", raw, strings.Join(KnownKinds(), ", ")), nil)
	}
	return kind, ok
}

func item(o *store.Object) Item {
	return Item{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, ResourceVersion: o.ResourceVersion,
		Registered: o.Ephemeral, Object: json.RawMessage(o.Data)}
}

// list answers GET /api/v1/resources[/{kind}][?namespace=NS].
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	kind := ""
	if r.PathValue("kind") != "" {
		var ok bool
		if kind, ok = s.kindParam(w, r); !ok {
			return
		}
	}
	ns := r.URL.Query().Get("namespace")
	objs, rev, err := s.opts.Store.List(r.Context(), kind)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	resp := ListResponse{Items: []Item{}, Revision: rev}
	for _, o := range objs {
		if internalKind(o.Kind) || (ns != "" && o.Namespace != ns) {
			continue
		}
		if kind == "" && o.Kind == resource.KindSecret {
			continue // TLS keys: never in a listing of everything (weft get all)
		}
		resp.Items = append(resp.Items, item(o))
	}
	WriteJSON(w, http.StatusOK, resp)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	kind, ok := s.kindParam(w, r)
	if !ok {
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	o, err := s.opts.Store.Get(r.Context(), kind, ns, name)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, notFound(kind, ns, name), nil)
		return
	}
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, item(o))
}

func notFound(kind, ns, name string) string {
	return fmt.Sprintf("%s %q not found in namespace %q", kind, name, ns)
}

const registeredReason = "registered by a connected proxy, not applied: it goes away when the proxy disconnects"

func (s *Server) deleteOne(w http.ResponseWriter, r *http.Request) {
	kind, ok := s.kindParam(w, r)
	if !ok {
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	key := resource.Key(kind, ns, name)
	rev, err := s.opts.Store.Delete(r.Context(), []string{key})
	if errors.Is(err, store.ErrNotFound) {
		if o, gerr := s.opts.Store.Get(r.Context(), kind, ns, name); gerr == nil && o.Ephemeral {
			writeError(w, http.StatusConflict, fmt.Sprintf("%s %q in namespace %q is %s", kind, name, ns, registeredReason), nil)
			return
		}
		writeError(w, http.StatusNotFound, notFound(kind, ns, name), nil)
		return
	}
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, ApplyResponse{Revision: rev,
		Results: []Result{{Kind: kind, Namespace: ns, Name: name, Action: ActionDeleted}}})
}

// deleteFiles answers POST /api/v1/delete: every object named in the
// input that exists is deleted, in one atomic store delete; the missing
// ones are reported (404), like `kubectl delete -f`.
func (s *Server) deleteFiles(w http.ResponseWriter, r *http.Request) {
	files, err := s.readInput(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	objs, err := decodeInput(files)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for attempt := 1; attempt <= maxApplyAttempts; attempt++ {
		current, err := s.currentObjects(r.Context(), objs)
		if err != nil {
			s.storeError(w, r, err)
			return
		}
		var keys []string
		var missing []Detail
		results := make([]Result, len(objs))
		for i, o := range objs {
			results[i] = Result{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Action: ActionDeleted}
			cur := current[o.Key()]
			switch {
			case cur == nil:
				results[i].Action = ActionNotFound
				missing = append(missing, objDetail(o, "", "not found"))
			case cur.Ephemeral:
				results[i].Action = ActionNotFound
				missing = append(missing, objDetail(o, "", registeredReason))
			default:
				keys = append(keys, o.Key())
			}
		}
		rev, err := s.opts.Store.Delete(r.Context(), keys)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted by someone else meanwhile: look again
		}
		if err != nil {
			s.storeError(w, r, err)
			return
		}
		if len(missing) > 0 {
			WriteJSON(w, http.StatusNotFound, ErrorBody{
				Error:   fmt.Sprintf("%d of %d objects not found; the others were deleted", len(missing), len(objs)),
				Details: missing, Results: results})
			return
		}
		WriteJSON(w, http.StatusOK, ApplyResponse{Results: results, Revision: rev})
		return
	}
	writeError(w, http.StatusConflict, "the objects kept changing while being deleted; try again", nil)
}
