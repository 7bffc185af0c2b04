package resource

import (
	"errors"
	"strings"
	"testing"
)

// apiVersions gives each kind the apiVersion tests write it with.
var apiVersions = map[string]string{
	KindService:             "v1",
	KindWorkload:            APIVersion,
	KindHTTPRoute:           "gateway.networking.k8s.io/v1",
	KindGRPCRoute:           "gateway.networking.k8s.io/v1",
	KindTCPRoute:            "gateway.networking.k8s.io/v1alpha2",
	KindTrafficPolicy:       APIVersion,
	KindFaultInjection:      APIVersion,
	KindAuthorizationPolicy: APIVersion,
	KindPeerAuthentication:  APIVersion,
}

// doc builds one document; spec is YAML flow style, e.g. "{ports: [...]}".
func doc(kind, spec string) string {
	return "apiVersion: " + apiVersions[kind] + "\nkind: " + kind + "\nmetadata: {name: x}\nspec: " + spec + "\n"
}

// okService leads every invalid case, so each error must say "document 2"
// and the valid first document must not be returned either.
const okService = `apiVersion: v1
kind: Service
metadata: {name: ok}
spec:
  selector: {app: ok}
  ports: [{name: http, port: 80}]
`

type badCase struct {
	name   string
	doc    string
	field  string // exact FieldError.Field
	reason string // substring of FieldError.Reason
}

// checkBad decodes okService followed by c.doc and requires that nothing is
// returned and that one error names the file, document 2, the field and the
// reason, both in its fields and in its text.
func checkBad(t *testing.T, c badCase) {
	t.Helper()
	objs, err := Decode("f.yaml", []byte(okService+"---\n"+c.doc))
	if err == nil {
		t.Fatalf("no error; want %s: %s", c.field, c.reason)
	}
	if objs != nil {
		t.Errorf("got %d objects with an error; want none", len(objs))
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, want ErrorList: %v", err, err)
	}
	for _, fe := range list {
		if fe.Field != c.field || !strings.Contains(fe.Reason, c.reason) {
			continue
		}
		text := fe.Error()
		for _, want := range []string{"f.yaml", "document 2", c.field, c.reason} {
			if !strings.Contains(text, want) {
				t.Errorf("error text %q lacks %q", text, want)
			}
		}
		if fe.Source.Document != 2 || fe.Source.File != "f.yaml" {
			t.Errorf("source = %+v, want f.yaml document 2", fe.Source)
		}
		return
	}
	t.Errorf("want %s: ...%s...; got:\n%v", c.field, c.reason, err)
}

func checkGood(t *testing.T, in string) []*Object {
	t.Helper()
	objs, err := Decode("f.yaml", []byte(in))
	if err != nil {
		t.Fatalf("unexpected error:\n%v\ninput:\n%s", err, in)
	}
	return objs
}
