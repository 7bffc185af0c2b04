package resource

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func init() {
	apiVersions[KindGateway] = "gateway.networking.k8s.io/v1"
	apiVersions[KindTLSRoute] = "gateway.networking.k8s.io/v1alpha2"
	apiVersions[KindReferenceGrant] = "gateway.networking.k8s.io/v1beta1"
	apiVersions[KindRequestAuthentication] = APIVersion
	apiVersions[KindRateLimitPolicy] = APIVersion
}

func TestValidateGateway(t *testing.T) {
	good := doc(KindGateway, `{gatewayClassName: weft, listeners: [
  {name: http, port: 80, protocol: HTTP},
  {name: a, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: a-cert}]}},
  {name: b, port: 443, protocol: HTTPS, hostname: "*.b.example.com", tls: {mode: Terminate, certificateRefs: [{kind: Secret, group: "", name: b-cert}]},
   allowedRoutes: {namespaces: {from: All}, kinds: [{kind: HTTPRoute}]}},
  {name: pass, port: 8443, protocol: TLS, tls: {mode: Passthrough}},
  {name: db, port: 5432, protocol: TCP}]}`)
	checkGood(t, good)
	l := func(listener string) string {
		return doc(KindGateway, "{gatewayClassName: weft, listeners: ["+listener+"]}")
	}
	for _, c := range []badCase{
		{"class", doc(KindGateway, "{listeners: [{name: a, port: 80, protocol: HTTP}]}"), "spec.gatewayClassName", "required"},
		{"no listeners", doc(KindGateway, "{gatewayClassName: weft}"), "spec.listeners", "at least one"},
		{"udp", l("{name: a, port: 53, protocol: UDP}"), "spec.listeners[0].protocol", `unsupported value "UDP"`},
		{"tcp hostname", l("{name: a, port: 5432, protocol: TCP, hostname: db.example.com}"), "spec.listeners[0].hostname", "must not be set for protocol TCP"},
		{"https without tls", l("{name: a, port: 443, protocol: HTTPS}"), "spec.listeners[0].tls", "required for protocol HTTPS"},
		{"https passthrough", l("{name: a, port: 443, protocol: HTTPS, tls: {mode: Passthrough}}"), "spec.listeners[0].tls.mode", "must be Terminate"},
		{"terminate without certs", l("{name: a, port: 443, protocol: TLS, tls: {mode: Terminate}}"), "spec.listeners[0].tls.certificateRefs", "required with mode Terminate"},
		{"http with tls", l("{name: a, port: 80, protocol: HTTP, tls: {certificateRefs: [{name: c}]}}"), "spec.listeners[0].tls", "must not be set for protocol HTTP"},
		{"cert kind", l("{name: a, port: 443, protocol: HTTPS, tls: {certificateRefs: [{kind: ConfigMap, name: c}]}}"), "spec.listeners[0].tls.certificateRefs[0].kind", "must be Secret"},
		{"bad hostname", l(`{name: a, port: 80, protocol: HTTP, hostname: "a.*.com"}`), "spec.listeners[0].hostname", "wildcard"},
		{"duplicate name", l("{name: a, port: 80, protocol: HTTP}, {name: a, port: 81, protocol: HTTP}"), "spec.listeners[1].name", "duplicate listener name"},
		{"same combo", l("{name: a, port: 80, protocol: HTTP}, {name: b, port: 80, protocol: HTTP}"), "spec.listeners[1]", "must be unique"},
		{"selector", l("{name: a, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector}}}"), "spec.listeners[0].allowedRoutes.namespaces.from", "Selector is not supported"},
		{"route kind", l("{name: a, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: UDPRoute}]}}"), "spec.listeners[0].allowedRoutes.kinds[0].kind", `unsupported value "UDPRoute"`},
		{"body limit", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: x, annotations: {weft.dev/max-request-body: lots}}\nspec: {gatewayClassName: weft, listeners: [{name: a, port: 80, protocol: HTTP}]}\n",
			`metadata.annotations["weft.dev/max-request-body"]`, `invalid size "lots"`},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
}

func TestValidateTLSRouteAndGrant(t *testing.T) {
	checkGood(t, doc(KindTLSRoute, "{parentRefs: [{name: gw, sectionName: pass}], hostnames: [db.example.com], rules: [{backendRefs: [{name: db, port: 5432}]}]}"))
	checkGood(t, doc(KindReferenceGrant, "{from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: edge}], to: [{group: \"\", kind: Service}]}"))
	for _, c := range []badCase{
		{"service parent", doc(KindTLSRoute, "{parentRefs: [{kind: Service, group: \"\", name: db}], rules: [{backendRefs: [{name: db, port: 5432}]}]}"), "spec.parentRefs[0].kind", "attaches to a Gateway"},
		{"no backends", doc(KindTLSRoute, "{parentRefs: [{name: gw}], rules: [{}]}"), "spec.rules[0].backendRefs", "at least one backendRef"},
		{"grant namespace", doc(KindReferenceGrant, "{from: [{group: gateway.networking.k8s.io, kind: HTTPRoute}], to: [{group: \"\", kind: Service}]}"), "spec.from[0].namespace", "required"},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
}

// testKeyPair makes a self-signed certificate and its key, PEM encoded.
func testKeyPair(t *testing.T) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a.example.com"},
		DNSNames: []string{"a.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func TestValidateSecret(t *testing.T) {
	cert, key := testKeyPair(t)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	secret := func(body string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n" + body
	}
	objs := checkGood(t, secret("type: kubernetes.io/tls\ndata: {tls.crt: "+b64(cert)+", tls.key: "+b64(key)+"}\n"))
	if c, k := SecretTLS(objs[0].Value.(*corev1.Secret)); string(c) != cert || string(k) != key {
		t.Errorf("SecretTLS does not return the decoded data")
	}
	checkGood(t, secret("type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n"+indentLines(cert, "    ")+"  tls.key: |\n"+indentLines(key, "    ")))
	_, otherKey := testKeyPair(t)
	for _, c := range []badCase{
		{"opaque", secret("type: Opaque\nstringData: {a: b}\n"), "type", "must be kubernetes.io/tls"},
		{"no key", secret("type: kubernetes.io/tls\ndata: {tls.crt: " + b64(cert) + "}\n"), "data", "tls.key is required"},
		{"mismatch", secret("type: kubernetes.io/tls\ndata: {tls.crt: " + b64(cert) + ", tls.key: " + b64(otherKey) + "}\n"), "data", "not a usable certificate and key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkBad(t, c)
			// Secret data must never appear in an error.
			_, err := Decode("f.yaml", []byte(c.doc))
			if err != nil && (strings.Contains(err.Error(), "PRIVATE") || strings.Contains(err.Error(), b64(otherKey)[:20])) {
				t.Errorf("error quotes secret data: %v", err)
			}
		})
	}
}

