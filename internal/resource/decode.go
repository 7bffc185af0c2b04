package resource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	yamlv2 "go.yaml.in/yaml/v2"
	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

const (
	gatewayGroup = "gateway.networking.k8s.io"
)

// kindInfo tells how to decode one apiVersion+kind.
type kindInfo struct {
	kind string
	new  func() any
}

// registry maps "apiVersion kind" to how it decodes. TCPRoute is accepted at
// v1alpha2 (what most users write today) and v1; both share one shape.
var registry = map[string]kindInfo{
	"v1 Service":                         {KindService, func() any { return &corev1.Service{} }},
	APIVersion + " Workload":             {KindWorkload, func() any { return &Workload{} }},
	APIVersion + " TrafficPolicy":        {KindTrafficPolicy, func() any { return &TrafficPolicy{} }},
	APIVersion + " AuthorizationPolicy":  {KindAuthorizationPolicy, func() any { return &AuthorizationPolicy{} }},
	APIVersion + " PeerAuthentication":   {KindPeerAuthentication, func() any { return &PeerAuthentication{} }},
	APIVersion + " FaultInjection":       {KindFaultInjection, func() any { return &FaultInjection{} }},
	gatewayGroup + "/v1 HTTPRoute":       {KindHTTPRoute, func() any { return &gwv1.HTTPRoute{} }},
	gatewayGroup + "/v1beta1 HTTPRoute":  {KindHTTPRoute, func() any { return &gwv1.HTTPRoute{} }},
	gatewayGroup + "/v1 GRPCRoute":       {KindGRPCRoute, func() any { return &gwv1.GRPCRoute{} }},
	gatewayGroup + "/v1alpha2 GRPCRoute": {KindGRPCRoute, func() any { return &gwv1.GRPCRoute{} }},
	gatewayGroup + "/v1 TCPRoute":        {KindTCPRoute, func() any { return &gwv1.TCPRoute{} }},
	gatewayGroup + "/v1alpha2 TCPRoute":  {KindTCPRoute, func() any { return &gwv1.TCPRoute{} }},

	// The edge (see gateway_types.go).
	"v1 Secret":                              {KindSecret, func() any { return &corev1.Secret{} }},
	gatewayGroup + "/v1 Gateway":             {KindGateway, func() any { return &gwv1.Gateway{} }},
	gatewayGroup + "/v1beta1 Gateway":        {KindGateway, func() any { return &gwv1.Gateway{} }},
	gatewayGroup + "/v1 TLSRoute":            {KindTLSRoute, func() any { return &gwv1.TLSRoute{} }},
	gatewayGroup + "/v1alpha2 TLSRoute":      {KindTLSRoute, func() any { return &gwv1.TLSRoute{} }},
	gatewayGroup + "/v1 ReferenceGrant":      {KindReferenceGrant, func() any { return &gwv1.ReferenceGrant{} }},
	gatewayGroup + "/v1beta1 ReferenceGrant": {KindReferenceGrant, func() any { return &gwv1.ReferenceGrant{} }},
	APIVersion + " RequestAuthentication":    {KindRequestAuthentication, func() any { return &RequestAuthentication{} }},
	APIVersion + " RateLimitPolicy":          {KindRateLimitPolicy, func() any { return &RateLimitPolicy{} }},
}

// typeHeader is what every document must start with.
type typeHeader struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// Decode reads a multi-document YAML (or JSON) stream and returns every
// resource in it, decoded and validated. file names the input in errors.
// Nothing is returned unless every document is valid: the caller applies all
// or nothing.
func Decode(file string, data []byte) ([]*Object, error) {
	docs, err := splitDocuments(file, data)
	if err != nil {
		return nil, ErrorList{err}
	}
	var objs []*Object
	var errs ErrorList
	seen := map[string]Source{}
	for i, doc := range docs {
		src := Source{File: file, Document: i + 1}
		if isBlank(doc.data) {
			continue
		}
		obj, ferr := decodeOne(src, doc.data, doc.line)
		if ferr != nil {
			errs = append(errs, ferr...)
			continue
		}
		if prev, dup := seen[obj.Key()]; dup {
			errs = append(errs, &FieldError{Source: src, Kind: obj.Kind, Name: obj.Name, Field: "metadata.name",
				Reason: fmt.Sprintf("duplicate: %s %s/%s is also defined at %s", obj.Kind, obj.Namespace, obj.Name, prev)})
			continue
		}
		seen[obj.Key()] = src
		objs = append(objs, obj)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return objs, nil
}

// decodeOne decodes the document that starts at line (1-based) of the file;
// line turns the YAML library's document-relative line numbers into the
// file's.
func decodeOne(src Source, doc []byte, line int) (*Object, ErrorList) {
	h, info, v, ok := decodeJSON(src, doc)
	if !ok {
		return decodeYAML(src, doc, line)
	}
	return finish(src, h, info, v)
}

// decodeJSON is the fast path of decodeOne: the document is parsed once,
// converted to JSON once, and the header, the value and the check of field
// names all read that JSON. sigs.k8s.io/yaml would parse the YAML again
// for each. Converting without the target type only differs from
// yaml.Unmarshal where a YAML number or boolean goes into a string field
// (yaml.Unmarshal makes it a string); there, as on any other error or
// problem, decodeJSON gives up (ok false) and decodeYAML decodes the
// document as before and says what is wrong.
func decodeJSON(src Source, doc []byte) (h typeHeader, info kindInfo, v any, ok bool) {
	j, tree, ok := yamlToJSON(doc)
	if !ok {
		return h, info, nil, false
	}
	if err := json.Unmarshal(j, &h); err != nil || h.APIVersion == "" || h.Kind == "" {
		return h, info, nil, false
	}
	if info, ok = registry[h.APIVersion+" "+h.Kind]; !ok {
		return h, info, nil, false
	}
	v = info.new()
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return h, info, nil, false
	}
	w := &walker{strict: true}
	if w.walk("", tree, reflect.TypeOf(v)); len(w.out) > 0 {
		return h, info, nil, false
	}
	return h, info, v, true
}

