package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/gateway"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/admin"
)

type gatewayFlags struct {
	config    string
	name      string
	namespace string
	bind      string
	admin     string
	tlsCert   string
	tlsKey    string
	tlsBundle string
	zone      string
	logLevel  string
	drain     time.Duration
	tel       telemetryFlags
	// The control plane mode (gateway_control.go).
	ctl            controlFlags
	serviceAccount string
}

func newGatewayCmd() *cobra.Command {
	var f gatewayFlags
	cmd := &cobra.Command{
		Use:   "gateway (--config FILE | --control ADDR --token-file F --name NAME) [flags]",
		Short: "Run the edge gateway for a Gateway resource",
		Long: `Run the edge gateway: the proxy engine bound to a Gateway API Gateway
(gateway.networking.k8s.io/v1). It listens on the Gateway's listener ports
(HTTP, HTTPS with certificates from kubernetes.io/tls Secrets chosen by SNI,
TLS passthrough by SNI, TCP), routes the HTTPRoutes, GRPCRoutes, TLSRoutes
and TCPRoutes attached to it to mesh services, and applies
RequestAuthentication (JWT), RateLimitPolicy, CORS filters and the
weft.dev/max-request-body annotation.

With --config it runs alone from a file, re-read on change or SIGHUP. With
--control it runs the Gateway NAME applied to ` + "`weft control`" + ` (weft apply): it gets
its identity (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)
with the join token, then the compiled Gateway, its certificates and the
live endpoints of the services its routes reach over mutual TLS, and
calls those services through their sidecars with that identity. The
control plane writes each route's status back, for weft get httproute X -o
yaml.

The admin listener serves /ready, /config (certificates redacted),
/clusters, /status (why each route is or is not attached) and /metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runGateway(f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "resource file to run from (YAML, multi-document)")
	fl.StringVar(&f.name, "name", "", "the Gateway to run (default: the only Gateway in the file; required with --control)")
	fl.StringVar(&f.namespace, "namespace", "", "namespace of the Gateway (default: any in a file; default with --control)")
	fl.StringVar(&f.bind, "bind", "", "host the listener ports are opened on (default: all interfaces)")
	fl.StringVar(&f.admin, "admin", "127.0.0.1:15020", "admin listener (/ready, /config, /clusters, /status, /metrics); empty disables")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "SVID certificate chain (PEM) for mTLS to sidecars, when not issued by a control plane")
	fl.StringVar(&f.tlsKey, "tls-key", "", "private key (PEM) of --tls-cert")
	fl.StringVar(&f.tlsBundle, "tls-bundle", "", "trust bundle (PEM) that sidecars' certificates must chain to")
	fl.StringVar(&f.zone, "zone", "", "the gateway's zone, for zone-aware load balancing")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.DurationVar(&f.drain, "drain-timeout", 10*time.Second, "on SIGTERM, how long requests in flight may take to finish")
	addGatewayControlFlags(fl, &f)
	addTelemetryFlags(fl, &f.tel)
	return cmd
}

func runGateway(f gatewayFlags) error {
	log, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	switch {
	case f.config == "" && f.ctl.addrs == "":
		return fmt.Errorf("give --config FILE (run alone) or --control ADDR --name NAME (run the Gateway NAME applied to weft control)")
	case f.config != "" && f.ctl.addrs != "":
		return fmt.Errorf("--config and --control are alternatives: give one")
	case f.ctl.addrs != "":
		return runGatewayControl(f, log)
	}
	metrics := admin.NewMetrics()
	tel, closeTel, err := newTelemetry(f.tel, metrics.Registry, f.name, log)
	if err != nil {
		return err
	}
	defer closeTel()
	p := proxy.New(proxy.Options{Zone: f.zone, Logger: log, Workload: f.name, Namespace: f.namespace, Telemetry: tel})
	defer p.Close()
	if f.tlsCert != "" || f.tlsKey != "" || f.tlsBundle != "" {
		if f.tlsCert == "" || f.tlsKey == "" || f.tlsBundle == "" {
			return fmt.Errorf("--tls-cert, --tls-key and --tls-bundle go together")
		}
		src, err := identity.LoadSourceFiles(f.tlsCert, f.tlsKey, f.tlsBundle)
		if err != nil {
			return err
		}
		p.SetIdentity(identity.NewMeshTLS(src))
	}

	g := gateway.New(gateway.Options{Proxy: p, Bind: f.bind, Logger: log})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var src gateway.Source = &gateway.FileSource{
		Path:      f.config,
		Options:   compile.GatewayOptions{Name: f.name, Namespace: f.namespace},
		Reload:    hup,
		Log:       log,
		OnApplied: func(*compile.Gateway) { metrics.ConfigApplied.Inc() },
		OnError:   func(error) { metrics.ConfigErrors.Inc() },
	}
	gw, err := src.Initial()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := g.Apply(gw); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	metrics.ConfigApplied.Inc()
	log.Info("gateway config loaded", "gateway", gw.Namespace+"/"+gw.Name, "version", gw.Version, "listeners", len(gw.Listeners))
	if f.admin != "" {
		a, err := gateway.StartAdmin(f.admin, g, metrics.Registry, log)
		if err != nil {
			return fmt.Errorf("--admin: %w", err)
		}
		defer a.Close()
		log.Info("admin listening", "addr", a.Addr().String())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go src.Run(ctx, g.Apply)
	<-ctx.Done()
	log.Info("shutting down: draining requests in flight", "timeout", f.drain)
	dctx, cancel := context.WithTimeout(context.Background(), f.drain)
	defer cancel()
	return g.Shutdown(dctx)
}
