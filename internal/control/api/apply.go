package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/resource"
)

// inputFile is one named input: the request body (named by ?file=) or one
// part of a multipart/form-data body (named by its filename), so that
// `weft apply -f dir/` sends every file in one all-or-nothing request and
// errors still name the file.
type inputFile struct {
	name string
	data []byte
}

// httpError is an answer decided deep in a handler.
type httpError struct {
	status  int
	msg     string
	details []Detail
}

func (e *httpError) Error() string { return e.msg }

func (s *Server) readInput(w http.ResponseWriter, r *http.Request) ([]inputFile, error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBody)
	tooBig := func(err error) error {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
		}
		return &httpError{status: http.StatusBadRequest, msg: "reading request body: " + err.Error()}
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, tooBig(err)
		}
		name := r.URL.Query().Get("file")
		if name == "" {
			name = "<request>"
		}
		return []inputFile{{name, data}}, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, &httpError{status: http.StatusBadRequest, msg: "multipart body: " + err.Error()}
	}
	var files []inputFile
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, tooBig(err)
		}
		// Not p.FileName(): it keeps only the base name, and errors should
		// say "dir/b.yaml" when that is what the caller sent.
		_, params, _ := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		name := params["filename"]
		if name == "" {
			name = p.FormName()
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return nil, tooBig(err)
		}
		files = append(files, inputFile{name, data})
	}
	return files, nil
}

// decodeInput decodes and validates every file; any problem anywhere
// refuses the whole input, with every problem listed.
func decodeInput(files []inputFile) ([]*resource.Object, error) {
	var objs []*resource.Object
	var details []Detail
	seen := map[string]resource.Source{}
	for _, f := range files {
		got, err := resource.Decode(f.name, f.data)
		if err != nil {
			var list resource.ErrorList
			if !errors.As(err, &list) {
				details = append(details, Detail{File: f.name, Reason: err.Error()})
				continue
			}
			for _, fe := range list {
				details = append(details, fieldDetail(fe))
			}
			continue
		}
		for _, o := range got {
			if prev, dup := seen[o.Key()]; dup {
				details = append(details, Detail{File: o.Source.File, Document: o.Source.Document, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name,
					Field: "metadata.name", Reason: fmt.Sprintf("duplicate: %s %s/%s is also defined at %s", o.Kind, o.Namespace, o.Name, prev)})
				continue
			}
			seen[o.Key()] = o.Source
			objs = append(objs, o)
		}
	}
	if len(details) > 0 {
		what := "1 problem"
		if len(details) > 1 {
			what = fmt.Sprintf("%d problems", len(details))
		}
		return nil, &httpError{status: http.StatusBadRequest, msg: "invalid input (" + what + "); nothing was changed", details: details}
	}
	if len(objs) == 0 {
		return nil, &httpError{status: http.StatusBadRequest, msg: "no resources in the input"}
	}
	return objs, nil
}

func fieldDetail(fe *resource.FieldError) Detail {
	return Detail{File: fe.Source.File, Document: fe.Source.Document, Kind: fe.Kind, Name: fe.Name, Field: fe.Field, Reason: fe.Reason}
}

func objDetail(o *resource.Object, field, reason string) Detail {
	return Detail{File: o.Source.File, Document: o.Source.Document, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Field: field, Reason: reason}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if errors.As(err, &he) {
		writeError(w, he.status, he.msg, he.details)
		return
	}
	s.storeError(w, r, err)
}

// prepared is one object of an apply, in the form it is stored.
type prepared struct {
	obj *resource.Object
	// rv is the resourceVersion the caller sent ("" for none).
	rv string
	// doc is the stored JSON as a generic value, without resourceVersion
	// and creationTimestamp, which the server owns.
	doc map[string]any
}

func prepare(o *resource.Object) (*prepared, error) {
	p := &prepared{obj: o}
	if m, ok := o.Value.(metav1.Object); ok {
		p.rv = m.GetResourceVersion()
	}
	data, err := json.Marshal(o.Value)
	if err != nil {
		return nil, fmt.Errorf("%s: encoding: %w", o.Key(), err)
	}
	if err := json.Unmarshal(data, &p.doc); err != nil {
		return nil, fmt.Errorf("%s: encoding: %w", o.Key(), err)
	}
	// Status is written by controllers, not by apply (Kubernetes ignores
	// it on apply too); the typed structs would otherwise store an empty
	// one.
	delete(p.doc, "status")
	meta, _ := p.doc["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		p.doc["metadata"] = meta
	}
	for _, k := range []string{"resourceVersion", "creationTimestamp", "uid", "generation", "managedFields"} {
		delete(meta, k)
	}
	return p, nil
}

// storedDoc decodes a stored object the way prepare shapes new ones.
func storedDoc(o *store.Object) (doc map[string]any, created any) {
	if err := json.Unmarshal(o.Data, &doc); err != nil || doc == nil {
		return nil, nil
	}
	if meta, ok := doc["metadata"].(map[string]any); ok {
		created = meta["creationTimestamp"]
		delete(meta, "resourceVersion")
		delete(meta, "creationTimestamp")
	}
	return doc, created
}

// maxApplyAttempts bounds retries when another writer changes an object
// that the caller sent without a resourceVersion between our read and our
// write.
const maxApplyAttempts = 5

func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
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
	preps := make([]*prepared, len(objs))
	for i, o := range objs {
		if preps[i], err = prepare(o); err != nil {
			writeError(w, http.StatusBadRequest, err.Error(), []Detail{objDetail(o, "", err.Error())})
			return
		}
	}
	for attempt := 1; ; attempt++ {
		resp, retry, err := s.applyOnce(r, preps)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if !retry {
			WriteJSON(w, http.StatusOK, resp)
			return
		}
		if attempt == maxApplyAttempts {
			writeError(w, http.StatusConflict, "the objects kept changing while being applied; try again", nil)
			return
		}
	}
}

