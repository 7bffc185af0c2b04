package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Helpers of the gateway tests: running `weft gateway`, a test CA for
// listener certificates, TLS Secrets, and clients that dial the gateway
// for any host name.

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// StartGateway writes config to a file and runs `weft gateway` on loopback
// until the test ends; it returns when /ready answers. The listener ports
// are the ones the config's Gateway names. The result is a *Proxy so the
// proxy helpers (Stop, ConfigDump, Reload, WaitOutput) work on it.
func StartGateway(t testing.TB, config string, args ...string) *Proxy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		g := &Proxy{t: t, ConfigPath: path, Admin: freeAddr(t), Upstream: map[string]string{}, Stderr: &syncBuffer{}, exited: make(chan struct{})}
		argv := append([]string{"gateway", "--config", path, "--bind", "127.0.0.1", "--admin", g.Admin, "--access-log", "off"}, args...)
		g.cmd = exec.Command(weftBin, argv...)
		g.cmd.Stdout, g.cmd.Stderr = g.Stderr, g.Stderr
		g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := g.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", weftBin, err)
		}
		go func() { g.err = g.cmd.Wait(); close(g.exited) }()
		t.Cleanup(func() {
			g.Stop()
			if t.Failed() {
				t.Logf("weft %s\n--- gateway output ---\n%s--- end of gateway output ---", strings.Join(argv, " "), g.Stderr.String())
			}
		})
		if lastErr = g.waitReady(15 * time.Second); lastErr == nil {
			return g
		}
		g.Stop()
		if !strings.Contains(g.Stderr.String(), "address already in use") {
			lastErr = fmt.Errorf("%w\n%s", lastErr, g.Stderr.String())
			break
		}
	}
	t.Fatalf("weft gateway did not become ready: %v", lastErr)
	return nil
}

// testCA issues server certificates for the gateway's listeners.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	Pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weft e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, Pool: pool}
}

// issue returns a PEM certificate and key for the DNS names.
func (ca *testCA) issue(t testing.TB, names ...string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// tlsSecret is a kubernetes.io/tls Secret holding a certificate for names.
func (ca *testCA) tlsSecret(t testing.TB, name string, names ...string) string {
	cert, key := ca.issue(t, names...)
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: %s}
type: kubernetes.io/tls
stringData:
  tls.crt: |
%s  tls.key: |
%s`, name, indent(cert, "    "), indent(key, "    "))
}

// gatewayClient is an HTTP client that sends every request to addr,
// whatever the URL's host, trusting roots for HTTPS (with the URL's host as
// SNI). It does not follow redirects.
func gatewayClient(addr string, roots *x509.CertPool) *http.Client {
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// gatewayRoute is an HTTPRoute attached to Gateway gw (listener section,
// "" for all) with hostnames (a YAML flow list body, may be empty) and
// rules (a YAML list at column 0).
func gatewayRoute(name, gw, section, hostnames, rules string) string {
	parent := "name: " + gw
	if section != "" {
		parent += ", sectionName: " + section
	}
	hosts := ""
	if hostnames != "" {
		hosts = "\n  hostnames: [" + hostnames + "]"
	}
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %s}
spec:
  parentRefs: [{%s}]%s
  rules:
%s`, name, parent, hosts, indent(rules, "  "))
}

// getStatus returns GET on the gateway's admin as text.
func (p *Proxy) adminText(path string) string {
	p.t.Helper()
	status, body := p.adminGet(path)
	if status != http.StatusOK {
		p.t.Fatalf("GET %s: status %d: %s", path, status, body)
	}
	return body
}
