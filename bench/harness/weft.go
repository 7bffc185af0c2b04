package harness

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"weft.dev/weft/internal/proxy/proxytest"
)

// WeftCaps is what the weft binary under test can do, read from
// `weft proxy --help`, so that the harness follows the proxy as it grows.
type WeftCaps struct {
	Inbound  bool // --inbound/--app: sidecar-to-sidecar delivery
	TLSFiles bool // --tls-cert/--tls-key/--tls-bundle: mTLS without a control plane
	// Control: --control/--token-file, the proxy gets its config and
	// identity from `weft control`.
	Control bool
	// AccessLog: --access-log, which the harness turns off (the peers log
	// nothing per request either).
	AccessLog bool
}

// DetectWeft asks the binary which flags it has.
func DetectWeft(bin string) (WeftCaps, error) {
	out, err := exec.Command(bin, "proxy", "--help").CombinedOutput()
	if err != nil {
		return WeftCaps{}, fmt.Errorf("%s proxy --help: %v\n%s", bin, err, out)
	}
	s := string(out)
	return WeftCaps{
		Inbound:   strings.Contains(s, "--inbound") && strings.Contains(s, "--app"),
		TLSFiles:  strings.Contains(s, "--tls-cert") && strings.Contains(s, "--tls-bundle"),
		Control:   strings.Contains(s, "--control") && strings.Contains(s, "--token-file"),
		AccessLog: strings.Contains(s, "--access-log "),
	}, nil
}

// WeftMode is how a weft pair is wired. It is the one switch for weft's
// topology: everything else about a weft system follows from it.
type WeftMode struct {
	// Inbound: proxy A delivers to proxy B's --inbound listener, which
	// hands requests to B's --app ports (the real sidecar-to-sidecar
	// path). Otherwise the pair is two chained --upstream ports: A's
	// Service has a Workload at B's upstream port, B's the real server.
	Inbound bool
	// MTLS: mutual TLS between the sidecars, with the throwaway CA's
	// certificates given as files (--tls-cert/--tls-key/--tls-bundle).
	MTLS bool
	// ControlPlane: the sidecars get config and certificates from
	// `weft control`, as a user would set them up (startWeftControlPair);
	// it implies Inbound and MTLS, with the control plane's CA.
	ControlPlane bool
	// NoAccessLog: run with --access-log off, like the peers, which log
	// nothing per request in this benchmark.
	NoAccessLog bool
}

func (m WeftMode) describe() string {
	var parts []string
	if m.ControlPlane {
		parts = append(parts, "`weft control` (its own data dir and CA) with the Service applied by `weft apply -f`; "+
			"B registers its Workload (`--control --token-file <data-dir>/join.token --inbound --app`), A has --upstream ports and --depends-on "+weftService)
	}
	if m.Inbound || m.ControlPlane {
		parts = append(parts, "A's --upstream port → B's --inbound (PROXY v2 header names the app port) → B's --app")
	} else {
		parts = append(parts, "A's --upstream port → B's --upstream port (chained; B's Service points at the server)")
	}
	switch {
	case m.ControlPlane:
		parts = append(parts, "mTLS 1.3 between the sidecars with SPIFFE certificates the control plane's CA issued (STRICT by default)")
	case m.MTLS:
		parts = append(parts, "mTLS 1.3 between the sidecars with SPIFFE certificates from files")
	default:
		parts = append(parts, "plaintext between the sidecars")
	}
	if m.NoAccessLog {
		parts = append(parts, "--access-log off")
	}
	return strings.Join(parts, "; ")
}

