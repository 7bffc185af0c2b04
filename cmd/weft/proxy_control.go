package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"

	"github.com/spf13/pflag"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/bootstrap"
	"weft.dev/weft/internal/proxy/controlclient"
	"weft.dev/weft/internal/telemetry"
)

// The control plane mode of `weft proxy`: --control instead of --config.

type controlFlags struct {
	addrs     string
	token     string
	tokenFile string
	address   string
	dependsOn string
}

func addControlFlags(fl *pflag.FlagSet, f *controlFlags) {
	fl.StringVar(&f.addrs, "control", "", "ADDR[,ADDR...]: control plane replicas to get config from, instead of --config (any one will do)")
	fl.StringVar(&f.token, "token", "", "join token for --control (weft control writes one to <data-dir>/join.token; weft token create makes more); prefer --token-file, which other users cannot see")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the join token")
	fl.StringVar(&f.address, "address", "", "workload address other proxies reach, registered with --control (default: the host of --inbound)")
	fl.StringVar(&f.dependsOn, "depends-on", "", "svc[.ns],...: the services the app calls; only those are pushed (default: every service; others are learned on first use)")
}

// configSourceError says what is wrong with the choice of --config and
// --control.
func configSourceError(f proxyFlags) error {
	switch {
	case f.config == "" && f.ctl.addrs == "":
		return fmt.Errorf("give --config FILE (run alone) or --control ADDR (run with `weft control`)")
	case f.config != "" && f.ctl.addrs != "":
		return fmt.Errorf("--config and --control are alternatives: give one")
	}
	return nil
}

// newControlClient makes the client of --control: it registers this
// proxy's workload (--name, --namespace, --labels, --service-account,
// --zone, the --app ports, reached through --inbound at --address) and
// hands every config version to apply.
func newControlClient(f proxyFlags, p *proxy.Proxy, tel *telemetry.Telemetry, labels map[string]string, apps []*proxy.App, apply func(*compile.Config) error, log *slog.Logger) (*controlSession, error) {
	c := f.ctl
	if f.tlsCert != "" || f.tlsKey != "" || f.tlsBundle != "" {
		return nil, fmt.Errorf("--tls-cert/--tls-key/--tls-bundle are for proxies run from a file: with --control, the control plane issues this proxy's identity")
	}
	token, err := joinToken(c)
	if err != nil {
		return nil, err
	}
	if f.name == "" {
		return nil, fmt.Errorf("--control needs --name: the name this proxy's workload registers as")
	}
	addrs := controlAddrs(c.addrs)
	address := c.address
	if address == "" && f.inbound != "" {
		host, _, err := net.SplitHostPort(f.inbound)
		if err != nil {
			return nil, fmt.Errorf("--inbound %q: %w", f.inbound, err)
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			return nil, fmt.Errorf("--inbound %q listens on every address: give --address, the one other proxies reach", f.inbound)
		}
		address = host
	}
	if len(apps) > 0 && address == "" {
		return nil, fmt.Errorf("--app needs --inbound (and --address) to register the app's ports")
	}
	if address != "" && f.inbound != "" {
		if _, port, _ := net.SplitHostPort(f.inbound); port == "0" {
			return nil, fmt.Errorf("--inbound %q: with --control the inbound needs a fixed port, which other proxies are told", f.inbound)
		}
	}
	var deps []string
	for _, d := range strings.Split(c.dependsOn, ",") {
		if d = strings.TrimSpace(d); d != "" {
			deps = append(deps, d)
		}
	}
	sa := f.serviceAccount
	if sa == "" {
		sa = labels["app"]
	}
	if sa == "" {
		sa = "default"
	}
	// The identity comes first: the join token gets this proxy its SVID,
	// and everything after (the config stream, renewals, the mesh) is
	// mutual TLS with it. Until it arrives the proxy holds an empty one,
	// so its inbound refuses connections rather than take plaintext.
	boot, err := bootstrap.New(bootstrap.Options{Addrs: addrs, Token: token, Namespace: f.namespace, ServiceAccount: sa, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--token: %w", err)
	}
	p.SetIdentity(identity.NewMeshTLS(boot.Source()))
	opts := controlclient.Options{
		Addrs:          addrs,
		Creds:          boot.Creds(),
		Name:           f.name,
		Namespace:      f.namespace,
		Labels:         labels,
		ServiceAccount: sa,
		Zone:           f.zone,
		Address:        address,
		Dependencies:   deps,
		Apply:          apply,
		OnSession:      reportSessions(tel, f.name, f.namespace, labels, f.tel.statsInterval, log),
		Logger:         log,
	}
	if address != "" {
		opts.Inbound = f.inbound
	}
	for _, a := range apps {
		opts.Ports = append(opts.Ports, controlclient.Port{Name: a.Name, Port: a.Port})
	}
	cc, err := controlclient.New(opts)
	if err != nil {
		return nil, err
	}
	return &controlSession{Client: cc, boot: boot}, nil
}

// joinToken reads the join token of --token or --token-file.
func joinToken(c controlFlags) (string, error) {
	token := c.token
	if c.tokenFile != "" {
		if token != "" {
			return "", fmt.Errorf("--token and --token-file are alternatives: give one")
		}
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return "", fmt.Errorf("--control needs --token or --token-file")
	}
	return token, nil
}

// controlAddrs splits --control's ADDR,ADDR list.
func controlAddrs(list string) []string {
	var addrs []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// controlSession is a proxy's life with the control plane: its identity
// (bootstrap, then renewals) and its config stream.
type controlSession struct {
	*controlclient.Client
	boot    *bootstrap.Client
	refusal atomic.Pointer[error]
}

// run bootstraps the identity, then keeps it current and holds the config
// stream until ctx ends; the first config therefore never arrives before
// the certificate, and the proxy is not ready without both. A join token
// the control plane refuses ends the proxy (stop): retrying cannot help,
// and the error says why (expired, revoked, out of scope).
func (s *controlSession) run(ctx context.Context, stop func(), log *slog.Logger) {
	if err := s.boot.Bootstrap(ctx); err != nil {
		if ctx.Err() == nil {
			s.refusal.Store(&err)
			log.Error("no identity: this proxy cannot join the mesh", "error", err)
			stop()
		}
		return
	}
	go s.boot.Run(ctx)
	if err := s.Client.Run(ctx); err != nil {
		log.Error("control plane refused this proxy; it gets no config", "error", err)
	}
}

// refused is why the control plane refused the join token, or nil.
func (s *controlSession) refused() error {
	if e := s.refusal.Load(); e != nil {
		return *e
	}
	return nil
}
