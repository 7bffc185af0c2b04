package resource

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Validate checks one decoded object and returns every problem found, so a
// user fixes a file in one pass rather than one error per apply.
func Validate(o *Object) ErrorList {
	v := &validator{src: o.Source, kind: o.Kind, name: o.Name}
	if o.Name == "" {
		v.add("metadata.name", "required")
	} else {
		v.dnsLabel("metadata.name", o.Name)
	}
	if o.Namespace != "" {
		v.dnsLabel("metadata.namespace", o.Namespace)
	}
	if m, ok := o.Value.(metav1.Object); ok {
		// Labels are what Service selectors match, so a label that Kubernetes
		// would refuse must not work in universal mode either.
		v.labels("metadata.labels", m.GetLabels())
	}
	if fn, ok := kindValidators[o.Kind]; ok {
		fn(v, o.Value)
	}
	return v.errs
}

// kindValidators holds the per-kind checks; each validate_*.go file registers
// its kinds in init so adding a kind touches one file.
var kindValidators = map[string]func(*validator, any){}

type validator struct {
	src  Source
	kind string
	name string
	errs ErrorList
}

func (v *validator) add(field, reason string) {
	v.errs = append(v.errs, &FieldError{Source: v.src, Kind: v.kind, Name: v.name, Field: field, Reason: reason})
}

func (v *validator) addf(field, format string, args ...any) {
	v.add(field, fmt.Sprintf(format, args...))
}

// k8sReason joins apimachinery's messages, dropping the regex they quote:
// users need the rule and an example, not the pattern.
func k8sReason(msgs []string) string {
	for i, m := range msgs {
		if before, _, ok := strings.Cut(m, ", regex used for validation is"); ok {
			msgs[i] = before + ")"
		} else if before, _, ok := strings.Cut(m, " (regex used for validation is"); ok {
			msgs[i] = before
		}
	}
	return strings.Join(msgs, "; ")
}

// dnsLabel checks a required name that must be an RFC 1123 label, as every
// Kubernetes object name weft refers to by name is.
func (v *validator) dnsLabel(field, s string) {
	if s == "" {
		v.add(field, "required")
		return
	}
	if msgs := validation.IsDNS1123Label(s); len(msgs) > 0 {
		v.addf(field, "invalid name %q: %s", s, k8sReason(msgs))
	}
}

func (v *validator) dnsSubdomain(field, s string) {
	if msgs := validation.IsDNS1123Subdomain(s); len(msgs) > 0 {
		v.addf(field, "invalid name %q: %s", s, k8sReason(msgs))
	}
}

func (v *validator) labels(field string, m map[string]string) {
	for _, k := range sortedKeys(m) {
		if msgs := content.IsLabelKey(k); len(msgs) > 0 {
			v.addf(mapField(field, k), "invalid label key %q: %s", k, k8sReason(msgs))
		}
		if msgs := content.IsLabelValue(m[k]); len(msgs) > 0 {
			v.addf(mapField(field, k), "invalid label value %q: %s", m[k], k8sReason(msgs))
		}
	}
}

// portNumber checks a port that must be set.
func (v *validator) portNumber(field string, p int32) {
	if p < 1 || p > 65535 {
		v.addf(field, "must be a port number between 1 and 65535, got %d", p)
	}
}

func (v *validator) inRange(field string, n, lo, hi int64) {
	if n < lo || n > hi {
		v.addf(field, "must be between %d and %d, got %d", lo, hi, n)
	}
}

func (v *validator) nonNegative(field string, n int64) {
	if n < 0 {
		v.addf(field, "must not be negative, got %d", n)
	}
}

func (v *validator) oneOf(field, value string, allowed ...string) bool {
	for _, a := range allowed {
		if value == a {
			return true
		}
	}
	v.addf(field, "unsupported value %q: must be one of %s", value, strings.Join(allowed, ", "))
	return false
}

// regex checks that a pattern compiles with Go's RE2, the engine the proxy
// matches with; PCRE-only syntax such as look-ahead fails here, not at
// request time.
func (v *validator) regex(field, pattern string) {
	if _, err := regexp.Compile(pattern); err != nil {
		v.addf(field, "invalid regular expression %q: %s", pattern, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
}

// headerName checks an HTTP header (or cookie) name is an RFC 7230 token,
// which is what the Gateway API allows.
func (v *validator) headerName(field, name string) {
	if name == "" {
		v.add(field, "required")
		return
	}
	if !isToken(name) {
		v.addf(field, "invalid header name %q: must contain only letters, digits and !#$%%&'*+-.^_`|~", name)
	}
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func idx(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// mapField addresses a map entry; keys that are not plain identifiers (label
// keys with dots and slashes) are bracketed so the path stays unambiguous.
func mapField(field, key string) string {
	if isIdent(key) {
		return field + "." + key
	}
	return fmt.Sprintf("%s[%q]", field, key)
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || '0' <= c && c <= '9' && i > 0) {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortStrings(s []string) { sort.Strings(s) }
