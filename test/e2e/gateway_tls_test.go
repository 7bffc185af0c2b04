package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"weft.dev/weft/internal/identity"
)

// edgeGateway is a Gateway with an HTTP listener on httpPort and two HTTPS
// listeners on httpsPort for a.example.test and b.example.test, each with
// its own certificate.
func edgeGateway(httpPort, httpsPort int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: weft
  listeners:
  - {name: http, port: %d, protocol: HTTP}
  - {name: https-a, port: %d, protocol: HTTPS, hostname: a.example.test, tls: {certificateRefs: [{name: cert-a}]}}
  - {name: https-b, port: %d, protocol: HTTPS, hostname: b.example.test, tls: {certificateRefs: [{name: cert-b}]}}
`, httpPort, httpsPort, httpsPort)
}

// TestGatewayHTTPSBySNI: two hostnames on one HTTPS port, each served with
// its own certificate (the one the client sees is checked) and routed to
// its own backend, over HTTP/1.1 and HTTP/2; plain HTTP redirects to HTTPS.
func TestGatewayHTTPSBySNI(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	a, b := NewHTTPBackend(t, "a-1"), NewHTTPBackend(t, "b-1")
	httpPort, httpsPort := freePort(t), freePort(t)
	g := StartGateway(t, docs(
		edgeGateway(httpPort, httpsPort),
		ca.tlsSecret(t, "cert-a", "a.example.test"),
		ca.tlsSecret(t, "cert-b", "b.example.test"),
		serviceWith(t, "svc-a", 80, "http", a),
		serviceWith(t, "svc-b", 80, "http", b),
		gatewayRoute("a", "edge", "https-a", "a.example.test", "- backendRefs: [{name: svc-a, port: 80}]"),
		gatewayRoute("b", "edge", "https-b", "b.example.test", "- backendRefs: [{name: svc-b, port: 80}]"),
		gatewayRoute("to-https", "edge", "http", "", fmt.Sprintf("- filters: [{type: RequestRedirect, requestRedirect: {scheme: https, port: %d, statusCode: 301}}]", httpsPort)),
	))
	httpsAddr := fmt.Sprintf("127.0.0.1:%d", httpsPort)

	for host, backend := range map[string]string{"a.example.test": "a-1", "b.example.test": "b-1"} {
		// The certificate the client sees is the listener's own.
		conn, err := tls.Dial("tcp", httpsAddr, &tls.Config{ServerName: host, RootCAs: ca.Pool, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatalf("TLS to %s: %v", host, err)
		}
		st := conn.ConnectionState()
		conn.Close()
		if leaf := st.PeerCertificates[0]; leaf.Subject.CommonName != host || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != host {
			t.Errorf("SNI %s: got certificate CN %q DNS %v", host, leaf.Subject.CommonName, leaf.DNSNames)
		}
		if st.NegotiatedProtocol != "h2" {
			t.Errorf("SNI %s: ALPN %q, want h2", host, st.NegotiatedProtocol)
		}
		c := gatewayClient(httpsAddr, ca.Pool)
		r := mustOK(t, c, "https://"+host+fmt.Sprintf(":%d", httpsPort)+"/hello")
		if r.Backend() != backend {
			t.Errorf("https://%s went to %q, want %s", host, r.Backend(), backend)
		}
		if r.Proto != "HTTP/2.0" {
			t.Errorf("https://%s: %s, want HTTP/2.0", host, r.Proto)
		}
		h1 := gatewayClient(httpsAddr, ca.Pool)
		h1.Transport.(*http.Transport).ForceAttemptHTTP2 = false
		h1.Transport.(*http.Transport).TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		if r := mustOK(t, h1, "https://"+host+"/hello"); r.Backend() != backend || r.Proto != "HTTP/1.1" {
			t.Errorf("HTTP/1.1 to %s: backend %q proto %s", host, r.Backend(), r.Proto)
		}
	}

	// A request for b on a connection made for a is misdirected.
	c := gatewayClient(httpsAddr, ca.Pool)
	req, _ := http.NewRequest("GET", "https://a.example.test/x", nil)
	req.Host = "b.example.test"
	if r, err := doReq(c, req); err != nil || r.Status != http.StatusMisdirectedRequest {
		t.Errorf("host b on a connection for a: %v %v, want 421", r, err)
	}

	// HTTP to HTTPS.
	hc := gatewayClient(fmt.Sprintf("127.0.0.1:%d", httpPort), nil)
	r := get(t, hc, fmt.Sprintf("http://a.example.test:%d/some/path?q=1", httpPort))
	want := fmt.Sprintf("https://a.example.test:%d/some/path?q=1", httpsPort)
	if r.Status != http.StatusMovedPermanently || r.Header.Get("Location") != want {
		t.Fatalf("redirect: %d Location %q, want 301 %s", r.Status, r.Header.Get("Location"), want)
	}
	if r := mustOK(t, gatewayClient(httpsAddr, ca.Pool), want); r.Backend() != "a-1" || r.Echo.Path != "/some/path" {
		t.Errorf("following the redirect: backend %q path %q", r.Backend(), r.Echo.Path)
	}

	// /config never shows the certificates' keys.
	dump := g.ConfigDump()
	if strings.Contains(dump, "PRIVATE KEY") || strings.Contains(dump, "BEGIN CERTIFICATE") || !strings.Contains(dump, `"redacted": true`) {
		t.Errorf("/config leaks certificate data or is not redacted:\n%.2000s", dump)
	}
}

// tlsEchoServer is a TLS server (its own certificate for name) that writes
// "hello from NAME\n" and then echoes.
func tlsEchoServer(t *testing.T, ca *testCA, name string) string {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, name)
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "hello from "+name+"\n")
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestGatewayTLSPassthroughAndTCP: a TLS listener in Passthrough mode sends
// each connection, by its SNI, to a backend that terminates TLS itself (the
// client sees the backend's certificate); a TCP listener relays to its
// TCPRoute.
func TestGatewayTLSPassthroughAndTCP(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dbA, dbB := tlsEchoServer(t, ca, "db-a.example.test"), tlsEchoServer(t, ca, "db-b.example.test")
	echo := NewTCPBackend(t, "echo-1", true)
	passPort, tcpPort := freePort(t), freePort(t)
	tlsRoute := func(name, host, svc string) string {
		return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: %s}
spec:
  parentRefs: [{name: edge, sectionName: pass}]
  hostnames: [%s]
  rules: [{backendRefs: [{name: %s, port: 5432}]}]
`, name, host, svc)
	}
	StartGateway(t, docs(fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: weft
  listeners:
  - {name: pass, port: %d, protocol: TLS, tls: {mode: Passthrough}}
  - {name: raw, port: %d, protocol: TCP}
`, passPort, tcpPort),
		service("db-a", 5432, "tcp", ""), workload(t, "db-a-1", dbA, "app: db-a", ""),
		service("db-b", 5432, "tcp", ""), workload(t, "db-b-1", dbB, "app: db-b", ""),
		serviceWith(t, "echo", 7000, "tcp", echo),
		tlsRoute("db-a", "db-a.example.test", "db-a"),
		tlsRoute("db-b", "db-b.example.test", "db-b"),
		`apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: raw}
spec:
  parentRefs: [{name: edge, sectionName: raw}]
  rules: [{backendRefs: [{name: echo, port: 7000}]}]
`))
	for _, host := range []string{"db-a.example.test", "db-b.example.test"} {
		c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", passPort), &tls.Config{ServerName: host, RootCAs: ca.Pool})
		if err != nil {
			t.Fatalf("passthrough to %s: %v", host, err)
		}
		if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != host {
			t.Errorf("SNI %s: the client saw %q's certificate, want the backend's own", host, cn)
		}
		br := bufio.NewReader(c)
		if line := strings.TrimSpace(readLine(t, c, br)); line != "hello from "+host {
			t.Errorf("SNI %s: banner %q", host, line)
		}
		io.WriteString(c, "ping\n")
		if line := strings.TrimSpace(readLine(t, c, br)); line != "ping" {
			t.Errorf("SNI %s: echo %q", host, line)
		}
		c.Close()
	}
	// An SNI no route names is closed.
	if c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", passPort), &tls.Config{ServerName: "other.example.test", RootCAs: ca.Pool}); err == nil {
		c.Close()
		t.Error("TLS to an SNI without a TLSRoute succeeded")
	}

	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if line := strings.TrimSpace(readLine(t, c, br)); line != "banner echo-1" {
		t.Errorf("TCP listener: banner %q", line)
	}
}

// TestGatewayRouteStatus: /status says why each route does or does not
// attach, with the Gateway API's reasons.
func TestGatewayRouteStatus(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a-1")
	port := freePort(t)
	g := StartGateway(t, docs(fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: weft
  listeners: [{name: web, port: %d, protocol: HTTP, hostname: "*.example.test"}]
`, port),
		serviceWith(t, "svc-a", 80, "http", a),
		gatewayRoute("good", "edge", "web", "a.example.test", "- backendRefs: [{name: svc-a, port: 80}]"),
		gatewayRoute("wrong-section", "edge", "websocket", "", "- backendRefs: [{name: svc-a, port: 80}]"),
		gatewayRoute("wrong-host", "edge", "", "a.example.org", "- backendRefs: [{name: svc-a, port: 80}]"),
		gatewayRoute("missing-backend", "edge", "", "m.example.test", "- backendRefs: [{name: nowhere, port: 80}]"),
		`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other-team, namespace: team}
spec:
  parentRefs: [{name: edge, namespace: default}]
  rules: [{backendRefs: [{name: svc-a, namespace: default, port: 80}]}]
`))
	var st struct {
		Status struct {
			Routes []struct {
				Kind, Namespace, Name string
				Parents               []struct {
					Conditions []struct{ Type, Status, Reason, Message string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(g.adminText("/status")), &st); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range st.Status.Routes {
		for _, p := range r.Parents {
			for _, c := range p.Conditions {
				got[r.Namespace+"/"+r.Name+" "+c.Type] = c.Status + " " + c.Reason + ": " + c.Message
			}
		}
	}
	for k, want := range map[string]string{
		"default/good Accepted":                "True Accepted",
		"default/good ResolvedRefs":            "True ResolvedRefs",
		"default/wrong-section Accepted":       `False NoMatchingParent: Gateway default/edge has no listener named "websocket"`,
		"default/wrong-host Accepted":          "False NoMatchingListenerHostname",
		"team/other-team Accepted":             "False NotAllowedByListeners: listener web does not take routes from namespace team",
		"team/other-team ResolvedRefs":         "False RefNotPermitted",
		"default/missing-backend Accepted":     "True Accepted",
		"default/missing-backend ResolvedRefs": "False BackendNotFound: Service default/nowhere not found",
	} {
		if !strings.HasPrefix(got[k], want) {
			t.Errorf("%s: got %q, want %q...", k, got[k], want)
		}
	}
	c := gatewayClient(fmt.Sprintf("127.0.0.1:%d", port), nil)
	if r := mustOK(t, c, "http://a.example.test/x"); r.Backend() != "a-1" {
		t.Errorf("attached route: backend %q", r.Backend())
	}
	if r := get(t, c, "http://a.example.org/x"); r.Status != http.StatusNotFound || r.WeftError() != "no-listener" {
		t.Errorf("host of a route that did not attach: %d %q, want 404 no-listener", r.Status, r.WeftError())
	}
	if r := get(t, c, "http://m.example.test/x"); r.Status != http.StatusServiceUnavailable {
		t.Errorf("missing backend: %d %q, want 503", r.Status, r.WeftError())
	}
}

// TestGatewayMTLSToSidecar: with an identity, the gateway calls a service
// through the endpoint's sidecar over mutual TLS, as a sidecar would; the
// app sees the gateway's SPIFFE ID.
func TestGatewayMTLSToSidecar(t *testing.T) {
	t.Parallel()
	ca, err := identity.NewCA(spiffeid.RequireTrustDomainFromString("mesh.test"))
	if err != nil {
		t.Fatal(err)
	}
	backend := NewHTTPBackend(t, "reviews-1")
	inbound := freeAddr(t)
	StartProxy(t, "", ProxyOptions{Args: append([]string{"--inbound", inbound, "--app", "main=" + backend.Addr}, writeSVID(t, ca, "default", "reviews")...)})
	_, bport, _ := net.SplitHostPort(backend.Addr)
	port := freePort(t)
	StartGateway(t, docs(fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: weft
  listeners: [{name: web, port: %d, protocol: HTTP}]
`, port), service("reviews", 80, "http", ""), fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: reviews-1, labels: {app: reviews}}
spec:
  address: 127.0.0.1
  ports: [{name: main, port: %s}]
  serviceAccount: reviews
  inbound: %s
`, bport, inbound),
		gatewayRoute("reviews", "edge", "", "", "- backendRefs: [{name: reviews, port: 80}]"),
	), writeSVID(t, ca, "edge", "gateway")...)
	r := mustOK(t, gatewayClient(fmt.Sprintf("127.0.0.1:%d", port), nil), "http://shop.example.test/reviews")
	if xfcc := r.Echo.Header.Get("X-Forwarded-Client-Cert"); !strings.Contains(xfcc, "spiffe://mesh.test/ns/edge/sa/gateway") {
		t.Errorf("the app saw X-Forwarded-Client-Cert %q, want the gateway's SPIFFE ID", xfcc)
	}
}
