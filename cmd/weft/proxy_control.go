package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/controlclient"
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
	fl.StringVar(&f.token, "token", "", "join token for --control (weft control writes it to <data-dir>/join.token)")
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
func newControlClient(f proxyFlags, labels map[string]string, apps []*proxy.App, apply func(*compile.Config) error, log *slog.Logger) (*controlclient.Client, error) {
	c := f.ctl
	token := c.token
	if c.tokenFile != "" {
		if token != "" {
			return nil, fmt.Errorf("--token and --token-file are alternatives: give one")
		}
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return nil, fmt.Errorf("--control needs --token or --token-file")
	}
	if f.name == "" {
		return nil, fmt.Errorf("--control needs --name: the name this proxy's workload registers as")
	}
	var addrs []string
	for _, a := range strings.Split(c.addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
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
	opts := controlclient.Options{
		Addrs:          addrs,
		Token:          token,
		Name:           f.name,
		Namespace:      f.namespace,
		Labels:         labels,
		ServiceAccount: sa,
		Zone:           f.zone,
		Address:        address,
		Dependencies:   deps,
		Apply:          apply,
		Logger:         log,
	}
	if address != "" {
		opts.Inbound = f.inbound
	}
	for _, a := range apps {
		opts.Ports = append(opts.Ports, controlclient.Port{Name: a.Name, Port: a.Port})
	}
	return controlclient.New(opts)
}

// runControlClient keeps the session with the control plane until ctx
// ends. If the control plane refuses this proxy (wrong token, invalid
// workload) it says so and the proxy keeps serving what it has.
func runControlClient(ctx context.Context, c *controlclient.Client, log *slog.Logger) {
	if err := c.Run(ctx); err != nil {
		log.Error("control plane refused this proxy; it gets no config", "error", err)
	}
}
