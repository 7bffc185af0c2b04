package resource

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// encoding/json reports an unknown field without its path, a type error with
// a path that has no list indices, and errors from custom decoders (durations,
// int-or-string) with no path at all; it also matches field names without
// regard to case, which Kubernetes does not. So when a document fails to
// decode, or to catch a wrongly cased key, it is walked again as plain JSON
// beside the Go type, which yields the exact path of each problem.

type fieldProblem struct {
	path   string
	reason string
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// explainDecode returns the problems in doc against type t. decodeErr is what
// the decoder said, or nil; strict reports unknown fields.
func explainDecode(doc []byte, t reflect.Type, decodeErr error, strict bool) []fieldProblem {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber() // keep big integers exact for messages
	var g any
	if err := dec.Decode(&g); err != nil {
		return nil
	}
	w := &walker{strict: strict, values: decodeErr != nil}
	w.walk("", g, t)
	if ute := (*json.UnmarshalTypeError)(nil); errors.As(decodeErr, &ute) {
		if p, ok := locateTypeError(g, ute); ok && !w.has(p.path) {
			w.out = append(w.out, p)
		}
	}
	return w.out
}

type walker struct {
	strict bool // report unknown fields
	values bool // re-decode values that have their own decoder
	out    []fieldProblem
}

func (w *walker) has(path string) bool {
	for _, p := range w.out {
		if p.path == path {
			return true
		}
	}
	return false
}

func (w *walker) walk(path string, g any, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if g == nil {
		return // null decodes to the zero value of anything
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		if w.values {
			w.checkValue(path, g, t)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := g.(map[string]any)
		if !ok {
			return // a type error, reported from the decoder's error
		}
		fields := jsonFields(t)
		for _, k := range sortedKeys(m) {
			if ft, ok := fields[k]; ok {
				w.walk(joinPath(path, k), m[k], ft)
				continue
			}
			if !w.strict {
				continue
			}
			p := joinPath(path, k)
			if name, ok := foldMatch(fields, k); ok {
				w.out = append(w.out, fieldProblem{p, fmt.Sprintf("unknown field %q: field names are case-sensitive, did you mean %q?", k, name)})
				continue
			}
			reason := fmt.Sprintf("unknown field %q", k)
			if s := suggest(fields, k); s != "" {
				reason += fmt.Sprintf(", did you mean %q?", s)
			}
			w.out = append(w.out, fieldProblem{p, reason})
		}
	case reflect.Slice, reflect.Array:
		a, ok := g.([]any)
		if !ok {
			return
		}
		for i, e := range a {
			w.walk(fmt.Sprintf("%s[%d]", path, i), e, t.Elem())
		}
	case reflect.Map:
		m, ok := g.(map[string]any)
		if !ok {
			return
		}
		for _, k := range sortedKeys(m) {
			w.walk(mapField(path, k), m[k], t.Elem())
		}
	}
}

// checkValue decodes one value alone into its type, so that a failure from a
// custom decoder (an unparsable duration, say) gets the field's path.
func (w *walker) checkValue(path string, g any, t reflect.Type) {
	b, err := json.Marshal(g)
	if err != nil {
		return
	}
	if err := json.Unmarshal(b, reflect.New(t).Interface()); err != nil {
		if want, ok := valueTypes[t]; ok {
			w.out = append(w.out, fieldProblem{path, fmt.Sprintf("must be %s, got %s", want, describeValue(g))})
			return
		}
		w.out = append(w.out, fieldProblem{path, fmt.Sprintf("invalid value %s: %s", describeValue(g), strings.TrimPrefix(err.Error(), "json: "))})
	}
}

// valueTypes describes, for users, the types with their own decoders; their
// errors speak of Go types ("cannot unmarshal array into int32").
var valueTypes = map[reflect.Type]string{
	reflect.TypeFor[metav1.Duration]():    `a duration such as "500ms", "10s" or "1m30s"`,
	reflect.TypeFor[intstr.IntOrString](): "a port number or a port name",
	reflect.TypeFor[metav1.Time]():        `an RFC 3339 time such as "2024-01-02T15:04:05Z"`,
}

// jsonFieldsCache holds jsonFields by type: every document walks the same
// few types.
var jsonFieldsCache sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields maps each JSON name of a struct to its type, following
// encoding/json: embedded structs without a name are flattened, and the
// shallower field wins a name clash. The map is shared: do not modify it.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := jsonFieldsCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m, _ := jsonFieldsCache.LoadOrStore(t, collectJSONFields(t))
	return m.(map[string]reflect.Type)
}

func collectJSONFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	depth := map[string]int{}
	var collect func(t reflect.Type, d int)
	collect = func(t reflect.Type, d int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
				collect(ft, d+1)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if old, ok := depth[name]; !ok || d < old {
				out[name], depth[name] = f.Type, d
			}
		}
	}
	collect(t, 0)
	return out
}

