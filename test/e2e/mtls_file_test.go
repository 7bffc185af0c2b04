package e2e

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"weft.dev/weft/internal/identity"
)

// writeSVID issues an SVID for ns/sa from ca and writes --tls-* files.
func writeSVID(t *testing.T, ca *identity.CA, ns, sa string) []string {
	t.Helper()
	id, err := identity.ID(ca.TrustDomain, ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := identity.NewKey()
	csr, _ := identity.NewCSR(key, id)
	chain, err := ca.Sign(csr, id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var certPEM []byte
	for _, der := range chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyPEM, _ := identity.EncodeKey(key)
	files := map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM, "bundle.pem": ca.BundlePEM()}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"--tls-cert", filepath.Join(dir, "cert.pem"), "--tls-key", filepath.Join(dir, "key.pem"), "--tls-bundle", filepath.Join(dir, "bundle.pem")}
}

// mTLSMesh starts a server sidecar (sa "reviews") in front of an HTTP
// backend and a client sidecar (sa "web") whose Workload for the server
// claims serviceAccount claimedSA.
func mTLSMesh(t *testing.T, claimedSA string, serverArgs ...string) (client, server *Proxy, backend *HTTPBackend, inbound string) {
	t.Helper()
	ca, err := identity.NewCA(spiffeid.RequireTrustDomainFromString("mesh.test"))
	if err != nil {
		t.Fatal(err)
	}
	backend = NewHTTPBackend(t, "reviews-1")
	inbound = freeAddr(t)
	args := append([]string{"--inbound", inbound, "--app", "main=" + backend.Addr}, writeSVID(t, ca, "default", "reviews")...)
	server = StartProxy(t, "", ProxyOptions{Args: append(args, serverArgs...)})
	_, port, _ := net.SplitHostPort(backend.Addr)
	client = StartProxy(t, docs(service("reviews", 80, "http", ""), fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: reviews-1, labels: {app: reviews}}
spec:
  address: 127.0.0.1
  ports: [{name: main, port: %s}]
  serviceAccount: %s
  inbound: %s
`, port, claimedSA, inbound)), ProxyOptions{Args: writeSVID(t, ca, "default", "web")})
	return client, server, backend, inbound
}

func TestMTLSBetweenSidecars(t *testing.T) {
	t.Parallel()
	client, _, backend, inbound := mTLSMesh(t, "reviews")
	c := proxyClient(t, client)
	// A caller's own X-Forwarded-Client-Cert must not reach the app.
	r := mustOK(t, c, "http://reviews/who", "X-Forwarded-Client-Cert", "URI=spiffe://mesh.test/ns/default/sa/admin")
	if r.Backend() != "reviews-1" {
		t.Fatalf("answered by %q", r.Backend())
	}
	log := backend.Log()
	xfcc := log[len(log)-1].Header.Get("X-Forwarded-Client-Cert")
	want := "By=spiffe://mesh.test/ns/default/sa/reviews;URI=spiffe://mesh.test/ns/default/sa/web"
	if xfcc != want {
		t.Fatalf("app saw X-Forwarded-Client-Cert %q, want %q", xfcc, want)
	}

	t.Run("plaintext refused (STRICT)", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(backend.Addr)
		conn, err := net.DialTimeout("tcp", inbound, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(8 * time.Second))
		fmt.Fprintf(conn, "PROXY TCP4 127.0.0.1 127.0.0.1 40000 %s\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", port)
		if b, _ := io.ReadAll(conn); len(b) > 0 {
			t.Fatalf("plaintext got an answer: %q", b)
		}
	})
	t.Run("client without certificate refused", func(t *testing.T) {
		// In TLS 1.3 the client's handshake may return before the server's
		// verdict; the refusal then arrives as an alert on the first read.
		conn, err := tls.Dial("tcp", inbound, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{identity.ALPNSidecar}})
		if err == nil {
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			conn.Write([]byte("PROXY TCP4 127.0.0.1 127.0.0.1 1 1\r\n"))
			if _, err := conn.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("read after handshake without a client certificate: %v; want a certificate-required alert", err)
			}
		}
	})
}

// TestMTLSWrongServerIdentity: the caller checks that the sidecar it
// reached proves the workload's service account.
func TestMTLSWrongServerIdentity(t *testing.T) {
	t.Parallel()
	client, _, backend, _ := mTLSMesh(t, "ratings")
	r := get(t, proxyClient(t, client), "http://reviews/")
	if r.Status == http.StatusOK {
		t.Fatalf("request succeeded against a sidecar with the wrong identity: %s", r)
	}
	if n := len(backend.Log()); n != 0 {
		t.Fatalf("the app received %d requests through an unverified sidecar", n)
	}
}

// TestMTLSPermissive: a PERMISSIVE inbound takes both mTLS and plaintext.
func TestMTLSPermissive(t *testing.T) {
	t.Parallel()
	client, _, backend, inbound := mTLSMesh(t, "reviews", "--inbound-mtls", "permissive")
	mustOK(t, proxyClient(t, client), "http://reviews/")
	_, port, _ := net.SplitHostPort(backend.Addr)
	conn, err := net.DialTimeout("tcp", inbound, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "PROXY TCP4 127.0.0.1 127.0.0.1 40000 %s\r\nGET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", port)
	b, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(b), "HTTP/1.1 200") {
		t.Fatalf("plaintext on a PERMISSIVE inbound: %q", b)
	}
	log := backend.Log()
	if xfcc := log[len(log)-1].Header.Get("X-Forwarded-Client-Cert"); xfcc != "" {
		t.Fatalf("plaintext request carried a client identity %q", xfcc)
	}
}
