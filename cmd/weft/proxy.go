package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/admin"
	"weft.dev/weft/internal/proxy/configfile"
	"weft.dev/weft/internal/proxy/listener"
	"weft.dev/weft/internal/supervise"
)

type proxyFlags struct {
	config    string
	outbound  string
	upstreams []string
	inbound   string
	apps      []string
	tlsCert   string
	tlsKey    string
	tlsBundle string
	mtlsMode  string
	admin     string
	zone      string
	// The workload this proxy stands for: which policies apply to its
	// inbound, and (with a control plane) what it registers as.
	name           string
	namespace      string
	labels         string
	serviceAccount string
	logLevel       string
	drain          time.Duration
	ctl            controlFlags
	tel            telemetryFlags
}

func newProxyCmd() *cobra.Command {
	var f proxyFlags
	cmd := &cobra.Command{
		Use:   "proxy [flags] [-- APP ARGS...]",
		Short: "Run a sidecar proxy",
		Long: `Run a sidecar proxy. With --config it runs alone from a file of resources
(Service, Workload, HTTPRoute, GRPCRoute, TCPRoute, TrafficPolicy,
FaultInjection), re-read on change or SIGHUP. With --control it gets its
config from ` + "`weft control`" + ` instead, and registers its workload there (--name,
--labels, the --app ports behind --inbound) for as long as it runs.

With "-- APP ARGS..." it also supervises the app: the app starts once the
proxy is ready, with HTTP_PROXY set to the outbound listener; signals are
forwarded; on SIGTERM the proxy drains, then stops the app, and exits with
the app's exit code.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 && len(args) > 0 {
				return fmt.Errorf("unexpected arguments %q: the app to supervise goes after --", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runProxy(f, args) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "resource file to run from (YAML, multi-document)")
	fl.StringVar(&f.outbound, "outbound", "127.0.0.1:15001", "forward-proxy listener for apps (HTTP_PROXY); empty disables")
	fl.StringArrayVar(&f.upstreams, "upstream", nil, "NAME[.NAMESPACE][:PORT]=HOST:PORT: a local port carrying any protocol to a service (repeatable)")
	fl.StringVar(&f.inbound, "inbound", "", "listener other sidecars deliver to, for the --app ports; empty disables")
	fl.StringArrayVar(&f.apps, "app", nil, "PORTNAME=HOST:PORT: a port of the local app that the inbound delivers to (repeatable)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "SVID certificate chain (PEM) for mTLS between sidecars, when not issued by a control plane")
	fl.StringVar(&f.tlsKey, "tls-key", "", "private key (PEM) of --tls-cert")
	fl.StringVar(&f.tlsBundle, "tls-bundle", "", "trust bundle (PEM) that peers' certificates must chain to")
	fl.StringVar(&f.mtlsMode, "inbound-mtls", "", "override PeerAuthentication: strict refuses plaintext on the inbound, permissive also accepts it (default: from PeerAuthentication, else strict)")
	fl.StringVar(&f.admin, "admin", "127.0.0.1:15000", "admin listener (/ready, /config, /clusters, /metrics); empty disables")
	fl.StringVar(&f.zone, "zone", "", "this proxy's zone, for zone-aware load balancing")
	fl.StringVar(&f.name, "name", "", "name of the workload this proxy stands for")
	fl.StringVar(&f.namespace, "namespace", "default", "namespace of the workload")
	fl.StringVar(&f.labels, "labels", "", "labels of the workload, k=v,k=v: Services select it by them, and policies targeting those Services apply to its inbound")
	fl.StringVar(&f.serviceAccount, "service-account", "", "service account of the workload: its identity is spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.DurationVar(&f.drain, "drain-timeout", 10*time.Second, "on SIGTERM, how long requests in flight may take to finish")
	addControlFlags(fl, &f.ctl)
	addTelemetryFlags(fl, &f.tel)
	return cmd
}

func runProxy(f proxyFlags, appArgv []string) error {
	log, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	if err := configSourceError(f); err != nil {
		return err
	}
	targets := make([]struct {
		tg   *proxy.Target
		addr string
	}, 0, len(f.upstreams))
	for _, u := range f.upstreams {
		tg, addr, err := parseUpstreamFlag(u)
		if err != nil {
			return err
		}
		targets = append(targets, struct {
			tg   *proxy.Target
			addr string
		}{tg, addr})
	}

	apps, err := parseAppFlags(f.apps)
	if err != nil {
		return err
	}
	if len(apps) > 0 && f.inbound == "" {
		return fmt.Errorf("--app needs --inbound: the app is reached through the inbound listener")
	}

	metrics := admin.NewMetrics()
	tel, closeTel, err := newTelemetry(f.tel, metrics.Registry, f.name, log)
	if err != nil {
		return err
	}
	defer closeTel()
	p := proxy.New(proxy.Options{Zone: f.zone, Logger: log, Workload: f.name, Namespace: namespaceOf(f), ServiceAccount: f.serviceAccount, Telemetry: tel})
	defer p.Close()
	if err := setFileIdentity(p, f); err != nil {
		return err
	}
	labels, err := parseLabels(f.labels)
	if err != nil {
		return err
	}
	released := &memoryReleaser{}
	w := &configfile.Watcher{
		Path:    f.config,
		Log:     log,
		Options: compile.Options{Namespace: f.namespace, Self: &compile.Self{Namespace: f.namespace, Labels: labels}},
		Apply: func(cfg *compile.Config) error {
			err := p.Apply(cfg)
			if err == nil {
				metrics.ConfigApplied.Inc()
				released.swapped()
			}
			return err
		},
		OnError: func(error) { metrics.ConfigErrors.Inc() },
	}
	var cc *controlSession
	if f.ctl.addrs != "" {
		if cc, err = newControlClient(f, p, tel, labels, apps, w.Apply, log); err != nil {
			return err
		}
		p.SetLearner(cc.WaitFor)
	} else if err := w.LoadInitial(); err != nil {
		return fmt.Errorf("config: %w", err)
	}

	ls := listener.NewSet(p, log)
	outbound := ""
	if f.outbound != "" {
		a, err := ls.Outbound(f.outbound)
		if err != nil {
			return fmt.Errorf("--outbound: %w", err)
		}
		outbound = a.String()
		log.Info("outbound listening", "addr", outbound)
	}
	for _, t := range targets {
		a, err := ls.Upstream(t.addr, t.tg)
		if err != nil {
			return fmt.Errorf("--upstream %s: %w", t.tg.Host, err)
		}
		log.Info("upstream port listening", "service", t.tg.Host, "addr", a.String())
	}
	if f.inbound != "" {
		a, err := ls.Inbound(f.inbound, apps)
		if err != nil {
			return fmt.Errorf("--inbound: %w", err)
		}
		log.Info("inbound listening", "addr", a.String(), "apps", len(apps))
	}
	if f.admin != "" {
		a, err := admin.Start(f.admin, p, metrics, log)
		if err != nil {
			return fmt.Errorf("--admin: %w", err)
		}
		defer a.Close()
		log.Info("admin listening", "addr", a.Addr().String())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if cc != nil {
		go cc.run(ctx, stop, log)
	} else {
		go w.Run(ctx, hup)
	}
	err = serve(ctx, serveOptions{log: log, ls: ls, ready: p.Ready, drain: f.drain, outbound: outbound, appArgv: appArgv})
	if cc != nil && cc.refused() != nil {
		return cc.refused()
	}
	return err
}

// releaseMemory returns the heap a config swap freed to the OS. Decoding
// and compiling a config makes garbage in proportion to its size, and the
// runtime keeps the heap it grew to (about twice the live config)
// resident; an idle proxy would hold it for good. Two collections are
// small beside what the swap cost; it takes two because what sync.Pools
// hold goes only at the second, and that includes the buffer Compile
// marshals the whole config into to hash it (about 1 MB for 1,000
// services). It is skipped while the heap has not grown past the
// runtime's minimum goal (4 MB at GOGC=100), as with a small config: there
// is little to return, and a first collection would only add the
// collector's own structures (about 0.7 MB) to a small proxy.
func releaseMemory() {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 && s[0].Value.Uint64() <= 4<<20 {
		return
	}
	runtime.GC()
	debug.FreeOSMemory()
}

// releaseEvery spaces releases: a control plane may push several configs
// a second while a mesh changes, and each release is two full collections.
// It is short enough that the pushes a proxy gets as it joins (its config,
// then the mesh's change from its own registration) are released within
// moments.
const releaseEvery = 2 * time.Second

// memoryReleaser runs releaseMemory after config swaps, in the background
// and at most once per releaseEvery; a swap within that time gets one
// release at its end.
type memoryReleaser struct {
	mu      sync.Mutex
	next    time.Time // no release before this
	pending bool      // a release is scheduled
}

// swapped is told of every applied config.
func (r *memoryReleaser) swapped() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending {
		return
	}
	r.pending = true
	time.AfterFunc(max(time.Until(r.next), 0), r.release)
}

func (r *memoryReleaser) release() {
	r.mu.Lock()
	r.pending = false
	r.next = time.Now().Add(releaseEvery)
	r.mu.Unlock()
	releaseMemory()
}

type serveOptions struct {
	log      *slog.Logger
	ls       *listener.Set
	ready    func() bool
	drain    time.Duration
	outbound string
	appArgv  []string
}

// serve runs until SIGINT/SIGTERM (ctx) or, when the proxy supervises an
// app, until the app exits. Either way it drains requests in flight before
// the app is stopped, and returns the app's exit code as an exitError.
func serve(ctx context.Context, o serveOptions) error {
	drain := func() error {
		o.log.Info("shutting down: draining requests in flight", "timeout", o.drain)
		dctx, cancel := context.WithTimeout(context.Background(), o.drain)
		defer cancel()
		return o.ls.Shutdown(dctx)
	}
	if len(o.appArgv) == 0 {
		<-ctx.Done()
		return drain()
	}
	// The app starts once the proxy can carry its traffic.
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err := supervise.WaitReady(rctx, o.ready)
	cancel()
	if err != nil {
		drain()
		return err
	}
	app, err := supervise.Start(o.appArgv, supervise.Env(os.Environ(), o.outbound), o.log)
	if err != nil {
		drain()
		return err
	}
	fwd := make(chan os.Signal, 4)
	signal.Notify(fwd, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	defer signal.Stop(fwd)
	for {
		select {
		case sig := <-fwd:
			app.Signal(sig)
			continue
		case <-ctx.Done():
			drain()
			app.Stop(o.drain)
		case <-app.Done():
			o.log.Info("app exited", "code", app.ExitCode())
			drain()
		}
		return exitError{code: app.ExitCode()}
	}
}

// exitError makes the weft process exit with the supervised app's code.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("app exited with code %d", e.code) }

// parseUpstreamFlag parses NAME[.NAMESPACE][:PORT]=HOST:PORT.
func parseUpstreamFlag(s string) (*proxy.Target, string, error) {
	name, addr, ok := strings.Cut(s, "=")
	if !ok || name == "" || addr == "" {
		return nil, "", fmt.Errorf("--upstream %q: want NAME[.NAMESPACE][:PORT]=HOST:PORT", s)
	}
	tg := &proxy.Target{Host: name}
	if h, p, ok := strings.Cut(name, ":"); ok {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return nil, "", fmt.Errorf("--upstream %q: port %q is not a number from 1 to 65535", s, p)
		}
		tg.Host, tg.Port = h, int32(n)
	}
	return tg, addr, nil
}

// parseAppFlags parses PORTNAME=HOST:PORT flags. The port number is also
// the workload port callers address, so names and numbers must be unique.
func parseAppFlags(flags []string) ([]*proxy.App, error) {
	var apps []*proxy.App
	seen := map[string]bool{}
	for _, s := range flags {
		name, addr, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--app %q: want PORTNAME=HOST:PORT", s)
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("--app %q: %v", s, err)
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("--app %q: port %q is not a number from 1 to 65535", s, port)
		}
		if seen[name] || seen[port] {
			return nil, fmt.Errorf("--app %q: port name or number given twice", s)
		}
		seen[name], seen[port] = true, true
		apps = append(apps, &proxy.App{Name: name, Port: int32(n), Addr: addr})
	}
	return apps, nil
}

// setFileIdentity loads an identity from files (--tls-*), for proxies run
// without a control plane, and the inbound's mTLS mode.
func setFileIdentity(p *proxy.Proxy, f proxyFlags) error {
	switch f.mtlsMode {
	case "":
	case "strict":
		p.SetInboundPermissive(false)
	case "permissive":
		p.SetInboundPermissive(true)
	default:
		return fmt.Errorf("--inbound-mtls %q: want strict or permissive", f.mtlsMode)
	}
	if f.tlsCert == "" && f.tlsKey == "" && f.tlsBundle == "" {
		return nil
	}
	if f.tlsCert == "" || f.tlsKey == "" || f.tlsBundle == "" {
		return fmt.Errorf("--tls-cert, --tls-key and --tls-bundle go together")
	}
	src, err := identity.LoadSourceFiles(f.tlsCert, f.tlsKey, f.tlsBundle)
	if err != nil {
		return err
	}
	p.SetIdentity(identity.NewMeshTLS(src))
	return nil
}

// parseLabels parses k=v,k=v.
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels %q: want k=v,k=v", s)
		}
		out[k] = v
	}
	return out, nil
}
