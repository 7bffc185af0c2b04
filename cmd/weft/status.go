package main

import (
	"github.com/spf13/cobra"

	"weft.dev/weft/internal/cli"
)

func newStatusCmd() *cobra.Command {
	var cf cli.Flags
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the proxies connected to the control plane",
		Long: `Show every proxy connected to the control plane (any replica): the
config version it was sent, the last one it applied (ACK), and the last one
it refused (NACK) with the reason; a proxy that NACKs keeps serving its
last good config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cli.NewClient(cf)
			if err != nil {
				return err
			}
			return c.Status(cmd.Context(), output, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "yaml, json or wide (default: a table)")
	clientFlags(cmd, &cf)
	return cmd
}
