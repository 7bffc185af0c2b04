// Command weft is the service mesh in one binary: proxy, control plane,
// gateway and CLI. This package only parses flags and wires packages.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "weft",
		Short:         "weft is a light, fast service mesh in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newProxyCmd(), newGatewayCmd(), newValidateCmd())
	root.AddCommand(newControlCmd(), newApplyCmd(), newGetCmd(), newDeleteCmd(), newStatusCmd())
	root.AddCommand(newTokenCmd(), newCACmd())
	root.AddCommand(newTopCmd(), newTapCmd(), newDashboardCmd())
	root.AddCommand(newDemoCmd(), newDemoAppCmd())
	if err := root.Execute(); err != nil {
		var exit exitError
		if errors.As(err, &exit) {
			os.Exit(exit.code)
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
