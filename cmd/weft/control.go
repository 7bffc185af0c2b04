package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/control"
	"weft.dev/weft/internal/control/ca"
	"weft.dev/weft/internal/control/push"
	"weft.dev/weft/internal/identity"
)

func newControlCmd() *cobra.Command {
	var o control.Options
	var logLevel string
	var grace time.Duration
	var caCert, caKey string
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Run the control plane",
		Long: `Run the control plane: resources applied with weft apply, workloads that
proxies register, and the config pushed to every proxy.

On first start it makes an admin token and a join token. It writes the CLI
context (API address + admin token) to $WEFT_HOME/config (default
~/.weft/config), so weft apply/get/delete/status on this machine need no
flags, and the join token for proxies to <data-dir>/join.token.

It also runs the mesh's certificate authority, made on first start and kept
in the store: proxies bootstrap with the join token, get a SPIFFE identity
(spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>) and talk mutual
TLS to each other and to the control plane from then on.

With --store etcd, several replicas share one etcd cluster (and the tokens
and the CA).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			o.Logger = log
			o.OnStart = func(p *control.Plane) error { return mountTelemetry(p, log) }
			o.Push.Grace = grace
			if (caCert == "") != (caKey == "") {
				return fmt.Errorf("--ca-cert and --ca-key go together")
			}
			if caCert != "" {
				if o.CACertPEM, err = os.ReadFile(caCert); err != nil {
					return fmt.Errorf("--ca-cert: %w", err)
				}
				if o.CAKeyPEM, err = os.ReadFile(caKey); err != nil {
					return fmt.Errorf("--ca-key: %w", err)
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return control.Run(ctx, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.DataDir, "data-dir", "", "where the embedded store and join.token live (default $WEFT_HOME/data, i.e. ~/.weft/data)")
	fl.StringVar(&o.HTTPAddr, "http", control.DefaultHTTPAddr, "HTTP API listener (CLI, dashboard)")
	fl.StringVar(&o.GRPCAddr, "grpc", control.DefaultGRPCAddr, "listener for proxies' config streams")
	fl.StringVar(&o.Store, "store", control.StoreBolt, "bolt (embedded file database) or etcd (shared by replicas)")
	fl.StringSliceVar(&o.EtcdEndpoints, "etcd-endpoints", nil, "etcd URLs, comma-separated (with --store etcd)")
	fl.StringVar(&o.EtcdPrefix, "etcd-prefix", "", "key prefix in etcd (default /weft/); replicas of one mesh share it")
	fl.DurationVar(&grace, "grace", push.DefaultGrace, "how long a proxy's workload outlives its stream")
	fl.StringVar(&o.TrustDomain, "trust-domain", ca.DefaultTrustDomain, "SPIFFE trust domain of the mesh's identities (fixed on the first start)")
	fl.StringVar(&caCert, "ca-cert", "", "PEM root CA certificate to sign under (with --ca-key): on the first start the CA becomes an intermediate of it")
	fl.StringVar(&caKey, "ca-key", "", "PEM private key of --ca-cert (read on the first start only)")
	fl.DurationVar(&o.SVIDTTL, "svid-ttl", identity.DefaultSVIDTTL, "lifetime of the certificates proxies get; they renew at half of it")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
