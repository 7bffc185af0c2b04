package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/control"
	"weft.dev/weft/internal/control/push"
)

func newControlCmd() *cobra.Command {
	var o control.Options
	var logLevel string
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Run the control plane",
		Long: `Run the control plane: resources applied with weft apply, workloads that
proxies register, and the config pushed to every proxy.

On first start it makes an admin token and a join token. It writes the CLI
context (API address + admin token) to $WEFT_HOME/config (default
~/.weft/config), so weft apply/get/delete/status on this machine need no
flags, and the join token for proxies to <data-dir>/join.token.

With --store etcd, several replicas share one etcd cluster (and the tokens).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			o.Logger = log
			o.Push.Grace = grace
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
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
