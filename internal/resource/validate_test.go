package resource

import "testing"

const parent = `parentRefs: [{group: "", kind: Service, name: reviews}]`

func httpRoute(rules string) string { return doc(KindHTTPRoute, "{"+parent+", rules: ["+rules+"]}") }
func grpcRoute(rules string) string { return doc(KindGRPCRoute, "{"+parent+", rules: ["+rules+"]}") }

// backend is a valid backendRefs entry for rules that test something else.
const backend = `backendRefs: [{name: b, port: 80}]`

func filterRule(filters string) string { return "{filters: [" + filters + "], " + backend + "}" }

func policy(fields string) string {
	return doc(KindTrafficPolicy, "{targetRef: {kind: Service, name: reviews}, "+fields+"}")
}

func TestValidateMetadata(t *testing.T) {
	for _, c := range []badCase{
		{"name missing", "apiVersion: v1\nkind: Service\nspec: {ports: [{port: 80}]}\n", "metadata.name", "required"},
		{"name not a label", "apiVersion: v1\nkind: Service\nmetadata: {name: Reviews}\nspec: {ports: [{port: 80}]}\n", "metadata.name", `invalid name "Reviews"`},
		{"name with dot", "apiVersion: v1\nkind: Service\nmetadata: {name: a.b}\nspec: {ports: [{port: 80}]}\n", "metadata.name", "must not contain dots"},
		{"namespace", "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: Bad_NS}\nspec: {ports: [{port: 80}]}\n", "metadata.namespace", `invalid name "Bad_NS"`},
		{"label key", "apiVersion: v1\nkind: Service\nmetadata: {name: a, labels: {\"bad key\": x}}\nspec: {ports: [{port: 80}]}\n", `metadata.labels["bad key"]`, `invalid label key "bad key"`},
		{"label value", "apiVersion: weft.dev/v1alpha1\nkind: Workload\nmetadata: {name: a, labels: {app: \"a b\"}}\nspec: {address: 10.0.0.1}\n", "metadata.labels.app", `invalid label value "a b"`},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
}

func TestValidateService(t *testing.T) {
	for _, c := range []badCase{
		{"no ports", doc(KindService, "{selector: {app: a}}"), "spec.ports", "at least one port"},
		{"port 0", doc(KindService, "{ports: [{port: 0}]}"), "spec.ports[0].port", "between 1 and 65535, got 0"},
		{"port too big", doc(KindService, "{ports: [{port: 70000}]}"), "spec.ports[0].port", "got 70000"},
		{"duplicate name", doc(KindService, "{ports: [{name: http, port: 80}, {name: http, port: 81}]}"), "spec.ports[1].name", `duplicate port name "http" (also spec.ports[0])`},
		{"duplicate number", doc(KindService, "{ports: [{name: a, port: 80}, {name: b, port: 80}]}"), "spec.ports[1].port", "duplicate port 80"},
		{"unnamed among several", doc(KindService, "{ports: [{name: a, port: 80}, {port: 81}]}"), "spec.ports[1].name", "required when a Service has more than one port"},
		{"bad port name", doc(KindService, "{ports: [{name: HTTP, port: 80}]}"), "spec.ports[0].name", `invalid name "HTTP"`},
		{"appProtocol", doc(KindService, "{ports: [{port: 80, appProtocol: https}]}"), "spec.ports[0].appProtocol", `unsupported value "https": must be one of http, h2c, grpc, tcp`},
		{"protocol UDP", doc(KindService, "{ports: [{port: 53, protocol: UDP}]}"), "spec.ports[0].protocol", `unsupported protocol "UDP"`},
		{"targetPort number", doc(KindService, "{ports: [{port: 80, targetPort: 70000}]}"), "spec.ports[0].targetPort", "got 70000"},
		{"targetPort negative", doc(KindService, "{ports: [{port: 80, targetPort: -1}]}"), "spec.ports[0].targetPort", "got -1"},
		{"targetPort name", doc(KindService, "{ports: [{port: 80, targetPort: Web_Port}]}"), "spec.ports[0].targetPort", `invalid port name "Web_Port"`},
		{"targetPort name too long", doc(KindService, "{ports: [{port: 80, targetPort: a-very-long-port-name}]}"), "spec.ports[0].targetPort", "no more than 15 characters"},
		{"selector value", doc(KindService, "{selector: {app: \"a b\"}, ports: [{port: 80}]}"), "spec.selector.app", `invalid label value "a b"`},
		{"selector key", doc(KindService, "{selector: {\"-app\": a}, ports: [{port: 80}]}"), `spec.selector["-app"]`, `invalid label key "-app"`},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
	// A Service without a selector has no endpoints yet; that is allowed.
	for _, ok := range []string{
		doc(KindService, "{ports: [{port: 80}]}"),
		doc(KindService, "{ports: [{name: a, port: 80, targetPort: 8080, appProtocol: h2c}, {name: b, port: 81, targetPort: grpc-web, appProtocol: grpc}, {name: c, port: 82, appProtocol: kubernetes.io/ws}, {name: d, port: 83, appProtocol: kubernetes.io/h2c}, {name: e, port: 84, appProtocol: ws, protocol: TCP}, {name: f, port: 85, appProtocol: tcp, targetPort: \"\"}]}"),
	} {
		checkGood(t, ok)
	}
}

func TestValidateWorkload(t *testing.T) {
	for _, c := range []badCase{
		{"no address", doc(KindWorkload, "{ports: [{port: 80}]}"), "spec.address", "required"},
		{"address with port", doc(KindWorkload, "{address: \"10.0.0.1:80\"}"), "spec.address", `invalid address "10.0.0.1:80"`},
		{"address url", doc(KindWorkload, "{address: \"http://a\"}"), "spec.address", `invalid address "http://a"`},
		{"port 0", doc(KindWorkload, "{address: 10.0.0.1, ports: [{name: http, port: 0}]}"), "spec.ports[0].port", "got 0"},
		{"port too big", doc(KindWorkload, "{address: 10.0.0.1, ports: [{name: http, port: 65536}]}"), "spec.ports[0].port", "got 65536"},
		{"duplicate port name", doc(KindWorkload, "{address: 10.0.0.1, ports: [{name: http, port: 80}, {name: http, port: 81}]}"), "spec.ports[1].name", `duplicate port name "http"`},
		{"bad port name", doc(KindWorkload, "{address: 10.0.0.1, ports: [{name: Web_1, port: 80}]}"), "spec.ports[0].name", `invalid port name "Web_1"`},
		{"service account", doc(KindWorkload, "{address: 10.0.0.1, serviceAccount: Bad_SA}"), "spec.serviceAccount", `invalid name "Bad_SA"`},
		{"zone", doc(KindWorkload, "{address: 10.0.0.1, zone: \"zone a\"}"), "spec.zone", `invalid zone "zone a"`},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
	for _, addr := range []string{"10.0.0.1", "\"::1\"", "db.example.com", "DB.Example.com", "localhost"} {
		checkGood(t, doc(KindWorkload, "{address: "+addr+", ports: [{name: http, port: 80}, {port: 81}]}"))
	}
}

func TestValidateRouteRefs(t *testing.T) {
	for _, c := range []badCase{
		{"no parentRefs", doc(KindHTTPRoute, "{rules: [{"+backend+"}]}"), "spec.parentRefs", "required"},
		{"parent kind", doc(KindHTTPRoute, "{parentRefs: [{kind: Deployment, name: a}]}"), "spec.parentRefs[0].kind", `unsupported parent kind "Deployment"`},
		{"parent service group", doc(KindHTTPRoute, "{parentRefs: [{group: apps, kind: Service, name: a}]}"), "spec.parentRefs[0].group", `for kind Service, got "apps"`},
		{"parent gateway group", doc(KindHTTPRoute, "{parentRefs: [{group: \"\", kind: Gateway, name: a}]}"), "spec.parentRefs[0].group", "must be gateway.networking.k8s.io for kind Gateway"},
		{"parent name missing", doc(KindHTTPRoute, "{parentRefs: [{kind: Service}]}"), "spec.parentRefs[0].name", "required"},
		{"parent gateway name missing", doc(KindHTTPRoute, "{parentRefs: [{namespace: edge}]}"), "spec.parentRefs[0].name", "required"},
		{"parent name", doc(KindHTTPRoute, "{parentRefs: [{kind: Service, name: Reviews}]}"), "spec.parentRefs[0].name", `invalid name "Reviews"`},
		{"parent port", doc(KindHTTPRoute, "{parentRefs: [{kind: Service, name: a, port: 0}]}"), "spec.parentRefs[0].port", "got 0"},
		{"parent namespace", doc(KindHTTPRoute, "{parentRefs: [{kind: Service, name: a, namespace: NS}]}"), "spec.parentRefs[0].namespace", `invalid name "NS"`},
		{"parent duplicate", doc(KindHTTPRoute, "{parentRefs: [{kind: Service, name: a}, {group: \"\", kind: Service, name: a}]}"), "spec.parentRefs[1]", "duplicate parentRef (same as spec.parentRefs[0])"},
		{"hostname ip", doc(KindHTTPRoute, "{"+parent+", hostnames: [10.0.0.1]}"), "spec.hostnames[0]", `invalid hostname "10.0.0.1": must be a DNS name`},
		{"hostname", doc(KindHTTPRoute, "{"+parent+", hostnames: [Bad_Host]}"), "spec.hostnames[0]", `invalid hostname "Bad_Host"`},
		{"backend kind", httpRoute("{backendRefs: [{kind: Pod, name: a, port: 80}]}"), "spec.rules[0].backendRefs[0].kind", `unsupported backend kind "Pod"`},
		{"backend group", httpRoute("{backendRefs: [{group: apps, name: a, port: 80}]}"), "spec.rules[0].backendRefs[0].group", `got "apps"`},
		{"backend name", httpRoute("{backendRefs: [{port: 80}]}"), "spec.rules[0].backendRefs[0].name", "required"},
		{"backend port missing", httpRoute("{backendRefs: [{name: a, port: 80}, {name: b}]}"), "spec.rules[0].backendRefs[1].port", "required"},
		{"backend port", httpRoute("{backendRefs: [{name: a, port: 65536}]}"), "spec.rules[0].backendRefs[0].port", "got 65536"},
		{"weight negative", httpRoute("{backendRefs: [{name: a, port: 80, weight: -1}]}"), "spec.rules[0].backendRefs[0].weight", "between 0 and 1000000, got -1"},
		{"weight too big", httpRoute("{backendRefs: [{name: a, port: 80, weight: 1}, {name: b, port: 80, weight: 1000001}]}"), "spec.rules[0].backendRefs[1].weight", "got 1000001"},
		{"rule name duplicate", httpRoute("{name: a, " + backend + "}, {name: a, " + backend + "}"), "spec.rules[1].name", `duplicate rule name "a"`},
		{"session persistence", httpRoute("{sessionPersistence: {sessionName: s}, " + backend + "}"), "spec.rules[0].sessionPersistence", "not supported"},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
	// An unset parent kind means Gateway (an edge route); weight 0 is a
	// drained backend, still valid.
	checkGood(t, doc(KindHTTPRoute, "{parentRefs: [{name: edge}, {group: gateway.networking.k8s.io, kind: Gateway, name: edge2, sectionName: http}, {group: core, kind: Service, name: a, namespace: shop, port: 80}], hostnames: [\"*.example.com\"], rules: [{backendRefs: [{name: a, port: 80, weight: 0}, {group: \"\", kind: Service, name: b, namespace: other, port: 80, weight: 1000000}]}]}"))
}

func TestValidateHTTPMatches(t *testing.T) {
	m := func(match string) string { return httpRoute("{matches: [" + match + "], " + backend + "}") }
	for _, c := range []badCase{
		{"path type", m("{path: {type: Glob, value: /a}}"), "spec.rules[0].matches[0].path.type", `unsupported value "Glob": must be one of Exact, PathPrefix, RegularExpression`},
		{"prefix slash", m("{path: {type: PathPrefix, value: api}}"), "spec.rules[0].matches[0].path.value", `must start with "/" for a PathPrefix match, got "api"`},
		{"default type slash", m("{path: {value: api}}"), "spec.rules[0].matches[0].path.value", `must start with "/"`},
		{"exact slash", m("{}, {path: {type: Exact, value: x}}"), "spec.rules[0].matches[1].path.value", `for a Exact match, got "x"`},
		{"path query", m("{path: {type: Exact, value: \"/a?b=1\"}}"), "spec.rules[0].matches[0].path.value", "must not contain '?' or '#'"},
		{"path regex", m("{path: {type: RegularExpression, value: \"/a(\"}}"), "spec.rules[0].matches[0].path.value", `invalid regular expression "/a("`},
		{"pcre lookahead", m("{path: {type: RegularExpression, value: \"/(?=a)\"}}"), "spec.rules[0].matches[0].path.value", "invalid regular expression"},
		{"header regex", m("{headers: [{name: x-a, type: RegularExpression, value: \"[\"}]}"), "spec.rules[0].matches[0].headers[0].value", `invalid regular expression "["`},
		{"header type", m("{headers: [{name: x-a, type: Prefix, value: a}]}"), "spec.rules[0].matches[0].headers[0].type", `unsupported value "Prefix"`},
		{"header name", m("{headers: [{name: \"x a\", value: a}]}"), "spec.rules[0].matches[0].headers[0].name", `invalid header name "x a"`},
		{"header name missing", m("{headers: [{value: a}]}"), "spec.rules[0].matches[0].headers[0].name", "required"},
		{"header duplicate", m("{headers: [{name: X-A, value: a}, {name: x-a, value: b}]}"), "spec.rules[0].matches[0].headers[1].name", `duplicate header "x-a"`},
		{"query regex", m("{queryParams: [{name: q, type: RegularExpression, value: \"a**\"}]}"), "spec.rules[0].matches[0].queryParams[0].value", `invalid regular expression "a**"`},
		{"query type", m("{queryParams: [{name: q, type: Contains, value: a}]}"), "spec.rules[0].matches[0].queryParams[0].type", `unsupported value "Contains"`},
		{"query duplicate", m("{queryParams: [{name: q, value: a}, {name: q, value: b}]}"), "spec.rules[0].matches[0].queryParams[1].name", `duplicate query parameter "q"`},
		{"method", m("{method: FETCH}"), "spec.rules[0].matches[0].method", `unsupported value "FETCH": must be one of GET, HEAD, POST`},
		{"method lowercase", m("{method: get}"), "spec.rules[0].matches[0].method", `unsupported value "get"`},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
	checkGood(t, m("{path: {type: RegularExpression, value: \"^/v[0-9]+/.*$\"}, headers: [{name: x-a, type: RegularExpression, value: \"^a|b$\"}, {name: x-b, value: c}], queryParams: [{name: q, type: Exact, value: \"1\"}], method: PATCH}, {path: {type: Exact, value: /a}}, {path: {value: /b}}"))
}

func TestValidateHTTPFilters(t *testing.T) {
	r := func(filters string) string { return httpRoute(filterRule(filters)) }
	f0 := "spec.rules[0].filters[0]"
	for _, c := range []badCase{
		{"unknown type", r("{type: Bogus}"), f0 + ".type", `unknown filter type "Bogus": must be one of RequestHeaderModifier`},
		{"unsupported type", r("{type: ExternalAuth, externalAuth: {protocol: HTTP, backendRef: {name: auth, port: 80}}}"), f0 + ".type", `unsupported filter type "ExternalAuth"`},
		{"CORS on a mesh route", r("{type: CORS, cors: {allowOrigins: [\"*\"]}}"), f0 + ".type", `the CORS filter is applied by the gateway`},
		{"type missing", r("{requestHeaderModifier: {remove: [a]}}"), f0 + ".type", `unknown filter type ""`},
		{"request header missing", r("{type: RequestHeaderModifier}"), f0 + ".requestHeaderModifier", "required when type is RequestHeaderModifier"},
		{"response header missing", r("{type: ResponseHeaderModifier, requestHeaderModifier: {remove: [a]}}"), f0 + ".responseHeaderModifier", "required when type is ResponseHeaderModifier"},
		{"other field set", r("{type: RequestHeaderModifier, requestHeaderModifier: {remove: [a]}, urlRewrite: {hostname: a}}"), f0 + ".urlRewrite", "must not be set when type is RequestHeaderModifier"},
		{"set header name", r("{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: \"a b\", value: c}]}}"), f0 + ".requestHeaderModifier.set[0].name", `invalid header name "a b"`},
		{"add duplicate", r("{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: X-A, value: a}, {name: x-a, value: b}]}}"), f0 + ".responseHeaderModifier.add[1].name", `duplicate header "x-a"`},
		{"remove name", r("{type: RequestHeaderModifier, requestHeaderModifier: {remove: [\"\"]}}"), f0 + ".requestHeaderModifier.remove[0]", "required"},
		{"repeated filter", r("{type: RequestHeaderModifier, requestHeaderModifier: {remove: [a]}}, {type: RequestHeaderModifier, requestHeaderModifier: {remove: [b]}}"), "spec.rules[0].filters[1].type", "may appear only once"},
		{"extension group", r("{type: ExtensionRef, extensionRef: {group: example.com, kind: FaultInjection, name: f}}"), f0 + ".extensionRef.group", `must be weft.dev (the only extension weft has is a FaultInjection), got "example.com"`},
		{"extension kind", r("{type: ExtensionRef, extensionRef: {group: weft.dev, kind: RateLimit, name: f}}"), f0 + ".extensionRef.kind", `must be FaultInjection, got "RateLimit"`},
		{"extension name", r("{type: ExtensionRef, extensionRef: {group: weft.dev, kind: FaultInjection}}"), f0 + ".extensionRef.name", "required"},
		{"extension missing", r("{type: ExtensionRef}"), f0 + ".extensionRef", "required when type is ExtensionRef"},
		{"redirect missing", httpRoute("{filters: [{type: RequestRedirect}]}"), f0 + ".requestRedirect", "required when type is RequestRedirect"},
		{"redirect status", httpRoute("{filters: [{type: RequestRedirect, requestRedirect: {statusCode: 305}}]}"), f0 + ".requestRedirect.statusCode", "must be one of 301, 302, 303, 307, 308, got 305"},
		{"redirect scheme", httpRoute("{filters: [{type: RequestRedirect, requestRedirect: {scheme: ftp}}]}"), f0 + ".requestRedirect.scheme", `unsupported value "ftp"`},
		{"redirect port", httpRoute("{filters: [{type: RequestRedirect, requestRedirect: {port: 0}}]}"), f0 + ".requestRedirect.port", "got 0"},
		{"redirect hostname", httpRoute("{filters: [{type: RequestRedirect, requestRedirect: {hostname: \"*.a.com\"}}]}"), f0 + ".requestRedirect.hostname", `invalid hostname "*.a.com"`},
		{"redirect with backends", r("{type: RequestRedirect, requestRedirect: {scheme: https}}"), f0, "cannot be used together with backendRefs"},
		{"redirect and rewrite", httpRoute("{filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}, {type: URLRewrite, urlRewrite: {hostname: a}}]}"), "spec.rules[0].filters", "RequestRedirect and URLRewrite cannot be combined"},
		{"rewrite missing", r("{type: URLRewrite}"), f0 + ".urlRewrite", "required when type is URLRewrite"},
		{"rewrite hostname", r("{type: URLRewrite, urlRewrite: {hostname: Bad_Host}}"), f0 + ".urlRewrite.hostname", `invalid hostname "Bad_Host"`},
		{"prefix with exact match", httpRoute("{matches: [{path: {type: Exact, value: /a}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}], " + backend + "}"), f0 + ".urlRewrite.path.type", "ReplacePrefixMatch requires the rule's path match to be PathPrefix, got Exact"},
		{"prefix with regex match", httpRoute("{matches: [{path: {type: RegularExpression, value: /a}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}], " + backend + "}"), f0 + ".urlRewrite.path.type", "got RegularExpression"},
		{"prefix with two matches", httpRoute("{matches: [{path: {value: /a}}, {path: {value: /b}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /c}}}], " + backend + "}"), f0 + ".urlRewrite.path.type", "exactly one match, with a PathPrefix path; it has 2"},
		{"redirect prefix with exact", httpRoute("{matches: [{path: {type: Exact, value: /a}}], filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]}"), f0 + ".requestRedirect.path.type", "got Exact"},
		{"prefix value missing", r("{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch}}}"), f0 + ".urlRewrite.path.replacePrefixMatch", "required when type is ReplacePrefixMatch"},
		{"prefix value slash", r("{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: b}}}"), f0 + ".urlRewrite.path.replacePrefixMatch", `must start with "/", got "b"`},
		{"prefix with full", r("{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b, replaceFullPath: /c}}}"), f0 + ".urlRewrite.path.replaceFullPath", "must not be set when type is ReplacePrefixMatch"},
		{"full value missing", r("{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath}}}"), f0 + ".urlRewrite.path.replaceFullPath", "required when type is ReplaceFullPath"},
		{"full value slash", r("{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: x}}}"), f0 + ".urlRewrite.path.replaceFullPath", `must start with "/", got "x"`},
		{"path modifier type", r("{type: URLRewrite, urlRewrite: {path: {replaceFullPath: /x}}}"), f0 + ".urlRewrite.path.type", "required: ReplaceFullPath or ReplacePrefixMatch"},
		{"path modifier bad type", r("{type: URLRewrite, urlRewrite: {path: {type: Replace, replaceFullPath: /x}}}"), f0 + ".urlRewrite.path.type", `unsupported value "Replace"`},
		{"mirror missing", r("{type: RequestMirror}"), f0 + ".requestMirror", "required when type is RequestMirror"},
		{"mirror port", r("{type: RequestMirror, requestMirror: {backendRef: {name: shadow}}}"), f0 + ".requestMirror.backendRef.port", "required"},
		{"mirror kind", r("{type: RequestMirror, requestMirror: {backendRef: {kind: Bucket, name: shadow, port: 80}}}"), f0 + ".requestMirror.backendRef.kind", `unsupported backend kind "Bucket"`},
		{"mirror percent", r("{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}, percent: 101}}"), f0 + ".requestMirror.percent", "between 0 and 100, got 101"},
		{"mirror percent and fraction", r("{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}, percent: 5, fraction: {numerator: 1}}}"), f0 + ".requestMirror", "set percent or fraction, not both"},
		{"mirror fraction", r("{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}, fraction: {numerator: 3, denominator: 2}}}"), f0 + ".requestMirror.fraction.numerator", "between 0 and the denominator (2), got 3"},
		{"mirror denominator", r("{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}, fraction: {numerator: 0, denominator: 0}}}"), f0 + ".requestMirror.fraction.denominator", "at least 1, got 0"},
		{"backendRef filter", httpRoute("{backendRefs: [{name: a, port: 80, filters: [{type: RequestHeaderModifier}]}]}"), "spec.rules[0].backendRefs[0].filters[0].requestHeaderModifier", "required when type is RequestHeaderModifier"},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
	checkGood(t, httpRoute(
		// Redirect without backends; ReplacePrefixMatch with the default
		// (PathPrefix "/") match and with an explicit PathPrefix match.
		"{filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: a.example.com, port: 443, statusCode: 301, path: {type: ReplaceFullPath, replaceFullPath: /new}}}]}, "+
			"{filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}], "+backend+"}, "+
			"{matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: a, value: b}]}], filters: [{type: URLRewrite, urlRewrite: {hostname: b.example.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}, "+
			"{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: a}], add: [{name: x-b, value: b}], remove: [x-c]}}, "+
			"{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-a, value: a}]}}, "+
			"{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}, fraction: {numerator: 1, denominator: 1000}}}, "+
			"{type: RequestMirror, requestMirror: {backendRef: {name: shadow2, port: 80}, percent: 10}}, "+
			"{type: ExtensionRef, extensionRef: {group: weft.dev, kind: FaultInjection, name: flaky}}], "+
			"backendRefs: [{name: a, port: 80, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-backend, value: a}]}}]}]}"))
}

func TestValidateHTTPTimeoutsAndRetry(t *testing.T) {
	r := func(fields string) string { return httpRoute("{" + fields + ", " + backend + "}") }
	for _, c := range []badCase{
		{"no unit", r("timeouts: {request: \"10\"}"), "spec.rules[0].timeouts.request", `invalid duration "10"`},
		{"fraction", r("timeouts: {request: 1.5s}"), "spec.rules[0].timeouts.request", `invalid duration "1.5s": use whole numbers`},
		{"negative", r("timeouts: {backendRequest: -1s}"), "spec.rules[0].timeouts.backendRequest", `invalid duration "-1s"`},
		{"microseconds", r("timeouts: {request: 10us}"), "spec.rules[0].timeouts.request", `invalid duration "10us"`},
		{"backend longer", r("timeouts: {request: 10s, backendRequest: 20s}"), "spec.rules[0].timeouts.backendRequest", "20s is longer than timeouts.request 10s"},
		{"backend longer mixed units", r("timeouts: {request: 500ms, backendRequest: 1s}"), "spec.rules[0].timeouts.backendRequest", "1s is longer than timeouts.request 500ms"},
		{"retry code", r("retry: {codes: [503, 200]}"), "spec.rules[0].retry.codes[1]", "between 400 and 599, got 200"},
		{"retry attempts", r("retry: {attempts: -1}"), "spec.rules[0].retry.attempts", "must not be negative, got -1"},
		{"retry backoff", r("retry: {backoff: 1.5s}"), "spec.rules[0].retry.backoff", `invalid duration "1.5s"`},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
	// "0s" disables the request timeout, so any backend timeout fits.
	checkGood(t, r("timeouts: {request: 0s, backendRequest: 30s}, retry: {codes: [500, 503], attempts: 2, backoff: 100ms}"))
	checkGood(t, r("timeouts: {request: 1m30s, backendRequest: 1m30s}"))
}

func TestValidateGRPCRoute(t *testing.T) {
	m := func(match string) string { return grpcRoute("{matches: [" + match + "], " + backend + "}") }
	for _, c := range []badCase{
		{"no parentRefs", doc(KindGRPCRoute, "{rules: [{"+backend+"}]}"), "spec.parentRefs", "required"},
		{"empty method", m("{method: {type: Exact}}"), "spec.rules[0].matches[0].method", "set service, method or both"},
		{"empty regex method", m("{method: {type: RegularExpression}}"), "spec.rules[0].matches[0].method", "set service, method or both"},
		{"service", m("{method: {service: \"hello world\"}}"), "spec.rules[0].matches[0].method.service", `invalid gRPC service "hello world"`},
		{"method", m("{method: {service: a.B, method: Say.Hello}}"), "spec.rules[0].matches[0].method.method", `invalid gRPC method "Say.Hello"`},
		{"regex service", m("{method: {type: RegularExpression, service: \"a(\"}}"), "spec.rules[0].matches[0].method.service", `invalid regular expression "a("`},
		{"regex method", m("{method: {type: RegularExpression, method: \"*\"}}"), "spec.rules[0].matches[0].method.method", `invalid regular expression "*"`},
		{"method type", m("{method: {type: Prefix, service: a}}"), "spec.rules[0].matches[0].method.type", `unsupported value "Prefix"`},
		{"header regex", m("{headers: [{name: x-a, type: RegularExpression, value: \"(\"}]}"), "spec.rules[0].matches[0].headers[0].value", "invalid regular expression"},
		{"header duplicate", m("{headers: [{name: a, value: a}, {name: A, value: b}]}"), "spec.rules[0].matches[0].headers[1].name", `duplicate header "A"`},
		{"redirect filter", grpcRoute(filterRule("{type: RequestRedirect}")), "spec.rules[0].filters[0].type", `unsupported filter type "RequestRedirect": must be one of RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef`},
		{"mirror missing", grpcRoute(filterRule("{type: RequestMirror}")), "spec.rules[0].filters[0].requestMirror", "required when type is RequestMirror"},
		{"extension kind", grpcRoute(filterRule("{type: ExtensionRef, extensionRef: {group: weft.dev, kind: Other, name: a}}")), "spec.rules[0].filters[0].extensionRef.kind", `got "Other"`},
		{"backend port", grpcRoute("{backendRefs: [{name: a}]}"), "spec.rules[0].backendRefs[0].port", "required"},
		{"backend filter", grpcRoute("{backendRefs: [{name: a, port: 80, filters: [{type: URLRewrite}]}]}"), "spec.rules[0].backendRefs[0].filters[0].type", `unsupported filter type "URLRewrite"`},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
	checkGood(t, m("{method: {service: helloworld.Greeter}}, {method: {service: .pkg.Svc, method: SayHello}}, {method: {type: RegularExpression, method: \"Get.*\"}, headers: [{name: x-a, type: RegularExpression, value: \"^a\"}]}"))
}

func TestValidateTCPRoute(t *testing.T) {
	for _, c := range []badCase{
		{"no rules", doc(KindTCPRoute, "{"+parent+"}"), "spec.rules", "at least one rule with backendRefs"},
		{"no backends", doc(KindTCPRoute, "{"+parent+", rules: [{"+backend+"}, {}]}"), "spec.rules[1].backendRefs", "at least one backendRef"},
		{"no parents", doc(KindTCPRoute, "{rules: [{"+backend+"}]}"), "spec.parentRefs", "required"},
		{"weight", doc(KindTCPRoute, "{"+parent+", rules: [{backendRefs: [{name: a, port: 5432, weight: 2000000}]}]}"), "spec.rules[0].backendRefs[0].weight", "got 2000000"},
		{"port", doc(KindTCPRoute, "{"+parent+", rules: [{backendRefs: [{name: a}]}]}"), "spec.rules[0].backendRefs[0].port", "required"},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
	checkGood(t, doc(KindTCPRoute, "{"+parent+", rules: [{backendRefs: [{name: a, port: 5432, weight: 9}, {name: b, port: 5432, weight: 1}]}]}"))
	checkGood(t, "apiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\nmetadata: {name: x}\nspec: {"+parent+", rules: [{"+backend+"}]}\n")
}

func TestValidateTrafficPolicy(t *testing.T) {
	for _, c := range []badCase{
		{"target kind missing", doc(KindTrafficPolicy, "{targetRef: {name: a}}"), "spec.targetRef.kind", "required"},
		{"target kind", doc(KindTrafficPolicy, "{targetRef: {kind: Deployment, name: a}}"), "spec.targetRef.kind", `unsupported target kind "Deployment"`},
		{"target name", doc(KindTrafficPolicy, "{targetRef: {kind: Service}}"), "spec.targetRef.name", "required"},
		{"target group", doc(KindTrafficPolicy, "{targetRef: {group: apps, kind: Service, name: a}}"), "spec.targetRef.group", `got "apps"`},
		{"lb type", policy("loadBalancer: {type: Fastest}"), "spec.loadBalancer.type", `unsupported value "Fastest": must be one of RoundRobin, LeastRequest, RingHash, Random`},
		{"ring hash without hashOn", policy("loadBalancer: {type: RingHash}"), "spec.loadBalancer.hashOn", "required with type RingHash"},
		{"ring hash two sources", policy("loadBalancer: {type: RingHash, hashOn: {header: x-user, sourceIP: true}}"), "spec.loadBalancer.hashOn", "set exactly one of header, cookie, sourceIP (2 are set)"},
		{"ring hash no source", policy("loadBalancer: {type: RingHash, hashOn: {}}"), "spec.loadBalancer.hashOn", "(0 are set)"},
		{"hashOn without ring hash", policy("loadBalancer: {type: LeastRequest, hashOn: {header: x-user}}"), "spec.loadBalancer.hashOn", `only used with type RingHash (type is "LeastRequest")`},
		{"hashOn default type", policy("loadBalancer: {hashOn: {cookie: c}}"), "spec.loadBalancer.hashOn", "only used with type RingHash"},
		{"hash header", policy("loadBalancer: {type: RingHash, hashOn: {header: \"x user\"}}"), "spec.loadBalancer.hashOn.header", `invalid header name "x user"`},
		{"hash cookie", policy("loadBalancer: {type: RingHash, hashOn: {cookie: \"a;b\"}}"), "spec.loadBalancer.hashOn.cookie", `invalid cookie name "a;b"`},
		{"max connections", policy("connectionPool: {maxConnections: -1}"), "spec.connectionPool.maxConnections", "must not be negative, got -1"},
		{"max pending", policy("connectionPool: {maxPendingRequests: -2}"), "spec.connectionPool.maxPendingRequests", "got -2"},
		{"max requests", policy("connectionPool: {maxRequests: -3}"), "spec.connectionPool.maxRequests", "got -3"},
		{"timeout zero", policy("timeout: 0s"), "spec.timeout", "must be greater than 0, got 0s"},
		{"attempts", policy("retry: {attempts: 11}"), "spec.retry.attempts", "between 0 and 10, got 11"},
		{"attempts negative", policy("retry: {attempts: -1}"), "spec.retry.attempts", "got -1"},
		{"per try zero", policy("retry: {attempts: 2, perTryTimeout: 0s}"), "spec.retry.perTryTimeout", "must be greater than 0, got 0s"},
		{"per try negative", policy("retry: {attempts: 2, perTryTimeout: -1s}"), "spec.retry.perTryTimeout", "got -1s"},
		{"per try over timeout", policy("timeout: 1s, retry: {attempts: 2, perTryTimeout: 2s}"), "spec.retry.perTryTimeout", "2s is longer than spec.timeout 1s"},
		{"retryOn", policy("retry: {attempts: 2, retryOn: [5xx, timeout]}"), "spec.retry.retryOn[1]", `unsupported value "timeout": must be one of 5xx, gateway-error, reset, connect-failure, retriable-status-codes`},
		{"retryOn duplicate", policy("retry: {attempts: 2, retryOn: [reset, reset]}"), "spec.retry.retryOn[1]", `duplicate "reset"`},
		{"codes missing", policy("retry: {attempts: 2, retryOn: [retriable-status-codes]}"), "spec.retry.retriableStatusCodes", "required when retryOn contains retriable-status-codes"},
		{"codes unused", policy("retry: {attempts: 2, retryOn: [5xx], retriableStatusCodes: [503]}"), "spec.retry.retriableStatusCodes", "only used when retryOn contains retriable-status-codes"},
		{"code range", policy("retry: {attempts: 2, retryOn: [retriable-status-codes], retriableStatusCodes: [503, 600]}"), "spec.retry.retriableStatusCodes[1]", "between 100 and 599, got 600"},
		{"code low", policy("retry: {attempts: 2, retryOn: [retriable-status-codes], retriableStatusCodes: [99]}"), "spec.retry.retriableStatusCodes[0]", "got 99"},
		{"backoff order", policy("retry: {attempts: 2, backoff: {baseInterval: 2s, maxInterval: 1s}}"), "spec.retry.backoff.baseInterval", "2s is greater than spec.retry.backoff.maxInterval 1s"},
		{"backoff zero", policy("retry: {attempts: 2, backoff: {baseInterval: 0s}}"), "spec.retry.backoff.baseInterval", "must be greater than 0"},
		{"backoff max negative", policy("retry: {attempts: 2, backoff: {maxInterval: -1s}}"), "spec.retry.backoff.maxInterval", "got -1s"},
		{"budget percent", policy("retry: {attempts: 2, budget: {percent: 101}}"), "spec.retry.budget.percent", "between 0 and 100, got 101"},
		{"budget concurrency", policy("retry: {attempts: 2, budget: {minRetryConcurrency: -1}}"), "spec.retry.budget.minRetryConcurrency", "got -1"},
		{"buffered body", policy("retry: {attempts: 2, maxBufferedBody: -1}"), "spec.retry.maxBufferedBody", "got -1"},
		{"consecutive", policy("outlierDetection: {consecutive5xx: -1}"), "spec.outlierDetection.consecutive5xx", "got -1"},
		{"consecutive gateway", policy("outlierDetection: {consecutiveGatewayErrors: -1}"), "spec.outlierDetection.consecutiveGatewayErrors", "got -1"},
		{"consecutive connect", policy("outlierDetection: {consecutiveConnectErrors: -1}"), "spec.outlierDetection.consecutiveConnectErrors", "got -1"},
		{"outlier interval", policy("outlierDetection: {interval: 0s}"), "spec.outlierDetection.interval", "must be greater than 0"},
		{"ejection order", policy("outlierDetection: {baseEjectionTime: 5m, maxEjectionTime: 1m}"), "spec.outlierDetection.baseEjectionTime", "5m0s is greater than spec.outlierDetection.maxEjectionTime 1m0s"},
		{"ejection percent", policy("outlierDetection: {maxEjectionPercent: 101}"), "spec.outlierDetection.maxEjectionPercent", "between 0 and 100, got 101"},
		{"ejection percent negative", policy("outlierDetection: {maxEjectionPercent: -1}"), "spec.outlierDetection.maxEjectionPercent", "got -1"},
		{"health path", policy("healthCheck: {path: healthz}"), "spec.healthCheck.path", `must start with "/", got "healthz"`},
		{"health interval", policy("healthCheck: {path: /h, interval: -5s}"), "spec.healthCheck.interval", "got -5s"},
		{"health timeout", policy("healthCheck: {path: /h, timeout: 0s}"), "spec.healthCheck.timeout", "must be greater than 0"},
		{"healthy threshold", policy("healthCheck: {path: /h, healthyThreshold: -1}"), "spec.healthCheck.healthyThreshold", "must be at least 1, got -1"},
		{"unhealthy threshold", policy("healthCheck: {path: /h, unhealthyThreshold: -2}"), "spec.healthCheck.unhealthyThreshold", "got -2"},
		{"expected status", policy("healthCheck: {path: /h, expectedStatuses: [200, 700]}"), "spec.healthCheck.expectedStatuses[1]", "between 100 and 599, got 700"},
		{"zone percent", policy("zoneAware: {enabled: true, minHealthyPercent: 101}"), "spec.zoneAware.minHealthyPercent", "between 0 and 100, got 101"},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
	// Zero attempts means no retries; every hashOn source works alone.
	checkGood(t, policy("retry: {attempts: 0}, loadBalancer: {type: RingHash, hashOn: {sourceIP: true}}"))
	checkGood(t, policy("loadBalancer: {type: RingHash, hashOn: {cookie: session}}, zoneAware: {enabled: false, minHealthyPercent: 0}"))
	checkGood(t, policy("loadBalancer: {type: Random}, outlierDetection: {maxEjectionPercent: 0}"))
}

func TestValidateFaultInjection(t *testing.T) {
	fi := func(spec string) string { return doc(KindFaultInjection, spec) }
	for _, c := range []badCase{
		{"empty", fi("{}"), "spec", "set delay, abort or both"},
		{"delay zero", fi("{delay: {fixedDelay: 0s, percent: 10}}"), "spec.delay.fixedDelay", "must be greater than 0, got 0s"},
		{"delay missing", fi("{delay: {percent: 10}}"), "spec.delay.fixedDelay", "must be greater than 0"},
		{"delay negative", fi("{delay: {fixedDelay: -1s, percent: 10}}"), "spec.delay.fixedDelay", "got -1s"},
		{"delay percent", fi("{delay: {fixedDelay: 1s, percent: 100.5}}"), "spec.delay.percent", "between 0 and 100, got 100.5"},
		{"delay percent negative", fi("{delay: {fixedDelay: 1s, percent: -1}}"), "spec.delay.percent", "got -1"},
		{"abort http", fi("{abort: {httpStatus: 600, percent: 1}}"), "spec.abort.httpStatus", "between 200 and 599, got 600"},
		{"abort http low", fi("{abort: {httpStatus: 100, percent: 1}}"), "spec.abort.httpStatus", "got 100"},
		{"abort grpc", fi("{abort: {grpcStatus: 17, percent: 1}}"), "spec.abort.grpcStatus", "between 0 and 16, got 17"},
		{"abort grpc negative", fi("{abort: {grpcStatus: -1, percent: 1}}"), "spec.abort.grpcStatus", "got -1"},
		{"abort both", fi("{abort: {httpStatus: 503, grpcStatus: 14, percent: 1}}"), "spec.abort", "set httpStatus or grpcStatus, not both"},
		{"abort neither", fi("{abort: {percent: 1}}"), "spec.abort", "set httpStatus (for HTTP) or grpcStatus (for gRPC)"},
		{"abort percent", fi("{abort: {httpStatus: 503, percent: 150}}"), "spec.abort.percent", "got 150"},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
	checkGood(t, fi("{abort: {grpcStatus: 0, percent: 0}}"))
	checkGood(t, fi("{delay: {fixedDelay: 1ms, percent: 0.5}}"))
}
