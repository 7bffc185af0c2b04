package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/control/api"
)

func TestParseTapTarget(t *testing.T) {
	for _, c := range []struct {
		arg, ns         string
		wantNS, wantSvc string
		bad             bool
	}{
		{"", "", "", "", false},
		{"", "shop", "shop", "", false},
		{"reviews", "", "default", "reviews", false},
		{"reviews", "shop", "shop", "reviews", false},
		{"reviews.shop", "", "shop", "reviews", false},
		{"reviews.shop", "shop", "shop", "reviews", false},
		{"reviews.shop", "other", "", "", true},
		{"reviews.", "", "", "", true},
		{".shop", "", "", "", true},
		{"a.b.c", "", "", "", true},
	} {
		ns, svc, err := ParseTapTarget(c.arg, c.ns)
		if (err != nil) != c.bad || ns != c.wantNS || svc != c.wantSvc {
			t.Errorf("ParseTapTarget(%q, %q) = %q, %q, %v", c.arg, c.ns, ns, svc, err)
		}
	}
}

func f(v float64) *float64 { return &v }

func TestWriteTop(t *testing.T) {
	g := &api.GraphResponse{Nodes: []api.GraphNode{
		{ID: "shop/idle", Kind: api.NodeService, Namespace: "shop", Name: "idle"},
		{ID: "shop/reviews", Kind: api.NodeService, Namespace: "shop", Name: "reviews", Workloads: 2,
			Inbound: api.Golden{Requests: 600, Errors: 6, RPS: 10, SuccessRate: f(0.99), P50: f(1.25), P95: f(12.5), P99: f(1500)}},
		{ID: "workload:shop/loadgen", Kind: api.NodeWorkload, Namespace: "shop", Name: "loadgen"},
		{ID: "unknown", Kind: api.NodeUnknown, Name: "unknown", Inbound: api.Golden{Requests: 3, RPS: 0.05, SuccessRate: f(1)}},
	}}
	var b bytes.Buffer
	if err := WriteTop(&b, g, ""); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	want := [][]string{
		{"SERVICE", "NAMESPACE", "WORKLOADS", "RPS", "SUCCESS", "P50", "P95", "P99", "REQUESTS"},
		{"reviews", "shop", "2", "10.0", "99.00%", "1.2ms", "12ms", "1.50s", "600"},
		{"unknown", "-", "0", "0.05", "100.00%", "-", "-", "-", "3"},
		{"idle", "shop", "0", "-", "-", "-", "-", "-", "0"},
	}
	for i, l := range lines {
		if got := strings.Fields(l); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Errorf("line %d = %q; want %q", i, got, want[i])
		}
	}
	b.Reset()
	WriteTop(&b, g, "other")
	if !strings.Contains(b.String(), "unknown") || strings.Contains(b.String(), "reviews") {
		t.Errorf("namespace other:\n%s", b.String())
	}
}

func TestFormatTap(t *testing.T) {
	g := 14
	l := FormatTap(&api.TapRequest{
		Time: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.Local), SourceWorkload: "pp", SourceNamespace: "shop",
		DestinationService: "reviews.shop", DestinationWorkload: "shop/reviews-1", Method: "GET", Authority: "reviews:9080",
		Path: "/r/1", Status: 200, GRPCStatus: &g, ResponseFlags: "upstream-error", LatencyMs: 1.5, MutualTLS: true,
	})
	want := "03:04:05.006  shop/pp -> reviews.shop (shop/reviews-1)  GET reviews:9080/r/1  200 grpc-status=14 [upstream-error]  1.50ms  mtls"
	if l != want {
		t.Errorf("FormatTap =\n%q; want\n%q", l, want)
	}
}

func TestDashboardURL(t *testing.T) {
	c := &Client{Server: "http://127.0.0.1:15080", token: "a+b/c"}
	if got := c.DashboardURL(); got != "http://127.0.0.1:15080/#token=a%2Bb%2Fc" {
		t.Errorf("DashboardURL = %q", got)
	}
}
