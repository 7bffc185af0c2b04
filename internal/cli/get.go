package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"weft.dev/weft/internal/control/api"
)

// GetOptions select what `weft get` shows.
type GetOptions struct {
	// Kind as typed ("services", "svc", "HTTPRoute"; "all" for every
	// kind); Name is optional.
	Kind string
	Name string
	// Namespace filters a list (empty: every namespace) and names the
	// namespace of a single object (empty: "default").
	Namespace string
	// Output is "" (table), "wide", "yaml" or "json".
	Output string
	// Now is the time ages are computed against; zero means time.Now.
	Now time.Time
}

func resourcePath(kind, ns, name string) string {
	return "/api/v1/resources/" + url.PathEscape(kind) + "/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
}

// SplitRef accepts "kind/name" as one argument, like kubectl.
func SplitRef(args []string) (kind, name string, err error) {
	switch len(args) {
	case 1:
		kind, name, _ = strings.Cut(args[0], "/")
		return kind, name, nil
	case 2:
		if strings.Contains(args[0], "/") {
			return "", "", fmt.Errorf("%q: give KIND NAME or KIND/NAME, not both", args[0])
		}
		return args[0], args[1], nil
	default:
		return "", "", fmt.Errorf("want KIND [NAME], got %d arguments", len(args))
	}
}

// Get prints objects as a table, YAML or JSON.
func (c *Client) Get(ctx context.Context, o GetOptions, out io.Writer) error {
	switch o.Output {
	case "", "wide", "yaml", "json":
	default:
		return fmt.Errorf("-o %q: want yaml, json or wide", o.Output)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	all := strings.EqualFold(o.Kind, "all")
	if o.Name != "" {
		if all {
			return fmt.Errorf("get all takes no NAME")
		}
		ns := o.Namespace
		if ns == "" {
			ns = "default"
		}
		var it api.Item
		if err := c.do(ctx, "GET", resourcePath(o.Kind, ns, o.Name), nil, "", nil, &it); err != nil {
			return err
		}
		switch o.Output {
		case "yaml", "json":
			return printObject(out, o.Output, it.Object)
		}
		return printTable(out, []api.Item{it}, o, false)
	}
	q := url.Values{}
	if o.Namespace != "" {
		q.Set("namespace", o.Namespace)
	}
	path := "/api/v1/resources/" + url.PathEscape(o.Kind)
	if all {
		path = "/api/v1/resources"
	}
	var list api.ListResponse
	if err := c.do(ctx, "GET", path, q, "", nil, &list); err != nil {
		return err
	}
	switch o.Output {
	case "yaml", "json":
		items := make([]json.RawMessage, len(list.Items))
		for i, it := range list.Items {
			items[i] = it.Object
		}
		doc, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
		if err != nil {
			return err
		}
		return printObject(out, o.Output, doc)
	}
	if len(list.Items) == 0 {
		where := "any namespace"
		if o.Namespace != "" {
			where = "namespace " + o.Namespace
		}
		fmt.Fprintf(out, "No resources found in %s.\n", where)
		return nil
	}
	return printTable(out, list.Items, o, all)
}

func printObject(out io.Writer, format string, obj json.RawMessage) error {
	if format == "json" {
		var v any
		if err := json.Unmarshal(obj, &v); err != nil {
			return err
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	b, err := yaml.JSONToYAML(obj)
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

// objectMeta is what the table reads from each object.
type objectMeta struct {
	Metadata struct {
		CreationTimestamp string            `json:"creationTimestamp"`
		Labels            map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Address string `json:"address"` // Workload
	} `json:"spec"`
}

func printTable(out io.Writer, items []api.Item, o GetOptions, withKind bool) error {
	tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	head := "NAMESPACE\tNAME\tVERSION\tAGE"
	if o.Output == "wide" {
		head += "\tSOURCE\tADDRESS\tLABELS"
	}
	fmt.Fprintln(tw, head)
	for _, it := range items {
		var m objectMeta
		json.Unmarshal(it.Object, &m)
		name := it.Name
		if withKind {
			name = strings.ToLower(it.Kind) + "/" + it.Name
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s", it.Namespace, name, it.ResourceVersion, age(m.Metadata.CreationTimestamp, o.Now))
		if o.Output == "wide" {
			source := "applied"
			if it.Registered {
				source = "registered"
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s", source, dash(m.Spec.Address), dash(labels(m.Metadata.Labels)))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func labels(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sortStrings(parts)
	return strings.Join(parts, ",")
}

// age prints a duration the way kubectl does: 45s, 12m, 5h, 3d.
func age(ts string, now time.Time) string {
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return "-"
	}
	return shortDuration(now.Sub(t))
}

func shortDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
