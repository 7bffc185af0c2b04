package harness

import (
	"bytes"
	"embed"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// Kinds of system, which decide the ratio columns of the report.
const (
	KindDirect = "direct" // no proxy: the reference for "added latency"
	KindFloor  = "floor"  // two plain TCP relays
	KindWeft   = "weft"
	KindPeer   = "peer" // another proxy doing weft's job
)

// System is one way of carrying the workloads from client to server.
type System struct {
	Name  string
	Kind  string
	About string
	// MTLS: the middle hop must be mutual TLS 1.3; proven before measuring.
	MTLS bool
	// Unavailable, when set, says why the system cannot run yet; it is
	// listed in the report but not measured.
	Unavailable string
	// Optional systems run only when --systems names them: they are not
	// part of the default list (a full run's length is a budget).
	Optional bool
	Start    func(e *Env) (*Deployment, error)
}

// Bins are the programs the benchmark runs.
type Bins struct {
	Weft, Fortio, Nginx, HAProxy, Caddy string
}

// Env is what every system's Start gets: where to write, what to run, the
// certificates and the server to reach.
type Env struct {
	Dir     string
	Bins    Bins
	Certs   *Certs
	Server  map[string]string // proto -> the upstream server's address
	MaxConn int               // per proxy, within the file-descriptor limit
	NoFile  int
	Root    bool
	// WeftEnv adds environment variables to weft proxy A or B ("a", "b"),
	// e.g. to turn on profiling.
	WeftEnv func(side string) []string
}

// Deployment is a running system.
type Deployment struct {
	Entry   map[string]string // proto -> where the client connects
	Middle  map[string]Middle // proto -> proxy A to proxy B; empty for direct
	Proxies []*Proc           // A (client side), then B (server side)
	// Helpers are processes the system needs besides its two proxies
	// (weft's control plane): stopped with it, never counted as a proxy;
	// their CPU during a run is reported apart.
	Helpers []*Proc
	Notes   []string // how it was set up, for the report
}

// MiddlePorts are the distinct ports of the middle hop.
func (d *Deployment) MiddlePorts() []int {
	var out []int
	seen := map[int]bool{}
	for _, p := range Protocols {
		if m, ok := d.Middle[p]; ok && !seen[Port(m.Addr)] {
			seen[Port(m.Addr)] = true
			out = append(out, Port(m.Addr))
		}
	}
	return out
}

// Stop ends the system's processes: the proxies (B before A is not
// needed), then the helpers.
func (d *Deployment) Stop() {
	for _, p := range d.Proxies {
		p.Stop()
	}
	for _, p := range d.Helpers {
		p.Stop()
	}
}

//go:embed templates/*.tmpl
var templates embed.FS

// hopConfig is what a proxy's config template gets.
type hopConfig struct {
	Dir                    string
	Root                   bool
	MaxConn, NoFile        int
	Certs                  *Certs
	ServerName             string
	HTTPListen, GRPCListen string
	HTTPNext, GRPCNext     string
}

// Render fills the named template.
func Render(name string, data any) (string, error) {
	t, err := template.New(name).Funcs(template.FuncMap{
		"port": func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p },
		"host": func(addr string) string { h, _, _ := net.SplitHostPort(addr); return h },
	}).ParseFS(templates, "templates/"+name)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// AllSystems lists the systems in report order. weft's rows come from
// WeftSystems, which knows what the built binary can do.
func AllSystems(weft []System) []System {
	out := []System{
		{Name: "direct", Kind: KindDirect, About: "client → server, no proxy", Start: startDirect},
		{Name: "l4-floor", Kind: KindFloor, About: "two HAProxy `mode tcp` relays in a row, no TLS: what two extra processes cost", Start: startL4},
	}
	out = append(out, weft...)
	return append(out,
		System{Name: "nginx", Kind: KindPeer, MTLS: true, About: "nginx → (mTLS 1.3) → nginx, worker_processes 1", Start: peer("nginx")},
		System{Name: "haproxy", Kind: KindPeer, MTLS: true, About: "HAProxy → (mTLS 1.3) → HAProxy, `mode http`, nbthread 1", Start: peer("haproxy")},
		System{Name: "caddy", Kind: KindPeer, MTLS: true, About: "Caddy → (mTLS 1.3) → Caddy, GOMAXPROCS=1", Start: peer("caddy")},
	)
}

func startDirect(e *Env) (*Deployment, error) {
	return &Deployment{Entry: map[string]string{HTTP: e.Server[HTTP], GRPC: e.Server[GRPC]}}, nil
}

// addrs hands out n fresh loopback addresses.
func addrs(n int) ([]string, error) {
	var ps Ports
	defer ps.Release()
	out := make([]string, n)
	for i := range out {
		a, err := ps.Addr()
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// retryBind runs start again (with fresh ports) when a process lost the
// race for a port to another program on the machine.
func retryBind(start func() (*Deployment, error)) (*Deployment, error) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var d *Deployment
		d, err = start()
		if err == nil {
			return d, nil
		}
		if !strings.Contains(strings.ToLower(err.Error()), "address already in use") {
			break
		}
	}
	return nil, err
}

// startHop writes a proxy's config from a template and starts it.
func startHop(e *Env, prog, name string, cfg hopConfig) (*Proc, error) {
	dir := filepath.Join(e.Dir, name)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	cfg.Dir, cfg.Root, cfg.MaxConn, cfg.NoFile, cfg.Certs, cfg.ServerName = dir, e.Root, e.MaxConn, e.NoFile, e.Certs, ServerName
	var tmpl, file string
	var argv, env []string
	switch prog {
	case "haproxy-l4", "haproxy-a", "haproxy-b":
		tmpl, file = prog+".cfg.tmpl", filepath.Join(dir, "haproxy.cfg")
		argv = []string{e.Bins.HAProxy, "-db", "-f", file}
	case "nginx-a", "nginx-b":
		tmpl, file = prog+".conf.tmpl", filepath.Join(dir, "nginx.conf")
		argv = []string{e.Bins.Nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", file}
	case "caddy-a", "caddy-b":
		tmpl, file = "Caddyfile-"+strings.TrimPrefix(prog, "caddy-")+".tmpl", filepath.Join(dir, "Caddyfile")
		argv = []string{e.Bins.Caddy, "run", "--config", file, "--adapter", "caddyfile"}
		env = []string{"GOMAXPROCS=1", "HOME=" + dir, "XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "data")}
	default:
		return nil, fmt.Errorf("unknown proxy %q", prog)
	}
	text, err := Render(tmpl, cfg)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		return nil, err
	}
	p, err := StartProc(dir, name, argv, env)
	if err != nil {
		return nil, err
	}
	if err := WaitTCP(p, 15*time.Second, cfg.HTTPListen, cfg.GRPCListen); err != nil {
		p.Stop()
		tail := p.Tail()
		if b, rerr := os.ReadFile(filepath.Join(dir, "error.log")); rerr == nil {
			tail += string(b)
		}
		return nil, fmt.Errorf("%s: %w\n%s", name, err, tail)
	}
	return p, nil
}

// startChain starts proxy B (toward the server) then proxy A (toward B),
// with the templates progA and progB.
func startChain(e *Env, sys, progA, progB string, middleTLS bool) (*Deployment, error) {
	return retryBind(func() (*Deployment, error) {
		a, err := addrs(4)
		if err != nil {
			return nil, err
		}
		aHTTP, aGRPC, bHTTP, bGRPC := a[0], a[1], a[2], a[3]
		pb, err := startHop(e, progB, sys+"-b", hopConfig{HTTPListen: bHTTP, GRPCListen: bGRPC, HTTPNext: e.Server[HTTP], GRPCNext: e.Server[GRPC]})
		if err != nil {
			return nil, err
		}
		pa, err := startHop(e, progA, sys+"-a", hopConfig{HTTPListen: aHTTP, GRPCListen: aGRPC, HTTPNext: bHTTP, GRPCNext: bGRPC})
		if err != nil {
			pb.Stop()
			return nil, err
		}
		d := &Deployment{
			Entry:   map[string]string{HTTP: aHTTP, GRPC: aGRPC},
			Middle:  map[string]Middle{HTTP: {Addr: bHTTP, Host: ServerName}, GRPC: {Addr: bGRPC, Host: ServerName}},
			Proxies: []*Proc{pa, pb},
		}
		if middleTLS {
			d.Middle[HTTP] = Middle{Addr: bHTTP, TLS: true, ALPN: "http/1.1", Host: ServerName}
			d.Middle[GRPC] = Middle{Addr: bGRPC, TLS: true, ALPN: "h2", Host: ServerName}
		}
		return d, nil
	})
}

func startL4(e *Env) (*Deployment, error) {
	return startChain(e, "l4-floor", "haproxy-l4", "haproxy-l4", false)
}

func peer(prog string) func(e *Env) (*Deployment, error) {
	return func(e *Env) (*Deployment, error) {
		return startChain(e, prog, prog+"-a", prog+"-b", true)
	}
}