// WeftSystems lists weft's rows for what the binary can do: `weft`, the
// mTLS pair set up through the control plane (the one measured against
// the peers), `weft-mtls`, the same data path run from files (only when
// --systems names it), and `weft-plaintext`, for what TLS costs.
func WeftSystems(caps WeftCaps) []System {
	plain := WeftMode{Inbound: caps.Inbound, NoAccessLog: caps.AccessLog}
	mtls := WeftMode{Inbound: true, MTLS: true, NoAccessLog: caps.AccessLog}
	cp := WeftMode{Inbound: true, MTLS: true, ControlPlane: true, NoAccessLog: caps.AccessLog}
	w := System{
		Name: "weft", Kind: KindWeft, MTLS: true,
		About: "weft → (mTLS 1.3) → weft, GOMAXPROCS=1, set up through the control plane as a user would: " + cp.describe(),
		Start: func(e *Env) (*Deployment, error) { return StartWeftPair(e, "weft", cp) },
	}
	if !caps.Inbound || !caps.Control {
		w.Unavailable = "not available: this weft build has no --control/--inbound"
		w.Start = nil
	}
	m := System{
		Name: "weft-mtls", Kind: KindWeft, MTLS: true, Optional: true,
		About: "weft → (mTLS 1.3) → weft, GOMAXPROCS=1, run from files: " + mtls.describe(),
		Start: func(e *Env) (*Deployment, error) { return StartWeftPair(e, "weft-mtls", mtls) },
	}
	if !caps.Inbound || !caps.TLSFiles {
		m.Unavailable = "not available: this weft build has no --inbound/--tls-cert"
		m.Start = nil
	}
	sys := []System{w, m, {
		Name: "weft-plaintext", Kind: KindWeft,
		About: "weft → weft, no TLS, GOMAXPROCS=1: " + plain.describe(),
		Start: func(e *Env) (*Deployment, error) { return StartWeftPair(e, "weft-plaintext", plain) },
	}}
	return sys
}

// The service the weft pair carries: one port per protocol.
const (
	weftService  = "echo"
	weftHTTPPort = 80
	weftGRPCPort = 50051
)

func weftServiceYAML(name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s}
spec:
  selector: {app: %s}
  ports:
  - {name: http, port: %d, targetPort: http, appProtocol: http}
  - {name: grpc, port: %d, targetPort: grpc, appProtocol: grpc}
`, name, name, weftHTTPPort, weftGRPCPort)
}

func weftWorkloadYAML(name, app, httpAddr, grpcAddr, inbound string) string {
	s := fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata:
  name: %s
  labels: {app: %s}
spec:
  address: 127.0.0.1
  ports: [{name: http, port: %d}, {name: grpc, port: %d}]
  serviceAccount: %s
`, name, app, Port(httpAddr), Port(grpcAddr), ServerSA)
	if inbound != "" {
		s += "  inbound: " + inbound + "\n"
	}
	return s
}

