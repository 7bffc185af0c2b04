package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"weft.dev/weft/internal/control/api"
)

// CAShow prints the trust domain and the roots of the trust bundle.
func (c *Client) CAShow(ctx context.Context, output string, out io.Writer) error {
	var st api.CAStatus
	if err := c.do(ctx, "GET", "/api/v1/ca", nil, "", nil, &st); err != nil {
		return err
	}
	return printCA(st, output, out)
}

// CARotate starts a root rotation: a new signing root, both trusted until
// drop-old (or until overlap has passed, when given).
func (c *Client) CARotate(ctx context.Context, overlap time.Duration, output string, out io.Writer) error {
	req := api.CARotateRequest{}
	if overlap > 0 {
		req.Overlap = overlap.String()
	}
	body, _ := json.Marshal(req)
	var st api.CAStatus
	if err := c.do(ctx, "POST", "/api/v1/ca/rotate", nil, "application/json", bytes.NewReader(body), &st); err != nil {
		return err
	}
	if output == "" {
		fmt.Fprintln(out, "root rotated: proxies renew onto the new root now; both roots are trusted until `weft ca drop-old`")
	}
	return printCA(st, output, out)
}

// CADropOld ends a rotation's overlap.
func (c *Client) CADropOld(ctx context.Context, output string, out io.Writer) error {
	var st api.CAStatus
	if err := c.do(ctx, "POST", "/api/v1/ca/drop-old", nil, "", nil, &st); err != nil {
		return err
	}
	if output == "" {
		fmt.Fprintln(out, "older roots dropped: only the signing root is trusted")
	}
	return printCA(st, output, out)
}

// CABundle prints the trust bundle as PEM.
func (c *Client) CABundle(ctx context.Context, out io.Writer) error {
	raw, err := c.raw(ctx, "/api/v1/ca/bundle")
	if err != nil {
		return err
	}
	_, err = out.Write(raw)
	return err
}

func printCA(st api.CAStatus, output string, out io.Writer) error {
	switch output {
	case "json", "yaml":
		b, _ := json.Marshal(st)
		return printObject(out, output, b)
	case "":
	default:
		return fmt.Errorf("-o %q: want yaml or json", output)
	}
	mode := "root"
	if st.Intermediate {
		mode = "intermediate (under --ca-cert)"
	}
	fmt.Fprintf(out, "trust domain %s, CA %s, certificates for %s\n", st.TrustDomain, mode, st.SVIDTTL)
	if st.DropAfter != nil {
		fmt.Fprintf(out, "rotation in progress: older roots dropped at %s\n", st.DropAfter.Local().Format(time.RFC3339))
	} else if len(st.Roots) > 1 {
		fmt.Fprintln(out, "rotation in progress: older roots trusted until `weft ca drop-old`")
	}
	tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "ROOT-SHA256\tNOT-AFTER\tSIGNING")
	for _, r := range st.Roots {
		s := "-"
		if r.Signing {
			s = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.SHA256, r.NotAfter.Format("2006-01-02"), s)
	}
	return tw.Flush()
}

// raw GETs a non-JSON answer (the bundle's PEM); errors are the API's.
func (c *Client) raw(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.Server+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("control plane at %s: %w", c.Server, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(b, &ae.ErrorBody) != nil || ae.ErrorBody.Error == "" {
			ae.ErrorBody = api.ErrorBody{Error: fmt.Sprintf("GET %s: %s", path, resp.Status)}
		}
		return nil, ae
	}
	return b, nil
}
