package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"weft.dev/weft/internal/control/api"
)

// Status prints the connected proxies: a table, or the API's answer as
// YAML or JSON.
func (c *Client) Status(ctx context.Context, output string, out, errOut io.Writer) error {
	var st api.StatusResponse
	if err := c.do(ctx, "GET", "/api/v1/status", nil, "", nil, &st); err != nil {
		return err
	}
	switch output {
	case "yaml", "json":
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		return printObject(out, output, b)
	case "", "wide":
	default:
		return fmt.Errorf("-o %q: want yaml, json or wide", output)
	}
	if st.ProxiesError != "" {
		fmt.Fprintf(errOut, "warning: the list may be incomplete: %s\n", st.ProxiesError)
	}
	if len(st.Proxies) == 0 {
		fmt.Fprintf(out, "No proxies connected (store %s, revision %d).\n", st.Store, st.Revision)
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNAMESPACE\tCONNECTED-TO\tVERSION\tACKED\tLAST-NACK")
	for _, p := range st.Proxies {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Namespace, dash(p.Replica), dash(p.VersionSent), dash(p.VersionAcked), nack(p, output == "wide"))
	}
	return tw.Flush()
}

// nack is "VERSION: reason", cut short in the narrow table.
func nack(p api.ProxyStatus, wide bool) string {
	if p.NackVersion == "" {
		return "-"
	}
	s := p.NackVersion + ": " + strings.Join(strings.Fields(p.NackError), " ")
	if !wide && len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

func sortStrings(s []string) { sort.Strings(s) }
