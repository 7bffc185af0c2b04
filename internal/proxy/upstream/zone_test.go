package upstream

import (
	"fmt"
	"testing"
	"time"

	"weft.dev/weft/internal/compile"
)

func TestZoneAware(t *testing.T) {
	const (
		a1 = "10.0.1.1:80"
		a2 = "10.0.1.2:80"
		a3 = "10.0.1.3:80"
		b1 = "10.0.2.1:80"
		b2 = "10.0.2.2:80"
	)
	eps := []string{"zone-a/" + a1, "zone-a/" + a2, "zone-a/" + a3, "zone-b/" + b1, "zone-b/" + b2}
	tests := []struct {
		name      string
		zone      string
		zoneAware *compile.ZoneAware
		unhealthy []string
		want      []string // the set of endpoints that get traffic
	}{
		{name: "local only", zone: "zone-a", zoneAware: &compile.ZoneAware{MinHealthyPercent: 70},
			want: []string{a1, a2, a3}},
		{name: "local degraded but above threshold", zone: "zone-a", zoneAware: &compile.ZoneAware{MinHealthyPercent: 60},
			unhealthy: []string{a1}, want: []string{a2, a3}},
		{name: "local below threshold spills to all healthy", zone: "zone-a", zoneAware: &compile.ZoneAware{MinHealthyPercent: 70},
			unhealthy: []string{a1}, want: []string{a2, a3, b1, b2}},
		{name: "local all down", zone: "zone-a", zoneAware: &compile.ZoneAware{MinHealthyPercent: 0},
			unhealthy: []string{a1, a2, a3}, want: []string{b1, b2}},
		{name: "other zone", zone: "zone-b", zoneAware: &compile.ZoneAware{MinHealthyPercent: 50},
			want: []string{b1, b2}},
		{name: "no local endpoints", zone: "zone-c", zoneAware: &compile.ZoneAware{MinHealthyPercent: 50},
			want: []string{a1, a2, a3, b1, b2}},
		{name: "zone unknown", zone: "", zoneAware: &compile.ZoneAware{MinHealthyPercent: 50},
			want: []string{a1, a2, a3, b1, b2}},
		{name: "not zone aware", zone: "zone-a",
			want: []string{a1, a2, a3, b1, b2}},
		{name: "everything down: panic over all", zone: "zone-a", zoneAware: &compile.ZoneAware{MinHealthyPercent: 50},
			unhealthy: []string{a1, a2, a3, b1, b2}, want: []string{a1, a2, a3, b1, b2}},
	}
	for _, lb := range allLBs {
		for _, tt := range tests {
			t.Run(lb+"/"+tt.name, func(t *testing.T) {
				m, _ := newTestManager(t, tt.zone)
				cc := mkCluster("c", lb, eps...)
				cc.ZoneAware = tt.zoneAware
				c := setup(t, m, cc)
				for _, a := range tt.unhealthy {
					setUnhealthy(c, a, true)
				}
				got := map[string]int{}
				for i := range 2000 {
					e, err := c.Pick(PickInfo{HashKey: fmt.Sprint(i)})
					if err != nil {
						t.Fatal(err)
					}
					got[e.Address]++
				}
				if len(got) != len(tt.want) {
					t.Fatalf("traffic went to %v, want exactly %v", got, tt.want)
				}
				for _, a := range tt.want {
					if got[a] == 0 {
						t.Fatalf("traffic went to %v, want exactly %v", got, tt.want)
					}
				}
			})
		}
	}
}

// TestZoneAwareFailover: local endpoints get all traffic until outlier
// detection ejects them; then traffic goes to the other zone, and comes
// back when the ejections lapse.
func TestZoneAwareFailover(t *testing.T) {
	m, clk := newTestManager(t, "zone-a")
	cc := mkCluster("c", "RoundRobin", "zone-a/10.0.1.1:80", "zone-a/10.0.1.2:80", "zone-b/10.0.2.1:80", "zone-b/10.0.2.2:80")
	cc.ZoneAware = &compile.ZoneAware{MinHealthyPercent: 50}
	cc.Outlier = &compile.Outlier{Consecutive5xx: 2, BaseEjectionTime: compile.Duration(time.Minute), MaxEjectionPercent: 50}
	c := setup(t, m, cc)

	zones := func() map[string]int {
		got := map[string]int{}
		for range 400 {
			e, err := c.Pick(PickInfo{})
			if err != nil {
				t.Fatal(err)
			}
			got[e.Zone]++
		}
		return got
	}
	if got := zones(); got["zone-b"] != 0 {
		t.Fatalf("healthy local zone, yet traffic left it: %v", got)
	}
	if !c.Snapshot().LocalZone {
		t.Fatal("snapshot does not report zone-local picking")
	}

	for _, a := range []string{"10.0.1.1:80", "10.0.1.2:80"} {
		e := c.Endpoint(a)
		for range 2 {
			c.Begin(e)
			c.End(e, Status5xx)
		}
	}
	if got := zones(); got["zone-a"] != 0 || got["zone-b"] != 400 {
		t.Fatalf("local zone ejected, yet traffic stayed: %v", got)
	}

	clk.Advance(time.Minute)
	if got := zones(); got["zone-b"] != 0 {
		t.Fatalf("local zone back, yet traffic did not return: %v", got)
	}
}

// TestZoneAwareAvoid: a retry avoiding the only local endpoint goes to
// another zone rather than back to it.
func TestZoneAwareAvoid(t *testing.T) {
	m, _ := newTestManager(t, "zone-a")
	cc := mkCluster("c", "RoundRobin", "zone-a/10.0.1.1:80", "zone-b/10.0.2.1:80")
	cc.ZoneAware = &compile.ZoneAware{MinHealthyPercent: 100}
	c := setup(t, m, cc)
	local := c.Endpoint("10.0.1.1:80")
	for range 10 {
		if e, _ := c.Pick(PickInfo{}); e != local {
			t.Fatalf("picked %s, want the local endpoint", e.Address)
		}
		if e, _ := c.Pick(PickInfo{Avoid: local}); e == local {
			t.Fatal("retry went back to the avoided endpoint")
		}
	}
}
