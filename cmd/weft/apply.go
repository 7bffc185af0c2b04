package main

import (
	"github.com/spf13/cobra"

	"weft.dev/weft/internal/cli"
)

// clientFlags are the connection flags of every command that talks to the
// control plane.
func clientFlags(cmd *cobra.Command, f *cli.Flags) {
	cmd.Flags().StringVar(&f.Server, "server", "", "control plane API URL (default: from $WEFT_HOME/config)")
	cmd.Flags().StringVar(&f.Token, "token", "", "admin token (default: from $WEFT_HOME/config)")
}

func newApplyCmd() *cobra.Command {
	var cf cli.Flags
	var files []string
	var recursive bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update resources in the control plane",
		Long: `Create or update resources from YAML or JSON files (multi-document).
Every file given is applied in one request: all objects or none. An object
carrying metadata.resourceVersion is written only if it is still at that
version (optimistic concurrency).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := cli.ReadFiles(files, recursive, cmd.InOrStdin())
			if err != nil {
				return err
			}
			c, err := cli.NewClient(cf)
			if err != nil {
				return err
			}
			return c.Apply(cmd.Context(), in, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file, directory or - for stdin (repeatable)")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "also read the subdirectories of directories given with -f")
	clientFlags(cmd, &cf)
	return cmd
}
