package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy/configfile"
)

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check resource files without running anything",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range args {
				cfg, _, err := configfile.Load(f, compile.Options{})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d services, %d clusters, version %s)\n", f, len(cfg.Services), len(cfg.Clusters), cfg.Version)
			}
			return nil
		},
	}
}
