package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/pflag"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/gateway"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/admin"
	"weft.dev/weft/internal/proxy/bootstrap"
	"weft.dev/weft/internal/proxy/controlclient"
)

// The control plane mode of `weft gateway`: --control instead of --config.
// The same steps as `weft proxy --control`: the join token gets the
// gateway its SVID (bootstrap), and the config stream (controlclient) is
// mutual TLS with it; the stream's Hello names the Gateway.

func addGatewayControlFlags(fl *pflag.FlagSet, f *gatewayFlags) {
	fl.StringVar(&f.ctl.addrs, "control", "", "ADDR[,ADDR...]: control plane replicas to get the Gateway --name from, instead of --config (any one will do)")
	fl.StringVar(&f.ctl.token, "token", "", "join token for --control (weft control writes one to <data-dir>/join.token; weft token create makes more); prefer --token-file, which other users cannot see")
	fl.StringVar(&f.ctl.tokenFile, "token-file", "", "file holding the join token")
	fl.StringVar(&f.serviceAccount, "service-account", "", "with --control, the gateway's identity is spiffe://<trust-domain>/ns/<namespace>/sa/<service-account> (default: --name; the Gateway's weft.dev/service-account annotation may name another)")
}

func runGatewayControl(f gatewayFlags, log *slog.Logger) error {
	if f.tlsCert != "" || f.tlsKey != "" || f.tlsBundle != "" {
		return fmt.Errorf("--tls-cert/--tls-key/--tls-bundle are for a gateway run from a file: with --control, the control plane issues its identity")
	}
	if f.name == "" {
		return fmt.Errorf("--control needs --name: the Gateway to run")
	}
	token, err := joinToken(f.ctl)
	if err != nil {
		return err
	}
	ns := f.namespace
	if ns == "" {
		ns = "default"
	}
	sa := f.serviceAccount
	if sa == "" {
		sa = f.name
	}
	addrs := controlAddrs(f.ctl.addrs)

	metrics := admin.NewMetrics()
	tel, closeTel, err := newTelemetry(f.tel, metrics.Registry, f.name, log)
	if err != nil {
		return err
	}
	defer closeTel()
	p := proxy.New(proxy.Options{Zone: f.zone, Logger: log, Workload: f.name, Namespace: ns, ServiceAccount: sa, Telemetry: tel})
	defer p.Close()
	// Until the SVID arrives the gateway holds an empty identity; it has
	// no config before then either.
	boot, err := bootstrap.New(bootstrap.Options{Addrs: addrs, Token: token, Namespace: ns, ServiceAccount: sa, Logger: log})
	if err != nil {
		return fmt.Errorf("--token: %w", err)
	}
	p.SetIdentity(identity.NewMeshTLS(boot.Source()))

	g := gateway.New(gateway.Options{Proxy: p, Bind: f.bind, Logger: log})
	apply := gatewayApplier(g, ns, f.name, metrics, log)
	cc, err := controlclient.New(controlclient.Options{
		Addrs:          addrs,
		Creds:          boot.Creds(),
		Name:           f.name,
		Namespace:      ns,
		ServiceAccount: sa,
		Zone:           f.zone,
		Gateway:        f.name,
		ApplyGateway:   apply,
		OnSession:      reportSessions(tel, f.name, ns, nil, f.tel.statsInterval, log),
		Logger:         log,
	})
	if err != nil {
		return err
	}
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
	// A refusal (the join token, or a Gateway this identity may not run)
	// ends the gateway: retrying cannot help, and the error says why.
	var refusal error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := boot.Bootstrap(ctx); err != nil {
			if ctx.Err() == nil {
				refusal = fmt.Errorf("no identity: this gateway cannot join the mesh: %w", err)
				stop()
			}
			return
		}
		go boot.Run(ctx)
		if err := cc.Run(ctx); err != nil {
			refusal = fmt.Errorf("the control plane refused this gateway: %w", err)
			stop()
		}
	}()
	log.Info("gateway waiting for its config", "gateway", ns+"/"+f.name, "control", f.ctl.addrs, "service_account", sa)
	<-ctx.Done()
	log.Info("shutting down: draining requests in flight", "timeout", f.drain)
	dctx, cancel := context.WithTimeout(context.Background(), f.drain)
	defer cancel()
	err = g.Shutdown(dctx)
	wg.Wait()
	if refusal != nil {
		return refusal
	}
	return err
}

// gatewayApplier applies each config from the control plane. nil means the
// control plane has no such Gateway: before the first config the gateway
// waits for one; after, it closes its listeners (the Gateway was deleted)
// and opens them again when the Gateway comes back.
func gatewayApplier(g *gateway.Gateway, ns, name string, metrics *admin.Metrics, log *slog.Logger) func(*compile.Gateway) error {
	var mu sync.Mutex
	waiting, lastListeners := false, -1
	return func(gw *compile.Gateway) error {
		mu.Lock()
		defer mu.Unlock()
		if gw == nil {
			if g.Config() == nil {
				if !waiting {
					log.Warn("the control plane has no Gateway "+ns+"/"+name+" (yet): waiting for it (weft apply)", "gateway", ns+"/"+name)
					waiting = true
				}
				return nil
			}
			if len(g.Config().Listeners) == 0 {
				return nil
			}
			log.Warn("Gateway "+ns+"/"+name+" is gone from the control plane: closing its listeners", "gateway", ns+"/"+name)
			gw = &compile.Gateway{Name: name, Namespace: ns, Listeners: []*compile.Listener{}, Clusters: map[string]*compile.Cluster{},
				Status: &compile.GatewayStatus{}}
		}
		if err := g.Apply(gw); err != nil {
			metrics.ConfigErrors.Inc()
			return err
		}
		metrics.ConfigApplied.Inc()
		waiting = false
		if lastListeners != len(gw.Listeners) {
			log.Info("gateway config applied", "gateway", ns+"/"+name, "version", gw.Version, "listeners", len(gw.Listeners), "clusters", len(gw.Clusters))
			lastListeners = len(gw.Listeners)
		} else {
			log.Debug("gateway config applied", "gateway", ns+"/"+name, "version", gw.Version, "clusters", len(gw.Clusters))
		}
		return nil
	}
}
