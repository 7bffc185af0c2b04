package store

import (
	"encoding/json"
	"reflect"
	"testing"
)

var rvCases = []string{
	`{"apiVersion":"v1","kind":"Service","metadata":{"name":"a","namespace":"default"},"spec":{"x":1}}`,
	`{"metadata":{}}`,
	`{ "metadata" : { } , "spec": [1, {"metadata": {"name": "nested"}}] }`,
	`{"spec":{"metadata":{"name":"nested first"}},"metadata":{"name":"top"}}`,
	`{"a":"str \"metadata\":{ quoted","metadata":{"labels":{"k":"v}"},"name":"x"}}`,
	`{"metadata":{"name":"a","resourceVersion":"3"}}`,
	`{"kind":"NoMeta","spec":{}}`,
	`{"num":-1.5e3,"t":true,"n":null,"metadata":{"generation":2}}`,
	`{"esc\u0061ped":1,"metadata":{"name":"a"}}`,
	`{"metadata":{"a":1},"metadata":{"b":2}}`,
	`{"metadata":{"a":1,"a":2}}`,
	`{}`,
	`[]`,
	`"string"`,
	`not json`,
	``,
}

// The fast path and the decoding one agree on every valid input.
func TestSetResourceVersion(t *testing.T) {
	for _, in := range rvCases {
		checkRV(t, []byte(in), "42")
	}
	if got := SetResourceVersion([]byte(`{"metadata":{"name":"a","resourceVersion":"3"}}`), ""); string(got) != `{"metadata":{"name":"a"}}` {
		t.Errorf("strip: %s", got)
	}
	if got := SetResourceVersion([]byte(`{"metadata":{"name":"a"}}`), ""); string(got) != `{"metadata":{"name":"a"}}` {
		t.Errorf("strip without a version: %s", got)
	}
}

func checkRV(t *testing.T, in []byte, rv string) {
	t.Helper()
	fast := SetResourceVersion(in, rv)
	slow := setResourceVersionSlow(in, rv)
	var want any
	if json.Unmarshal(in, &want) != nil {
		return // not JSON: the store does not own its shape
	}
	var f, s any
	if err := json.Unmarshal(fast, &f); err != nil {
		t.Fatalf("%s: fast path made invalid JSON %s: %v", in, fast, err)
	}
	json.Unmarshal(slow, &s)
	if !reflect.DeepEqual(f, s) {
		t.Errorf("%s:\nfast %s\nslow %s", in, fast, slow)
	}
}

func FuzzSetResourceVersion(f *testing.F) {
	for _, c := range rvCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkRV(t, in, "7") })
}
