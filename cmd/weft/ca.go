package main

import (
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/cli"
)

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Show the mesh's certificate authority and rotate its root",
		Long: `The control plane's CA signs every proxy's certificate. A root rotation
makes a new signing root; during the overlap both roots are trusted, and
proxies renew onto the new one within seconds. ` + "`weft ca drop-old`" + ` (or
--overlap) ends the overlap. Join tokens made before a rotation keep
working until then.`,
	}
	var output string
	var overlap time.Duration
	show := &cobra.Command{
		Use: "show", Short: "Show the trust domain and the roots", Args: cobra.NoArgs,
	}
	rotate := &cobra.Command{
		Use: "rotate", Short: "Start a root rotation", Args: cobra.NoArgs,
	}
	drop := &cobra.Command{
		Use: "drop-old", Short: "End a root rotation: trust only the new root", Args: cobra.NoArgs,
	}
	bundle := &cobra.Command{
		Use: "bundle", Short: "Print the trust bundle (PEM)", Args: cobra.NoArgs,
	}
	for _, c := range []*cobra.Command{show, rotate, drop, bundle} {
		var cf cli.Flags
		c := c
		c.RunE = func(cmd *cobra.Command, args []string) error {
			cl, err := cli.NewClient(cf)
			if err != nil {
				return err
			}
			switch c {
			case show:
				return cl.CAShow(cmd.Context(), output, cmd.OutOrStdout())
			case rotate:
				return cl.CARotate(cmd.Context(), overlap, output, cmd.OutOrStdout())
			case drop:
				return cl.CADropOld(cmd.Context(), output, cmd.OutOrStdout())
			default:
				return cl.CABundle(cmd.Context(), cmd.OutOrStdout())
			}
		}
		if c != bundle {
			c.Flags().StringVarP(&output, "output", "o", "", "yaml or json")
		}
		clientFlags(c, &cf)
		cmd.AddCommand(c)
	}
	rotate.Flags().DurationVar(&overlap, "overlap", 0, "end the overlap on its own after this long (default: at `weft ca drop-old`)")
	return cmd
}