// yamlToJSON converts a document to JSON as sigs.k8s.io/yaml's
// YAMLToJSONStrict does, and also returns the value it marshalled, for the
// field-name check to walk instead of decoding the JSON again. ok is false
// on any error, and for a mapping key that is not a string (which
// YAMLToJSONStrict would spell as one); the caller then takes the slow path.
func yamlToJSON(doc []byte) (j []byte, tree any, ok bool) {
	var y any
	if err := yamlv2.UnmarshalStrict(doc, &y); err != nil {
		return nil, nil, false
	}
	if tree, ok = jsonTree(y); !ok {
		return nil, nil, false
	}
	j, err := json.Marshal(tree)
	if err != nil {
		return nil, nil, false
	}
	return j, tree, true
}

// jsonTree turns what go.yaml.in/yaml/v2 decodes into an interface value
// into what encoding/json would: mappings keyed by strings.
func jsonTree(y any) (any, bool) {
	switch y := y.(type) {
	case map[any]any:
		m := make(map[string]any, len(y))
		for k, e := range y {
			ks, ok := k.(string)
			if !ok {
				return nil, false
			}
			if m[ks], ok = jsonTree(e); !ok {
				return nil, false
			}
		}
		return m, true
	case []any:
		a := make([]any, len(y))
		for i, e := range y {
			var ok bool
			if a[i], ok = jsonTree(e); !ok {
				return nil, false
			}
		}
		return a, true
	}
	return y, true
}

// decodeYAML decodes a document with sigs.k8s.io/yaml and explains what is
// wrong with it, field by field.
func decodeYAML(src Source, doc []byte, line int) (*Object, ErrorList) {
	fail := func(kind, name, field, reason string) ErrorList {
		return ErrorList{{Source: src, Kind: kind, Name: name, Field: field, Reason: reason}}
	}
	var h typeHeader
	if err := yaml.Unmarshal(doc, &h); err != nil {
		return nil, decodeErrors(src, "", "", doc, line, reflect.TypeFor[typeHeader](), err, false)
	}
	if h.APIVersion == "" {
		return nil, fail(h.Kind, h.Metadata.Name, "apiVersion", "required")
	}
	if h.Kind == "" {
		return nil, fail("", h.Metadata.Name, "kind", "required")
	}
	info, ok := registry[h.APIVersion+" "+h.Kind]
	if !ok {
		return nil, fail(h.Kind, h.Metadata.Name, "kind", fmt.Sprintf("unsupported apiVersion %q kind %q (supported: %s)", h.APIVersion, h.Kind, supportedKinds()))
	}
	v := info.new()
	err := yaml.UnmarshalStrict(doc, v)
	// Also run when decoding succeeded: encoding/json accepts "Name" for
	// "name", which Kubernetes (and so kubectl apply) would refuse.
	if errs := decodeErrors(src, info.kind, h.Metadata.Name, doc, line, reflect.TypeOf(v), err, true); len(errs) > 0 {
		return nil, errs
	}
	return finish(src, h, info, v)
}

// finish makes the Object of a decoded document and validates it.
func finish(src Source, h typeHeader, info kindInfo, v any) (*Object, ErrorList) {
	obj := &Object{Kind: info.kind, Name: h.Metadata.Name, Namespace: h.Metadata.Namespace, Source: src, Value: v}
	if obj.Namespace == "" {
		obj.Namespace = DefaultNamespace
	}
	setNamespace(v, obj.Namespace)
	if errs := Validate(obj); len(errs) > 0 {
		return nil, errs
	}
	return obj, nil
}

