package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"weft.dev/weft/internal/control/api"
)

// TapOptions shape `weft tap`.
type TapOptions struct {
	// Namespace and Service select the destination; empty: any.
	Namespace, Service string
	// PathPrefix and Method select the request line.
	PathPrefix, Method string
	// Limit stops after that many requests; 0 runs until ctx ends.
	Limit int
	// Output "json" prints the API's NDJSON lines as they come.
	Output string
}

// ParseTapTarget turns `weft tap [SERVICE] [--namespace NS]` into a
// namespace and service: SERVICE may be "name" or "name.namespace"; a
// name alone is in NS, else "default".
func ParseTapTarget(arg, namespace string) (ns, svc string, err error) {
	if arg == "" {
		return namespace, "", nil
	}
	name, argNS, dotted := strings.Cut(arg, ".")
	if name == "" || dotted && (argNS == "" || strings.Contains(argNS, ".")) {
		return "", "", fmt.Errorf("service %q: want NAME or NAME.NAMESPACE", arg)
	}
	switch {
	case dotted && namespace != "" && namespace != argNS:
		return "", "", fmt.Errorf("service %q is in namespace %s, but --namespace says %s", arg, argNS, namespace)
	case dotted:
		return argNS, name, nil
	case namespace != "":
		return namespace, name, nil
	}
	return "default", name, nil
}

// Tap streams the requests proxies see that match o, one line each, until
// Limit requests or ctx ends. Progress notes go to errOut.
func (c *Client) Tap(ctx context.Context, o TapOptions, out, errOut io.Writer) error {
	if o.Output != "" && o.Output != "json" {
		return fmt.Errorf("-o %q: want json (default: one line per request)", o.Output)
	}
	q := url.Values{}
	for k, v := range map[string]string{"namespace": o.Namespace, "service": o.Service, "path": o.PathPrefix, "method": o.Method} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.Server+"/api/v1/tap?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// A tap runs as long as it is watched: no client timeout.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("control plane at %s: %w", c.Server, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(raw, &ae.ErrorBody) != nil || ae.ErrorBody.Error == "" {
			ae.ErrorBody = api.ErrorBody{Error: fmt.Sprintf("GET /api/v1/tap: %s", resp.Status)}
		}
		return ae
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		var l api.TapLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("tap: unreadable line: %w", err)
		}
		if o.Output == "json" {
			fmt.Fprintf(out, "%s\n", sc.Bytes())
		}
		switch l.Kind {
		case api.TapLineOpened:
			fmt.Fprintf(errOut, "tapping %d proxies (%s); Ctrl-C to stop\n", l.Proxies, describeTap(o))
		case api.TapLineDropped:
			fmt.Fprintf(errOut, "(%d requests not shown: over the tap's rate or too slow a reader)\n", l.Dropped)
		case api.TapLineRequest:
			if o.Output == "" && l.Request != nil {
				fmt.Fprintln(out, FormatTap(l.Request))
			}
			n++
		}
		if o.Limit > 0 && n >= o.Limit {
			return nil
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("tap: %w", err)
	}
	return nil
}

func describeTap(o TapOptions) string {
	var parts []string
	switch {
	case o.Service != "":
		parts = append(parts, "to "+o.Service+"."+o.Namespace)
	case o.Namespace != "":
		parts = append(parts, "to namespace "+o.Namespace)
	default:
		parts = append(parts, "every request")
	}
	if o.Method != "" {
		parts = append(parts, strings.ToUpper(o.Method))
	}
	if o.PathPrefix != "" {
		parts = append(parts, "path "+o.PathPrefix+"*")
	}
	return strings.Join(parts, ", ")
}

// FormatTap is one request as a line: time, source -> destination, the
// request, the answer and how long it took.
func FormatTap(r *api.TapRequest) string {
	var b strings.Builder
	b.WriteString(r.Time.Local().Format("15:04:05.000"))
	b.WriteString("  ")
	src := r.SourceWorkload
	if r.SourceNamespace != "" {
		src = r.SourceNamespace + "/" + src
	}
	fmt.Fprintf(&b, "%s -> %s", src, r.DestinationService)
	if r.DestinationWorkload != "" {
		fmt.Fprintf(&b, " (%s)", r.DestinationWorkload)
	}
	fmt.Fprintf(&b, "  %s %s%s  %d", r.Method, r.Authority, r.Path, r.Status)
	if r.GRPCStatus != nil {
		fmt.Fprintf(&b, " grpc-status=%d", *r.GRPCStatus)
	}
	if r.ResponseFlags != "" {
		fmt.Fprintf(&b, " [%s]", r.ResponseFlags)
	}
	fmt.Fprintf(&b, "  %sms", strconv.FormatFloat(r.LatencyMs, 'f', 2, 64))
	if r.MutualTLS {
		b.WriteString("  mtls")
	}
	return b.String()
}

// DashboardURL is the dashboard's address with the admin token in the
// fragment, which browsers never send to the server: the page takes it
// from there and forgets the fragment.
func (c *Client) DashboardURL() string {
	return c.Server + "/#token=" + url.QueryEscape(c.token)
}
