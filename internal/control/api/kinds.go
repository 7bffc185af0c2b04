package api

import (
	"strings"

	"weft.dev/weft/internal/resource"
)

// kinds are the resource kinds the API serves, with the names people type
// for them. Kinds the resource package does not decode yet are listed so
// that the API does not change when it learns them; they simply have no
// objects until then.
var kinds = []struct {
	kind    string
	aliases []string
}{
	{resource.KindService, []string{"svc"}},
	{resource.KindWorkload, []string{"wl"}},
	{resource.KindHTTPRoute, nil},
	{resource.KindGRPCRoute, nil},
	{resource.KindTCPRoute, nil},
	{resource.KindTrafficPolicy, nil},
	{resource.KindFaultInjection, nil},
	{"Gateway", []string{"gw"}},
	{resource.KindTLSRoute, nil},
	{resource.KindReferenceGrant, nil},
	{"AuthorizationPolicy", nil},
	{"PeerAuthentication", nil},
	{"RateLimitPolicy", nil},
	{"RequestAuthentication", nil},
}

var kindByName = func() map[string]string {
	m := map[string]string{}
	for _, k := range kinds {
		low := strings.ToLower(k.kind)
		m[low] = k.kind
		m[plural(low)] = k.kind
		for _, a := range k.aliases {
			m[a] = k.kind
		}
	}
	return m
}()

func plural(s string) string {
	if strings.HasSuffix(s, "y") {
		return s[:len(s)-1] + "ies"
	}
	return s + "s"
}

// ResolveKind turns what a person typed (any case, singular or plural, or a
// short name) into the kind.
func ResolveKind(s string) (string, bool) {
	k, ok := kindByName[strings.ToLower(s)]
	return k, ok
}

// KnownKinds lists the kinds, for error messages.
func KnownKinds() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.kind
	}
	return out
}

// internalKind reports the control plane's own kinds ("_Token",
// "_ProxyStatus"): stored beside resources, never served as resources.
func internalKind(kind string) bool { return strings.HasPrefix(kind, "_") }