// decodeErrors turns a decoding failure (err, possibly nil) into errors that
// name the field. The decoder's own message is kept when the walk cannot
// place it, and always for YAML syntax errors, which the walk over the
// converted JSON cannot see. It returns at least one error if err != nil.
func decodeErrors(src Source, kind, name string, doc []byte, line int, t reflect.Type, err error, strict bool) ErrorList {
	var errs ErrorList
	problems := explainDecode(doc, t, err, strict)
	if err != nil && strings.Contains(err.Error(), "already set in map") {
		if dups := duplicateKeyErrors(doc, line, err.Error()); dups != nil {
			problems, err = append(dups, problems...), nil
		}
	}
	for _, p := range problems {
		reason := p.reason
		if p.path == "" {
			reason = "a document must be a mapping with apiVersion, kind, metadata and spec; " + strings.TrimPrefix(reason, "must be an object (key: value), ")
		}
		errs = append(errs, &FieldError{Source: src, Kind: kind, Name: name, Field: p.path, Reason: reason})
	}
	if err != nil && (len(errs) == 0 || strings.HasPrefix(err.Error(), "error converting YAML to JSON")) {
		errs = append(errs, &FieldError{Source: src, Kind: kind, Name: name, Reason: fileLines(cleanYAMLError(err), line)})
	}
	return errs
}

// setNamespace writes the defaulted namespace back so every consumer sees it.
func setNamespace(v any, ns string) {
	type namespaced interface{ SetNamespace(string) }
	if n, ok := v.(namespaced); ok {
		n.SetNamespace(ns)
	}
}

func supportedKinds() string {
	seen := map[string]bool{}
	var out []string
	for k := range registry {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sortStrings(out)
	return strings.Join(out, ", ")
}

type document struct {
	data []byte
	line int // where the document starts in the file, 1-based
}

// splitDocuments splits a stream at "---" lines the way
// k8s.io/apimachinery's YAMLReader does (empty documents are dropped, text
// after a separator must be a comment), and also records where each document
// starts so errors can give file line numbers.
//
// A document is the lines between two separators, so each is a slice of
// data rather than a copy.
func splitDocuments(file string, data []byte) ([]document, *FieldError) {
	var docs []document
	from, start := 0, 1 // where the current document starts: offset, line
	n := 0              // index of the line at off
	for off := 0; off < len(data); n++ {
		end := len(data)
		if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
			end = off + i + 1
		}
		line := data[off:end]
		if bytes.HasPrefix(line, []byte("---")) {
			rest := bytes.TrimSpace(line[3:])
			if len(rest) != 0 && rest[0] != '#' {
				// Blame the document this separator would start.
				next := len(docs) + 1
				if off > from {
					next++
				}
				return nil, &FieldError{Source: Source{File: file, Document: next},
					Reason: fmt.Sprintf("line %d: invalid document separator %q: only a comment may follow \"---\"", n+1, strings.TrimSpace(string(line)))}
			}
			if off > from {
				docs = append(docs, document{data[from:off:off], start})
			}
			from, start = end, n+2
		}
		off = end
	}
	if len(data) > from {
		docs = append(docs, document{data[from:len(data):len(data)], start})
	}
	return docs, nil
}

var yamlLineRE = regexp.MustCompile(`\bline (\d+)\b`)

// fileLines rewrites "line N" of a document into the line of the file.
func fileLines(msg string, start int) string {
	if start <= 1 {
		return msg
	}
	return yamlLineRE.ReplaceAllStringFunc(msg, func(m string) string {
		n, err := strconv.Atoi(m[len("line "):])
		if err != nil {
			return m
		}
		return "line " + strconv.Itoa(n+start-1)
	})
}

func isBlank(doc []byte) bool {
	for len(doc) > 0 {
		line := doc
		if i := bytes.IndexByte(doc, '\n'); i >= 0 {
			line, doc = doc[:i], doc[i+1:]
		} else {
			doc = nil
		}
		t := bytes.TrimSpace(line)
		if len(t) != 0 && t[0] != '#' && string(t) != "---" {
			return false
		}
	}
	return true
}

// cleanYAMLError strips the library's prefixes so the message reads as a
// reason, e.g. `unknown field "spec.retyr"`.
func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "error converting YAML to JSON: ")
	s = strings.TrimPrefix(s, "error unmarshaling JSON: while decoding JSON: ")
	s = strings.TrimPrefix(s, "error unmarshaling JSON: ")
	s = strings.TrimPrefix(s, "json: ")
	// yaml.v2 lists strict-mode errors on indented lines under a heading.
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n  ")
	s = strings.ReplaceAll(s, "\n  ", "; ")
	return strings.ReplaceAll(s, "already set in map", "appears more than once in the same mapping")
}