// StartWeftPair starts proxy B, then proxy A, wired per mode.
func StartWeftPair(e *Env, name string, mode WeftMode) (*Deployment, error) {
	if mode.ControlPlane {
		return retryBind(func() (*Deployment, error) { return startWeftControlPair(e, name, mode) })
	}
	return retryBind(func() (*Deployment, error) {
		a, err := addrs(7)
		if err != nil {
			return nil, err
		}
		aHTTP, aGRPC, aAdmin, bHTTP, bGRPC, bAdmin, bInbound := a[0], a[1], a[2], a[3], a[4], a[5], a[6]
		dir := filepath.Join(e.Dir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		var aCfg, bCfg string
		argsA := []string{"proxy", "--outbound", "", "--admin", aAdmin,
			"--upstream", fmt.Sprintf("%s:%d=%s", weftService, weftHTTPPort, aHTTP),
			"--upstream", fmt.Sprintf("%s:%d=%s", weftService, weftGRPCPort, aGRPC)}
		argsB := []string{"proxy", "--outbound", "", "--admin", bAdmin}
		if mode.NoAccessLog {
			argsA = append(argsA, "--access-log", "off")
			argsB = append(argsB, "--access-log", "off")
		}
		var bListen []string
		middle := map[string]Middle{}
		if mode.Inbound {
			aCfg = weftServiceYAML(weftService) + "---\n" + weftWorkloadYAML("echo-1", weftService, e.Server[HTTP], e.Server[GRPC], bInbound)
			bCfg = "# proxy B: no services of its own; its inbound delivers to --app ports\n"
			argsB = append(argsB, "--inbound", bInbound,
				"--app", "http="+e.Server[HTTP], "--app", "grpc="+e.Server[GRPC])
			bListen = []string{bInbound}
			middle[HTTP] = Middle{Addr: bInbound, TLS: mode.MTLS, Host: ServerName, ProxyPort: Port(e.Server[HTTP])}
			middle[GRPC] = Middle{Addr: bInbound, TLS: mode.MTLS, Host: ServerName, ProxyPort: Port(e.Server[GRPC])}
		} else {
			aCfg = weftServiceYAML(weftService) + "---\n" + weftWorkloadYAML("hop-b", weftService, bHTTP, bGRPC, "")
			bCfg = weftServiceYAML("echo2") + "---\n" + weftWorkloadYAML("server", "echo2", e.Server[HTTP], e.Server[GRPC], "")
			argsB = append(argsB,
				"--upstream", fmt.Sprintf("echo2:%d=%s", weftHTTPPort, bHTTP),
				"--upstream", fmt.Sprintf("echo2:%d=%s", weftGRPCPort, bGRPC))
			bListen = []string{bHTTP, bGRPC}
			middle[HTTP] = Middle{Addr: bHTTP, Host: ServerName}
			middle[GRPC] = Middle{Addr: bGRPC, Host: ServerName}
		}
		if mode.MTLS {
			argsA = append(argsA, "--tls-cert", e.Certs.ClientCert, "--tls-key", e.Certs.ClientKey, "--tls-bundle", e.Certs.CA)
			argsB = append(argsB, "--tls-cert", e.Certs.ServerCert, "--tls-key", e.Certs.ServerKey, "--tls-bundle", e.Certs.CA)
		}
		aFile, bFile := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
		if err := os.WriteFile(aFile, []byte(aCfg), 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(bFile, []byte(bCfg), 0o644); err != nil {
			return nil, err
		}
		argsA = append([]string{e.Bins.Weft}, append(argsA, "--config", aFile)...)
		argsB = append([]string{e.Bins.Weft}, append(argsB, "--config", bFile)...)
		pb, err := startWeftSide(e, dir, name, "b", argsB, nil, bListen, bAdmin)
		if err != nil {
			return nil, err
		}
		pa, err := startWeftSide(e, dir, name, "a", argsA, nil, []string{aHTTP, aGRPC}, aAdmin)
		if err != nil {
			pb.Stop()
			return nil, err
		}
		return &Deployment{
			Entry:   map[string]string{HTTP: aHTTP, GRPC: aGRPC},
			Middle:  middle,
			Proxies: []*Proc{pa, pb},
			Notes:   []string{mode.describe()},
		}, nil
	})
}

// startWeftSide starts proxy A or B ("a", "b") of a weft pair with
// GOMAXPROCS=1 and waits until it listens on listen and admin and its
// /ready answers 200.
func startWeftSide(e *Env, dir, name, side string, argv, env, listen []string, admin string) (*Proc, error) {
	env = append([]string{"GOMAXPROCS=1"}, env...)
	if e.WeftEnv != nil {
		env = append(env, e.WeftEnv(side)...)
	}
	p, err := StartProc(dir, name+"-"+side, argv, env)
	if err != nil {
		return nil, err
	}
	if err := WaitTCP(p, 15*time.Second, append(listen, admin)...); err != nil {
		p.Stop()
		return nil, err
	}
	if err := waitReady(p, admin, 10*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// waitReady polls the admin /ready endpoint until it answers 200.
func waitReady(p *Proc, admin string, timeout time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if done, werr := p.Exited(); done {
			return fmt.Errorf("%s exited (%v):\n%s", p.Name, werr, p.Tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: /ready not 200 after %s (%v):\n%s", p.Name, timeout, err, p.Tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ThousandServices is a config of n Services, each with one Workload: the
// idle-RSS check's "proxy holding config for 1,000 services".
func ThousandServices(n int) string { return proxytest.ManyServices(n) }
