package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"weft.dev/weft/internal/control/api"
)

// TopOptions shape `weft top`.
type TopOptions struct {
	// Namespace keeps one namespace's services; empty: all.
	Namespace string
	// Window the numbers are computed over (the API's default when 0).
	Window time.Duration
	// Interval between refreshes; Once prints one table and returns.
	Interval time.Duration
	Once     bool
}

// Graph fetches the service graph.
func (c *Client) Graph(ctx context.Context, namespace string, window time.Duration) (*api.GraphResponse, error) {
	q := url.Values{}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	if window > 0 {
		q.Set("window", window.String())
	}
	var g api.GraphResponse
	if err := c.do(ctx, "GET", "/api/v1/graph", q, "", nil, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// Top prints each service's request rate, success rate and latency
// percentiles: once, or refreshed in place every Interval until ctx ends.
func (c *Client) Top(ctx context.Context, o TopOptions, out io.Writer) error {
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	for {
		g, err := c.Graph(ctx, o.Namespace, o.Window)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if o.Once {
			return WriteTop(out, g, o.Namespace)
		}
		// Home, clear, then the table: a plain ANSI refresh.
		fmt.Fprint(out, "\x1b[H\x1b[2J")
		fmt.Fprintf(out, "weft top   window %s   %s   (Ctrl-C to quit)\n\n", g.Window, g.Time.Local().Format("15:04:05"))
		if err := WriteTop(out, g, o.Namespace); err != nil {
			return err
		}
		t := time.NewTimer(o.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// WriteTop prints the table of services of g, busiest first; services
// without traffic last.
func WriteTop(out io.Writer, g *api.GraphResponse, namespace string) error {
	var rows []api.GraphNode
	for _, n := range g.Nodes {
		switch {
		case n.Kind == api.NodeService && (namespace == "" || n.Namespace == namespace):
			rows = append(rows, n)
		case n.Kind == api.NodeUnknown && n.Inbound.Requests > 0:
			rows = append(rows, n)
		}
	}
	if len(rows) == 0 {
		fmt.Fprintln(out, "No services.")
		return nil
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i].Inbound, rows[j].Inbound
		if a.RPS != b.RPS {
			return a.RPS > b.RPS
		}
		return rows[i].ID < rows[j].ID
	})
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SERVICE\tNAMESPACE\tWORKLOADS\tRPS\tSUCCESS\tP50\tP95\tP99\tREQUESTS\t")
	for _, n := range rows {
		in := n.Inbound
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t\n", n.Name, dash(n.Namespace), n.Workloads,
			rate(in.RPS, in.Requests), percent(in.SuccessRate), millis(in.P50), millis(in.P95), millis(in.P99), in.Requests)
	}
	return tw.Flush()
}

func rate(rps float64, n uint64) string {
	if n == 0 {
		return "-"
	}
	switch {
	case rps >= 100:
		return strconv.FormatFloat(rps, 'f', 0, 64)
	case rps >= 10:
		return strconv.FormatFloat(rps, 'f', 1, 64)
	}
	return strconv.FormatFloat(rps, 'f', 2, 64)
}

func percent(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v*100, 'f', 2, 64) + "%"
}

func millis(v *float64) string {
	if v == nil {
		return "-"
	}
	if *v >= 1000 {
		return strconv.FormatFloat(*v/1000, 'f', 2, 64) + "s"
	}
	if *v >= 10 {
		return strconv.FormatFloat(*v, 'f', 0, 64) + "ms"
	}
	return strconv.FormatFloat(*v, 'f', 1, 64) + "ms"
}
