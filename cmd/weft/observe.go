package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/cli"
)

// weft top, weft tap and weft dashboard: what the mesh is doing, read
// from the control plane's telemetry API.

func newTopCmd() *cobra.Command {
	var cf cli.Flags
	var o cli.TopOptions
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show each service's request rate, success rate and latency",
		Long: `Show, for every service, the requests into it over the last --window
as its callers' proxies report them: requests per second, success rate
(neither 5xx nor a failed gRPC status), and p50/p95/p99 latency. The table
is redrawn every --interval; --once prints it once, for scripts.

The numbers come from the proxies connected to the control plane replica
the CLI talks to.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cli.NewClient(cf)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return c.Top(ctx, o, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.Namespace, "namespace", "n", "", "only the services of this namespace (default: all)")
	fl.DurationVar(&o.Window, "window", time.Minute, "how far back the numbers look (5s to 15m)")
	fl.DurationVar(&o.Interval, "interval", 2*time.Second, "how often the table is redrawn")
	fl.BoolVar(&o.Once, "once", false, "print the table once and exit")
	clientFlags(cmd, &cf)
	return cmd
}

func newTapCmd() *cobra.Command {
	var cf cli.Flags
	var o cli.TapOptions
	var namespace string
	cmd := &cobra.Command{
		Use:   "tap [SERVICE]",
		Short: "Watch live requests as proxies carry them",
		Long: `Watch requests live as the callers' proxies carry them: source,
destination, method, path, status and latency. SERVICE (NAME or
NAME.NAMESPACE) keeps the requests to that service; --path and --method
narrow further. Proxies send at most 100 tapped requests a second each,
and tap only while someone watches.`,
		Example: `  weft tap reviews --path /api/ --method GET
  weft tap -n shop --limit 20
  weft tap reviews.shop -o json | jq .request.status`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			var err error
			if o.Namespace, o.Service, err = cli.ParseTapTarget(arg, namespace); err != nil {
				return err
			}
			if o.Limit < 0 {
				return fmt.Errorf("--limit %d: want 0 (no limit) or more", o.Limit)
			}
			c, err := cli.NewClient(cf)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return c.Tap(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&namespace, "namespace", "n", "", "the destination's namespace (default: all; with SERVICE, default)")
	fl.StringVar(&o.PathPrefix, "path", "", "only requests whose path starts with this")
	fl.StringVar(&o.Method, "method", "", "only requests with this method")
	fl.IntVar(&o.Limit, "limit", 0, "stop after this many requests (0: until Ctrl-C)")
	fl.StringVarP(&o.Output, "output", "o", "", "json: the API's NDJSON lines (default: one line per request)")
	clientFlags(cmd, &cf)
	return cmd
}

func newDashboardCmd() *cobra.Command {
	var cf cli.Flags
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Print the link that opens the web dashboard",
		Long: `Print the address of the dashboard that weft control serves at / on its
--http listener, with the admin token in the link's fragment (after #). A
browser never sends a fragment to the server, so the token stays out of
its logs; the page keeps it for the tab and removes it from the address
bar. Treat the link as the token itself.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cli.NewClient(cf)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			if _, err := c.Graph(ctx, "", 0); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: the control plane did not answer: %v\n", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), c.DashboardURL())
			return nil
		},
	}
	clientFlags(cmd, &cf)
	return cmd
}
