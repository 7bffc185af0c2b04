package harness

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"weft.dev/weft/internal/proxy/bootstrap"
)

// The `weft` system: a weft pair set up through `weft control` the way
// the README tells a user to, with nothing the control plane would not do
// by itself. The control plane runs beside the pair as a helper process:
// stopped with it, its CPU reported apart, never counted as a proxy.

// Names of the control-plane pair's workloads and identities.
const (
	weftControlServer = "echo-1"      // B's Workload, registered by B
	weftControlClient = "client-1"    // A's name in `weft status`
	weftProofIdentity = "bench-proof" // the service account the positive control joins as
)

// startWeftControlPair starts `weft control`, applies the Service, starts
// proxy B (which registers the Workload behind its inbound) and proxy A,
// and waits until A holds B's endpoints.
func startWeftControlPair(e *Env, name string, mode WeftMode) (d *Deployment, err error) {
	a, err := addrs(7)
	if err != nil {
		return nil, err
	}
	cpHTTP, cpGRPC, aHTTP, aGRPC, aAdmin, bAdmin, bInbound := a[0], a[1], a[2], a[3], a[4], a[5], a[6]
	dir := filepath.Join(e.Dir, name)
	// A fresh control plane each attempt: its CA and tokens are made on
	// its first start.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	home, data := filepath.Join(dir, "home"), filepath.Join(dir, "data")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	homeEnv := "WEFT_HOME=" + home
	var started []*Proc
	defer func() {
		if err != nil {
			for i := len(started) - 1; i >= 0; i-- {
				started[i].Stop()
			}
		}
	}()

	// 1. The control plane, on its own ports, data dir and CLI context.
	cp, err := StartProc(dir, name+"-control", []string{e.Bins.Weft, "control",
		"--data-dir", data, "--http", cpHTTP, "--grpc", cpGRPC}, []string{"GOMAXPROCS=1", homeEnv})
	if err != nil {
		return nil, err
	}
	started = append(started, cp)
	if err := waitHTTP(cp, "http://"+cpHTTP+"/healthz", 20*time.Second, nil); err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(data, "join.token")
	if _, err := os.Stat(tokenFile); err != nil {
		return nil, fmt.Errorf("weft control wrote no join token: %w\n%s", err, cp.Tail())
	}

	// 2. The Service, applied as a user would; no Workload: B registers
	// its own.
	svc := filepath.Join(dir, "echo.yaml")
	if err := os.WriteFile(svc, []byte(weftServiceYAML(weftService)), 0o644); err != nil {
		return nil, err
	}
	if _, err := weftCLI(e, dir, homeEnv, "apply", "-f", svc); err != nil {
		return nil, err
	}

	// 3. B beside the server, then A beside the client, both joining with
	// the join token the control plane wrote.
	join := []string{"--control", cpGRPC, "--token-file", tokenFile, "--outbound", "", "--namespace", "default"}
	argsB := append([]string{e.Bins.Weft, "proxy"}, join...)
	argsB = append(argsB, "--admin", bAdmin,
		"--name", weftControlServer, "--labels", "app="+weftService, "--service-account", weftService,
		"--inbound", bInbound, "--app", "http="+e.Server[HTTP], "--app", "grpc="+e.Server[GRPC])
	argsA := append([]string{e.Bins.Weft, "proxy"}, join...)
	argsA = append(argsA, "--admin", aAdmin,
		"--name", weftControlClient, "--labels", "app=client", "--service-account", "client",
		"--depends-on", weftService,
		"--upstream", fmt.Sprintf("%s:%d=%s", weftService, weftHTTPPort, aHTTP),
		"--upstream", fmt.Sprintf("%s:%d=%s", weftService, weftGRPCPort, aGRPC))
	if mode.NoAccessLog {
		argsA = append(argsA, "--access-log", "off")
		argsB = append(argsB, "--access-log", "off")
	}
	pb, err := startWeftSide(e, dir, name, "b", argsB, []string{homeEnv}, []string{bInbound}, bAdmin)
	if err != nil {
		return nil, err
	}
	started = append(started, pb)
	pa, err := startWeftSide(e, dir, name, "a", argsA, []string{homeEnv}, []string{aHTTP, aGRPC}, aAdmin)
	if err != nil {
		return nil, err
	}
	started = append(started, pa)
	// /ready means A has a config, not yet that B's registration reached
	// it: wait for the endpoints of both ports.
	if err := waitHTTP(pa, "http://"+aAdmin+"/clusters", 15*time.Second, hasEndpoints(weftControlServer, weftHTTPPort, weftGRPCPort)); err != nil {
		return nil, fmt.Errorf("proxy A never got B's endpoints: %w", err)
	}

	// 4. What the proofs need: the mesh's roots and a certificate of its
	// own, got as a new member would get one (a scoped join token).
	trust, td, err := weftProofTrust(e, dir, homeEnv, cpGRPC)
	if err != nil {
		return nil, err
	}
	serverID := fmt.Sprintf("spiffe://%s/ns/default/sa/%s", td, weftService)
	middle := map[string]Middle{}
	for _, proto := range Protocols {
		middle[proto] = Middle{Addr: bInbound, TLS: true, Host: weftService, ProxyPort: Port(e.Server[proto]), ServerID: serverID, Trust: trust}
	}
	return &Deployment{
		Entry:   map[string]string{HTTP: aHTTP, GRPC: aGRPC},
		Middle:  middle,
		Proxies: []*Proc{pa, pb},
		Helpers: []*Proc{cp},
		Notes: []string{mode.describe(),
			"`weft control` runs beside the pair with GOMAXPROCS=1; it is not one of the proxies: its CPU is shown apart (Run health)",
			fmt.Sprintf("B proves %s; the mTLS proofs' positive control is %s, joined with a token from `weft token create`", serverID, trust.ClientID)},
	}, nil
}

