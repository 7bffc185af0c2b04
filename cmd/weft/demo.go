package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/demo"
	"weft.dev/weft/internal/demo/app"
)

func newDemoCmd() *cobra.Command {
	o := demo.Options{GatewayPort: 8080, DashboardPort: 15080, Rate: 20}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole mesh on this machine: control plane, sample app with sidecars, gateway, load",
		Long: `Run a whole mesh on this machine, with nothing else installed: a control
plane, the storefront sample app (web, catalog, cart, reviews v1/v2,
ratings; HTTP, gRPC and WebSocket between them) with a sidecar beside each
service, a gateway in front and a steady load. It prints the URLs and a few
things to try. Ctrl-C stops everything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			o.Bin, o.Out = bin, cmd.OutOrStdout()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return demo.Run(ctx, o)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.GatewayPort, "gateway-port", o.GatewayPort, "port of the storefront's gateway on 127.0.0.1")
	fl.IntVar(&o.DashboardPort, "dashboard-port", o.DashboardPort, "port of the control plane's API and dashboard on 127.0.0.1")
	fl.Float64Var(&o.Rate, "rate", o.Rate, "requests per second of the built-in load (0: none)")
	fl.StringVar(&o.Dir, "dir", "", "keep the demo's data and logs here (default: a temporary folder, removed on exit)")
	return cmd
}

// newDemoAppCmd runs one service of the demo's sample app; `weft demo`
// starts it under a sidecar.
func newDemoAppCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:       "demo-app ROLE",
		Short:     "Run one service of the demo storefront",
		Hidden:    true,
		Args:      cobra.ExactArgs(1),
		ValidArgs: app.Roles,
		RunE: func(cmd *cobra.Command, args []string) error {
			if listen == "" {
				return fmt.Errorf("--listen is required")
			}
			return app.Run(args[0], listen)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "host:port to serve on")
	return cmd
}
