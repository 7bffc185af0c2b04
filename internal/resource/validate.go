package resource

import "sort"

// Validate checks one decoded object and returns every problem found.
func Validate(o *Object) ErrorList {
	v := &validator{src: o.Source, kind: o.Kind, name: o.Name}
	if o.Name == "" {
		v.add("metadata.name", "required")
	}
	// Kind-specific validation is filled in per kind in validate_*.go.
	if fn, ok := kindValidators[o.Kind]; ok {
		fn(v, o.Value)
	}
	return v.errs
}

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

func sortStrings(s []string) { sort.Strings(s) }
