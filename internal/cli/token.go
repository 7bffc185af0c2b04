package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"weft.dev/weft/internal/control/api"
)

// TokenCreate makes a join token and prints it (the only time it is
// shown): alone on stdout, so `$(weft token create)` works; what it allows
// goes to errOut. With -o json/yaml, the API's whole answer.
func (c *Client) TokenCreate(ctx context.Context, req api.TokenCreateRequest, output string, out, errOut io.Writer) error {
	var resp api.TokenCreated
	body, _ := json.Marshal(req)
	if err := c.do(ctx, "POST", "/api/v1/tokens", nil, "application/json", bytes.NewReader(body), &resp); err != nil {
		return err
	}
	switch output {
	case "json", "yaml":
		b, _ := json.Marshal(resp)
		return printObject(out, output, b)
	case "":
	default:
		return fmt.Errorf("-o %q: want yaml or json", output)
	}
	fmt.Fprintln(out, resp.Token)
	fmt.Fprintf(errOut, "join token %q: may mint %s, expires %s\n", resp.Name, scope(resp.TokenInfo), when(resp.Expires))
	return nil
}

// TokenList prints the join tokens, never their secrets.
func (c *Client) TokenList(ctx context.Context, output string, out io.Writer) error {
	var resp api.TokenList
	if err := c.do(ctx, "GET", "/api/v1/tokens", nil, "", nil, &resp); err != nil {
		return err
	}
	switch output {
	case "json", "yaml":
		b, _ := json.Marshal(resp)
		return printObject(out, output, b)
	case "":
	default:
		return fmt.Errorf("-o %q: want yaml or json", output)
	}
	if len(resp.Items) == 0 {
		fmt.Fprintln(out, "No join tokens.")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCOPE\tEXPIRES\tSTATE")
	for _, t := range resp.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, scope(t), when(t.Expires), t.State)
	}
	return tw.Flush()
}

// TokenRevoke revokes a join token: proxies that already joined keep
// their identities; new ones cannot join with it.
func (c *Client) TokenRevoke(ctx context.Context, name string, out io.Writer) error {
	var resp api.TokenInfo
	if err := c.do(ctx, "POST", "/api/v1/tokens/"+url.PathEscape(name)+"/revoke", nil, "", nil, &resp); err != nil {
		return err
	}
	fmt.Fprintf(out, "join token %q revoked\n", resp.Name)
	return nil
}

func scope(t api.TokenInfo) string {
	ns, sa := t.Namespace, t.ServiceAccount
	if ns == "" {
		ns = "*"
	}
	if sa == "" {
		sa = "*"
	}
	return "ns/" + ns + "/sa/" + sa
}

func when(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Local().Format(time.RFC3339)
}