func indentLines(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString(prefix + l)
		}
	}
	return b.String()
}

func TestValidateEdgePolicies(t *testing.T) {
	checkGood(t, doc(KindRequestAuthentication, `{targetRef: {kind: Gateway, name: gw}, jwtRules: [
  {issuer: https://issuer.example.com, audiences: [api], jwksURI: "https://issuer.example.com/jwks", cacheDuration: 1m,
   fromHeaders: [{name: x-token}], fromParams: [token], claimsToHeaders: [{claim: sub, header: x-user}]},
  {issuer: other, jwksFile: /etc/jwks.json},
  {issuer: inline, jwks: '{"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}'}]}`))
	checkGood(t, doc(KindRateLimitPolicy, `{targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}, limits: [
  {requests: 20, period: 1s, key: ClientAddress, maxKeys: 100}, {requests: 100, period: 1m, burst: 10, key: Header, header: x-api-key}, {requests: 5, period: 1s}]}`))
	for _, c := range []badCase{
		{"service target", doc(KindRequestAuthentication, "{targetRef: {kind: Service, name: a}, jwtRules: [{issuer: a, jwksFile: /f}]}"), "spec.targetRef.kind", "not enforced yet"},
		{"two sources", doc(KindRequestAuthentication, "{targetRef: {kind: Gateway, name: a}, jwtRules: [{issuer: a, jwksFile: /f, jwksURI: \"https://a/b\"}]}"), "spec.jwtRules[0]", "exactly one of jwks, jwksFile, jwksURI (2 are set)"},
		{"no issuer", doc(KindRequestAuthentication, "{targetRef: {kind: Gateway, name: a}, jwtRules: [{jwksFile: /f}]}"), "spec.jwtRules[0].issuer", "required"},
		{"bad jwks", doc(KindRequestAuthentication, "{targetRef: {kind: Gateway, name: a}, jwtRules: [{issuer: a, jwks: '{\"keys\": []}'}]}"), "spec.jwtRules[0].jwks", "no keys"},
		{"bad uri", doc(KindRequestAuthentication, "{targetRef: {kind: Gateway, name: a}, jwtRules: [{issuer: a, jwksURI: /local}]}"), "spec.jwtRules[0].jwksURI", "http:// or https://"},
		{"zero requests", doc(KindRateLimitPolicy, "{targetRef: {kind: Gateway, name: a}, limits: [{requests: 0, period: 1s}]}"), "spec.limits[0].requests", "at least 1"},
		{"no period", doc(KindRateLimitPolicy, "{targetRef: {kind: Gateway, name: a}, limits: [{requests: 1}]}"), "spec.limits[0].period", "greater than 0"},
		{"header key", doc(KindRateLimitPolicy, "{targetRef: {kind: Gateway, name: a}, limits: [{requests: 1, period: 1s, key: Header}]}"), "spec.limits[0].header", "required"},
		{"bad key", doc(KindRateLimitPolicy, "{targetRef: {kind: Gateway, name: a}, limits: [{requests: 1, period: 1s, key: Cookie}]}"), "spec.limits[0].key", `unsupported value "Cookie"`},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
}

func TestValidateCORS(t *testing.T) {
	route := func(filter string) string {
		return doc(KindHTTPRoute, "{parentRefs: [{name: gw}], rules: [{filters: ["+filter+"], backendRefs: [{name: a, port: 80}]}]}")
	}
	checkGood(t, route(`{type: CORS, cors: {allowOrigins: ["https://app.example.com", "https://*.example.com:8443", "*"], allowMethods: [GET, POST], allowHeaders: [authorization], exposeHeaders: [x-a], maxAge: 600, allowCredentials: true}}`))
	for _, c := range []badCase{
		{"origin", route(`{type: CORS, cors: {allowOrigins: ["app.example.com"]}}`), "spec.rules[0].filters[0].cors.allowOrigins[0]", "scheme://host"},
		{"method", route(`{type: CORS, cors: {allowMethods: [FETCH]}}`), "spec.rules[0].filters[0].cors.allowMethods[0]", `unsupported value "FETCH"`},
		{"missing", route(`{type: CORS}`), "spec.rules[0].filters[0].cors", "required when type is CORS"},
	} {
		t.Run(c.name, func(t *testing.T) { checkBad(t, c) })
	}
}
