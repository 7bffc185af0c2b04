package main

import (
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/cli"
	"weft.dev/weft/internal/control/api"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage join tokens: what a new proxy proves itself with, once",
		Long: `A join token lets a proxy get its first certificate from the control plane
(weft proxy --control ADDR --token-file FILE). It reads
weft1.<sha256 of the root CA certificate>.<secret>: the proxy checks the
control plane's certificate against that hash before sending the token.
Later renewals use the proxy's certificate, not the token.`,
	}
	cmd.AddCommand(newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd())
	return cmd
}

func newTokenCreateCmd() *cobra.Command {
	var cf cli.Flags
	var req api.TokenCreateRequest
	var ttl time.Duration
	var output string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Make a join token and print it (shown only now)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cli.NewClient(cf)
			if err != nil {
				return err
			}
			req.TTL = ttl.String()
			return c.TokenCreate(cmd.Context(), req, output, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token may be used to join")
	fl.StringVar(&req.Namespace, "namespace", "", "only identities in this namespace (default: any)")
	fl.StringVar(&req.ServiceAccount, "service-account", "", "only this service account (default: any)")
	fl.StringVar(&req.Name, "name", "", "name for list and revoke (default: t-<random>)")
	fl.StringVarP(&output, "output", "o", "", "yaml or json (default: the token alone)")
	clientFlags(cmd, &cf)
	return cmd
}

func newTokenListCmd() *cobra.Command {
	var cf cli.Flags
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List join tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cli.NewClient(cf)
			if err != nil {
				return err
			}
			return c.TokenList(cmd.Context(), output, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "yaml or json (default: a table)")
	clientFlags(cmd, &cf)
	return cmd
}

func newTokenRevokeCmd() *cobra.Command {
	var cf cli.Flags
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a join token: no new proxy joins with it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cli.NewClient(cf)
			if err != nil {
				return err
			}
			return c.TokenRevoke(cmd.Context(), args[0], cmd.OutOrStdout())
		},
	}
	clientFlags(cmd, &cf)
	return cmd
}