// weftCLI runs a weft CLI command against the control plane whose CLI
// context is in homeEnv's WEFT_HOME, and returns its standard output.
func weftCLI(e *Env, dir, homeEnv string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Bins.Weft, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), homeEnv)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("weft %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out), nil
}

// weftProofTrust makes a join token scoped to one identity with `weft
// token create`, bootstraps with it as a proxy does, and returns the
// mesh's trust bundle and the certificate it got, and the trust domain.
func weftProofTrust(e *Env, dir, homeEnv, cpGRPC string) (*Trust, string, error) {
	tok, err := weftCLI(e, dir, homeEnv, "token", "create", "--name", weftProofIdentity,
		"--namespace", "default", "--service-account", weftProofIdentity, "--ttl", "1h")
	if err != nil {
		return nil, "", err
	}
	c, err := bootstrap.New(bootstrap.Options{Addrs: []string{cpGRPC}, Token: strings.TrimSpace(tok),
		Namespace: "default", ServiceAccount: weftProofIdentity,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Bootstrap(ctx); err != nil {
		return nil, "", fmt.Errorf("certificate for the proofs: %w", err)
	}
	src := c.Source()
	svid, err := src.GetX509SVID()
	if err != nil {
		return nil, "", err
	}
	b, err := src.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
	if err != nil {
		return nil, "", err
	}
	t := &Trust{Roots: x509.NewCertPool(), ClientID: svid.ID.String()}
	for _, r := range b.X509Authorities() {
		t.Roots.AddCert(r)
	}
	for _, cert := range svid.Certificates {
		t.Client.Certificate = append(t.Client.Certificate, cert.Raw)
	}
	t.Client.PrivateKey = svid.PrivateKey
	return t, svid.ID.TrustDomain().Name(), nil
}

// hasEndpoints accepts a proxy's /clusters once, for each port, a
// cluster of the service holds a healthy endpoint of the named workload.
func hasEndpoints(workload string, ports ...int) func([]byte) error {
	return func(body []byte) error {
		var clusters []struct {
			Name      string `json:"name"`
			Endpoints []struct {
				Workload string `json:"workload"`
				Healthy  bool   `json:"healthy"`
			} `json:"endpoints"`
		}
		if err := json.Unmarshal(body, &clusters); err != nil {
			return err
		}
		for _, port := range ports {
			found := false
			for _, c := range clusters {
				if !strings.HasPrefix(c.Name, weftService+".") || !strings.HasSuffix(c.Name, fmt.Sprintf(":%d", port)) {
					continue
				}
				for _, ep := range c.Endpoints {
					if ep.Healthy && (ep.Workload == workload || strings.HasSuffix(ep.Workload, "/"+workload)) {
						found = true
					}
				}
			}
			if !found {
				return fmt.Errorf("no healthy endpoint of %s for %s port %d", workload, weftService, port)
			}
		}
		return nil
	}
}

// waitHTTP polls url until it answers 200 and, when check is set, check
// accepts the body; or the process exits, or the timeout passes.
func waitHTTP(p *Proc, url string, timeout time.Duration, check func([]byte) error) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			switch {
			case rerr != nil:
				err = rerr
			case resp.StatusCode != http.StatusOK:
				err = fmt.Errorf("HTTP %d", resp.StatusCode)
			case check != nil:
				err = check(body)
			}
			if err == nil {
				return nil
			}
		}
		if done, werr := p.Exited(); done {
			return fmt.Errorf("%s exited (%v):\n%s", p.Name, werr, p.Tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: GET %s: not ready after %s (%v):\n%s", p.Name, url, timeout, err, p.Tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
