package main

import (
	"errors"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/cli"
)

func newDeleteCmd() *cobra.Command {
	var cf cli.Flags
	var files []string
	var recursive bool
	var ns string
	cmd := &cobra.Command{
		Use:   "delete (-f FILE|DIR|- | KIND NAME)",
		Short: "Delete resources from the control plane",
		Example: `  weft delete -f mesh.yaml
  weft delete httproute reviews
  weft delete service/ratings -n shop`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cli.NewClient(cf)
			if err != nil {
				return err
			}
			if len(files) > 0 {
				if len(args) > 0 {
					return errors.New("give -f or KIND NAME, not both")
				}
				in, err := cli.ReadFiles(files, recursive, cmd.InOrStdin())
				if err != nil {
					return err
				}
				return c.DeleteFiles(cmd.Context(), in, cmd.OutOrStdout())
			}
			if len(args) == 0 {
				return errors.New("give -f FILE or KIND NAME")
			}
			kind, name, err := cli.SplitRef(args)
			if err != nil {
				return err
			}
			if name == "" {
				return errors.New("give the NAME of the object to delete")
			}
			if ns == "" {
				ns = "default"
			}
			return c.Delete(cmd.Context(), kind, ns, name, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file, directory or - for stdin (repeatable)")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "also read the subdirectories of directories given with -f")
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", `namespace of KIND NAME (default "default")`)
	clientFlags(cmd, &cf)
	return cmd
}