// applyOnce reads the current objects, decides each one's action and
// writes the changed ones in one conditional Put. retry is set when a
// concurrent writer changed an object the caller did not pin with a
// resourceVersion: the caller meant "whatever is there", so read again.
func (s *Server) applyOnce(r *http.Request, preps []*prepared) (resp *ApplyResponse, retry bool, err error) {
	ctx := r.Context()
	objs := make([]*resource.Object, len(preps))
	for i, p := range preps {
		objs[i] = p.obj
	}
	current, err := s.currentObjects(ctx, objs)
	if err != nil {
		return nil, false, err
	}
	now := time.Now().UTC().Format(time.RFC3339)
	var writes []store.Write
	var conflicts []Detail
	results := make([]Result, len(preps))
	written := make([]int, 0, len(preps)) // indexes into results
	byKey := map[string]*prepared{}
	for i, p := range preps {
		o := p.obj
		byKey[o.Key()] = p
		results[i] = Result{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}
		cur := current[o.Key()]
		// A registration (a proxy's own Workload) shadows an applied
		// object of the same name; its version is not the applied
		// object's, so such a write cannot be conditional.
		registered := cur != nil && cur.Ephemeral
		if p.rv != "" && !registered {
			switch {
			case cur == nil:
				conflicts = append(conflicts, objDetail(o, "metadata.resourceVersion",
					fmt.Sprintf("resourceVersion %s is stale: the object no longer exists (deleted since it was read); remove resourceVersion to create it again", p.rv)))
				continue
			case cur.ResourceVersion != p.rv:
				conflicts = append(conflicts, objDetail(o, "metadata.resourceVersion",
					fmt.Sprintf("resourceVersion %s is stale: the object was changed since it was read (now %s); get it again and re-apply your change", p.rv, cur.ResourceVersion)))
				continue
			}
		}
		doc := p.doc
		created := any(now)
		action := ActionCreated
		expect := "0"
		if cur != nil && !registered {
			var old map[string]any
			old, created = storedDoc(cur)
			if created == nil {
				created = now
			}
			// Status is the control plane's (route status written back):
			// apply neither compares nor drops it.
			status, hasStatus := old["status"]
			delete(old, "status")
			expect = cur.ResourceVersion
			if reflect.DeepEqual(old, doc) {
				results[i].Action = ActionUnchanged
				results[i].ResourceVersion = cur.ResourceVersion
				results[i].Object = json.RawMessage(cur.Data)
				continue
			}
			action = ActionConfigured
			if hasStatus {
				doc = maps.Clone(doc)
				doc["status"] = status
			}
		}
		if registered {
			expect = ""
			action = ActionConfigured
		}
		data, err := withCreationTimestamp(doc, created)
		if err != nil {
			return nil, false, fmt.Errorf("%s: encoding: %w", o.Key(), err)
		}
		results[i].Action = action
		results[i].Object = data
		writes = append(writes, store.Write{
			Object:        store.Object{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Data: data},
			ExpectVersion: expect,
		})
		written = append(written, i)
	}
	if len(conflicts) > 0 {
		return nil, false, &httpError{status: http.StatusConflict, msg: conflictMessage(conflicts), details: conflicts}
	}
	rev, err := s.opts.Store.Put(ctx, writes)
	if errors.Is(err, store.ErrConflict) {
		var ke *store.KeyError
		if errors.As(err, &ke) {
			if p := byKey[ke.Key]; p != nil && p.rv != "" {
				d := objDetail(p.obj, "metadata.resourceVersion",
					fmt.Sprintf("resourceVersion %s is stale: the object was changed since it was read; get it again and re-apply your change", p.rv))
				return nil, false, &httpError{status: http.StatusConflict, msg: conflictMessage([]Detail{d}), details: []Detail{d}}
			}
		}
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	rv := fmt.Sprint(rev)
	for _, i := range written {
		results[i].ResourceVersion = rv
		results[i].Object = store.SetResourceVersion(results[i].Object, rv)
	}
	return &ApplyResponse{Results: results, Revision: rev}, false, nil
}

func conflictMessage(ds []Detail) string {
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = fmt.Sprintf("%s %s/%s", d.Kind, d.Namespace, d.Name)
	}
	return "conflict: " + strings.Join(names, ", ") + " changed since read; nothing was changed"
}

func withCreationTimestamp(doc map[string]any, created any) ([]byte, error) {
	meta, _ := doc["metadata"].(map[string]any)
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		out[k] = v
	}
	m := make(map[string]any, len(meta)+1)
	for k, v := range meta {
		m[k] = v
	}
	m["creationTimestamp"] = created
	out["metadata"] = m
	return json.Marshal(out)
}

// currentObjects reads what the store holds for objs, by key: one Get
// each for a small input, one List per kind for a large one (an apply of
// thousands of Workloads should not make thousands of round trips).
func (s *Server) currentObjects(ctx context.Context, objs []*resource.Object) (map[string]*store.Object, error) {
	current := map[string]*store.Object{}
	if len(objs) <= 32 {
		for _, o := range objs {
			got, err := s.opts.Store.Get(ctx, o.Kind, o.Namespace, o.Name)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			current[o.Key()] = got
		}
		return current, nil
	}
	seen := map[string]bool{}
	for _, o := range objs {
		if seen[o.Kind] {
			continue
		}
		seen[o.Kind] = true
		list, _, err := s.opts.Store.List(ctx, o.Kind)
		if err != nil {
			return nil, err
		}
		for _, c := range list {
			current[c.Key()] = c
		}
	}
	return current, nil
}
