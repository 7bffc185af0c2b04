package main

import (
	"github.com/spf13/cobra"

	"weft.dev/weft/internal/cli"
)

func newGetCmd() *cobra.Command {
	var cf cli.Flags
	var o cli.GetOptions
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "Show resources",
		Long: `Show resources of a kind (service, workload, httproute, grpcroute,
tcproute, trafficpolicy, faultinjection, ...; plural and any case work; "all"
for every kind). Without NAME it lists every namespace unless -n is given;
with NAME the namespace defaults to "default".`,
		Example: `  weft get services
  weft get httproute reviews -o yaml
  weft get svc/reviews -n shop`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if o.Kind, o.Name, err = cli.SplitRef(args); err != nil {
				return err
			}
			c, err := cli.NewClient(cf)
			if err != nil {
				return err
			}
			return c.Get(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&o.Namespace, "namespace", "n", "", "namespace")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "yaml, json or wide (default: a table)")
	clientFlags(cmd, &cf)
	return cmd
}