func foldMatch(fields map[string]reflect.Type, k string) (string, bool) {
	for name := range fields {
		if strings.EqualFold(name, k) {
			return name, true
		}
	}
	return "", false
}

// suggest returns the known field closest to a misspelt one, if any is close.
func suggest(fields map[string]reflect.Type, k string) string {
	if len(k) > 64 {
		return "" // no field is that long; spare the quadratic distance
	}
	best, bestD := "", len(k)/3+1
	names := sortedKeys(fields)
	for _, name := range names {
		if d := editDistance(strings.ToLower(name), strings.ToLower(k)); d <= bestD && (best == "" || d < bestD) {
			best, bestD = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// locateTypeError finds the value the decoder choked on. The decoder's path
// ("spec.ports.port") has no list indices, so each list on the way is
// searched for an element whose value has the kind the decoder reported.
func locateTypeError(g any, e *json.UnmarshalTypeError) (fieldProblem, bool) {
	var segs []string
	if e.Field != "" {
		segs = strings.Split(e.Field, ".")
	}
	// e.Value is a kind ("string"), or for numbers "number 99999999999".
	kind, literal, _ := strings.Cut(e.Value, " ")
	path, val, ok := findValue("", g, segs, kind, literal)
	if !ok {
		return fieldProblem{}, false
	}
	return fieldProblem{path, fmt.Sprintf("must be %s, got %s", describeType(e.Type, e.Value), describeValue(val))}, true
}

func findValue(path string, g any, segs []string, kind, literal string) (string, any, bool) {
	if len(segs) == 0 && jsonKind(g) == kind && (literal == "" || describeValue(g) == literal) {
		return path, g, true
	}
	switch x := g.(type) {
	case []any:
		for i, e := range x {
			if p, v, ok := findValue(fmt.Sprintf("%s[%d]", path, i), e, segs, kind, literal); ok {
				return p, v, true
			}
		}
	case map[string]any:
		if len(segs) == 0 {
			// The bad value is inside a map (a selector's value, say).
			for _, k := range sortedKeys(x) {
				if p, v, ok := findValue(mapField(path, k), x[k], nil, kind, literal); ok {
					return p, v, true
				}
			}
			return "", nil, false
		}
		matched := false
		for _, k := range sortedKeys(x) {
			if k == segs[0] || strings.EqualFold(k, segs[0]) {
				matched = true
				if p, v, ok := findValue(joinPath(path, k), x[k], segs[1:], kind, literal); ok {
					return p, v, true
				}
			}
		}
		// The decoder names embedded structs by their Go type
		// ("spec.CommonRouteSpec.parentRefs"); they have no key of their own.
		if !matched {
			return findValue(path, g, segs[1:], kind, literal)
		}
	}
	return "", nil, false
}

func jsonKind(g any) string {
	switch g.(type) {
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return ""
}

func describeType(t reflect.Type, value string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if strings.HasPrefix(value, "number") {
			return fmt.Sprintf("a whole number that fits in %s", t.Kind())
		}
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object (key: value)"
	}
	return t.String()
}

func describeValue(g any) string {
	switch x := g.(type) {
	case string:
		return strconv.Quote(x)
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return "null"
}

func joinPath(path, k string) string {
	if path == "" && isIdent(k) {
		return k
	}
	return mapField(path, k)
}
