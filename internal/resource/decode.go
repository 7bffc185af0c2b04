package resource

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
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
	APIVersion + " FaultInjection":       {KindFaultInjection, func() any { return &FaultInjection{} }},
	gatewayGroup + "/v1 HTTPRoute":       {KindHTTPRoute, func() any { return &gwv1.HTTPRoute{} }},
	gatewayGroup + "/v1beta1 HTTPRoute":  {KindHTTPRoute, func() any { return &gwv1.HTTPRoute{} }},
	gatewayGroup + "/v1 GRPCRoute":       {KindGRPCRoute, func() any { return &gwv1.GRPCRoute{} }},
	gatewayGroup + "/v1alpha2 GRPCRoute": {KindGRPCRoute, func() any { return &gwv1.GRPCRoute{} }},
	gatewayGroup + "/v1 TCPRoute":        {KindTCPRoute, func() any { return &gwv1.TCPRoute{} }},
	gatewayGroup + "/v1alpha2 TCPRoute":  {KindTCPRoute, func() any { return &gwv1.TCPRoute{} }},
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
	docs, err := splitDocuments(data)
	if err != nil {
		return nil, &FieldError{Source: Source{File: file, Document: 1}, Reason: err.Error()}
	}
	var objs []*Object
	var errs ErrorList
	seen := map[string]Source{}
	for i, doc := range docs {
		src := Source{File: file, Document: i + 1}
		if isBlank(doc) {
			continue
		}
		obj, ferr := decodeOne(src, doc)
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

func decodeOne(src Source, doc []byte) (*Object, ErrorList) {
	fail := func(kind, name, field, reason string) ErrorList {
		return ErrorList{{Source: src, Kind: kind, Name: name, Field: field, Reason: reason}}
	}
	var h typeHeader
	if err := yaml.Unmarshal(doc, &h); err != nil {
		return nil, fail("", "", "", "not a YAML object: "+cleanYAMLError(err))
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
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		return nil, fail(info.kind, h.Metadata.Name, "", cleanYAMLError(err))
	}
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

func splitDocuments(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
}

func isBlank(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") && t != "---" {
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
	return s
}
