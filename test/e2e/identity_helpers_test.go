package e2e

// Helpers for the end-to-end tests of identities: a mesh of a control
// plane and two sidecars (reviews behind its proxy, a web client proxy),
// proxies started with a given join token, and an identity of the test's
// own, got from the control plane the way a proxy gets one.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/proxy/bootstrap"
)

// identityServices is the mesh of the identity tests: reviews, selected
// by app=reviews, whose sidecars register port "http".
const identityServices = `apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: http, appProtocol: http}]
`

// idMesh is a control plane, reviews behind its sidecar (service account
// reviews), and a client sidecar (service account web).
type idMesh struct {
	cp             *ControlPlane
	server, client *Proxy
	app            *HTTPBackend
	inbound        string // the reviews sidecar's inbound listener
	clientHTTP     *http.Client
}

func startIDMesh(t *testing.T, cp *ControlPlane, extraDocs ...string) *idMesh {
	t.Helper()
	m := &idMesh{cp: cp, app: NewHTTPBackend(t, "reviews-1"), inbound: freeAddr(t)}
	cp.MustCLI("apply", "-f", writeControlFile(t, "mesh.yaml", docs(append([]string{identityServices}, extraDocs...)...)))
	m.server = StartMeshProxy(t, []*ControlPlane{cp}, MeshProxyOptions{Name: "reviews-1", Labels: "app=reviews",
		Apps: map[string]string{"http": m.app.Addr}, Args: []string{"--inbound", m.inbound}})
	m.client = StartMeshProxy(t, []*ControlPlane{cp}, MeshProxyOptions{Name: "web-1", Labels: "app=web", DependsOn: "reviews"})
	m.clientHTTP = proxyClient(t, m.client)
	waitAll(t, 10*time.Second, "the reviews endpoint", []*Proxy{m.client}, func(cfg *compile.Config) bool {
		return len(endpointAddrs(cfg, "reviews.default:9080")) == 1
	})
	return m
}

// plaintextToInbound sends a plaintext request (PROXY header naming the
// app port, then HTTP/1.1) straight to a sidecar's inbound and returns
// what came back.
func plaintextToInbound(t *testing.T, inbound, appAddr, path string) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(appAddr)
	conn, err := net.DialTimeout("tcp", inbound, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(8 * time.Second))
	fmt.Fprintf(conn, "PROXY TCP4 127.0.0.1 127.0.0.1 40000 %s\r\nGET %s HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n", port, path)
	b, _ := io.ReadAll(conn)
	return string(b)
}

// ownIdentity gets the test an SVID from the control plane with a join
// token, as a proxy bootstraps.
func ownIdentity(t *testing.T, cp *ControlPlane, tok, ns, sa string) *identity.Source {
	t.Helper()
	c, err := bootstrap.New(bootstrap.Options{Addrs: []string{cp.GRPC}, Token: tok, Namespace: ns, ServiceAccount: sa})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatalf("bootstrap as %s/%s: %v", ns, sa, err)
	}
	return c.Source()
}

// tlsCert is src's SVID as a TLS client certificate.
func tlsCert(t *testing.T, src *identity.Source) tls.Certificate {
	t.Helper()
	v, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	var chain [][]byte
	for _, c := range v.Certificates {
		chain = append(chain, c.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: v.PrivateKey}
}

// dialInbound makes a TLS connection to a sidecar's inbound with cert and
// returns the server's chain, or the error that ended the exchange. The
// server's refusal of a client certificate arrives on the first read.
func dialInbound(t *testing.T, inbound string, cert *tls.Certificate) ([]*x509.Certificate, error) {
	t.Helper()
	var served []*x509.Certificate
	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{identity.ALPNSidecar}, MinVersion: tls.VersionTLS13,
		VerifyConnection: func(cs tls.ConnectionState) error { served = cs.PeerCertificates; return nil }}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", inbound, cfg)
	if err != nil {
		return served, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	conn.Write([]byte("PROXY TCP4 127.0.0.1 127.0.0.1 1 1\r\n"))
	if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) && !strings.Contains(err.Error(), "EOF") {
		return served, err
	}
	return served, nil
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// tokenProxy is a `weft proxy --control` started with a given join token,
// which may be refused.
type tokenProxy struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	admin  string
	exited chan struct{}
}

func startTokenProxy(t *testing.T, cp *ControlPlane, tok, name string, args ...string) *tokenProxy {
	t.Helper()
	tf := filepath.Join(t.TempDir(), "join.token")
	if err := os.WriteFile(tf, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &tokenProxy{out: &syncBuffer{}, admin: freeAddr(t), exited: make(chan struct{})}
	argv := append([]string{"proxy", "--control", cp.GRPC, "--token-file", tf, "--name", name,
		"--outbound", freeAddr(t), "--admin", p.admin, "--log-level", "debug"}, args...)
	p.cmd = exec.Command(weftBin, argv...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("weft %s\n--- proxy output ---\n%s--- end ---", strings.Join(argv, " "), p.out.String())
		}
	})
	return p
}

// refusedWith waits for the proxy to exit non-zero saying want.
func (p *tokenProxy) refusedWith(t *testing.T, want string) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("proxy still running; want it to exit with %q\n%s", want, p.out.String())
	}
	if p.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(p.out.String(), want) {
		t.Fatalf("proxy exited %d; want a refusal saying %q:\n%s", p.cmd.ProcessState.ExitCode(), want, p.out.String())
	}
}
