package resource

import "testing"

func TestValidateAuthorizationPolicy(t *testing.T) {
	good := doc(KindAuthorizationPolicy, `{targetRef: {kind: Service, name: ratings}, action: ALLOW, rules: [
  {from: [{serviceAccounts: [reviews, shop/web], namespaces: [shop], principals: ["spiffe://td/ns/a/sa/*"]}],
   to: [{methods: [GET], paths: ["/ratings/*", "*.png", /exact], ports: [9080]}],
   when: [{header: x-tenant, values: [gold]}]}]}`)
	objs, err := Decode("f.yaml", []byte(good))
	if err != nil || len(objs) != 1 {
		t.Fatalf("valid policy refused: %v", err)
	}
	for _, c := range []badCase{
		{"bad action", doc(KindAuthorizationPolicy, "{action: AUDIT}"), "spec.action", `"AUDIT"`},
		{"bad target kind", doc(KindAuthorizationPolicy, "{targetRef: {kind: Pod, name: x}}"), "spec.targetRef.kind", "Service"},
		{"empty source", doc(KindAuthorizationPolicy, "{rules: [{from: [{}]}]}"), "spec.rules[0].from[0]", "empty source"},
		{"bad principal", doc(KindAuthorizationPolicy, "{rules: [{from: [{principals: [reviews]}]}]}"), "spec.rules[0].from[0].principals[0]", "SPIFFE ID"},
		{"bad method", doc(KindAuthorizationPolicy, "{rules: [{to: [{methods: [FETCH]}]}]}"), "spec.rules[0].to[0].methods[0]", `"FETCH"`},
		{"star in the middle", doc(KindAuthorizationPolicy, `{rules: [{to: [{paths: ["/a/*/b"]}]}]}`), "spec.rules[0].to[0].paths[0]", "start or the end"},
		{"relative path", doc(KindAuthorizationPolicy, "{rules: [{to: [{paths: [ratings]}]}]}"), "spec.rules[0].to[0].paths[0]", "must start with"},
		{"bad port", doc(KindAuthorizationPolicy, "{rules: [{to: [{ports: [0]}]}]}"), "spec.rules[0].to[0].ports[0]", ""},
		{"condition without values", doc(KindAuthorizationPolicy, "{rules: [{when: [{header: x-a}]}]}"), "spec.rules[0].when[0].values", "at least one"},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
}

func TestValidatePeerAuthentication(t *testing.T) {
	if _, err := Decode("f.yaml", []byte(doc(KindPeerAuthentication, "{mode: PERMISSIVE}"))); err != nil {
		t.Fatalf("valid PeerAuthentication refused: %v", err)
	}
	for _, c := range []badCase{
		{"no mode", doc(KindPeerAuthentication, "{}"), "spec.mode", "required"},
		{"bad mode", doc(KindPeerAuthentication, "{mode: DISABLE}"), "spec.mode", `"DISABLE"`},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
}
