package upstream

import (
	"testing"
	"time"

	"weft.dev/weft/internal/compile"
)

func dur(d time.Duration) compile.Duration { return compile.Duration(d) }

func TestOutlierStreaks(t *testing.T) {
	const (
		S  = Success
		X5 = Status5xx
		GW = GatewayError
		CF = ConnectFailure
		RS = Reset
		CX = Cancelled
	)
	tests := []struct {
		name     string
		outlier  compile.Outlier
		outcomes []Outcome
		ejected  bool
	}{
		{"5xx streak", compile.Outlier{Consecutive5xx: 3}, []Outcome{X5, X5, X5}, true},
		{"5xx streak broken by success", compile.Outlier{Consecutive5xx: 3}, []Outcome{X5, X5, S, X5, X5}, false},
		{"cancelled neither counts nor breaks", compile.Outlier{Consecutive5xx: 3}, []Outcome{X5, CX, X5, CX, CX, X5}, true},
		{"cancelled alone", compile.Outlier{Consecutive5xx: 1, ConsecutiveGatewayErrors: 1, ConsecutiveConnectErrors: 1}, []Outcome{CX, CX, CX}, false},
		{"gateway errors count as 5xx", compile.Outlier{Consecutive5xx: 3}, []Outcome{X5, GW, X5}, true},
		{"connect failures and resets count as 5xx", compile.Outlier{Consecutive5xx: 3}, []Outcome{CF, RS, X5}, true},
		{"gateway streak", compile.Outlier{ConsecutiveGatewayErrors: 2}, []Outcome{GW, GW}, true},
		{"gateway streak broken by plain 5xx", compile.Outlier{ConsecutiveGatewayErrors: 2}, []Outcome{GW, X5, GW}, false},
		{"connect failures and resets are gateway errors", compile.Outlier{ConsecutiveGatewayErrors: 3}, []Outcome{GW, CF, RS}, true},
		{"connect streak", compile.Outlier{ConsecutiveConnectErrors: 2}, []Outcome{CF, RS}, true},
		{"connect streak broken by a response", compile.Outlier{ConsecutiveConnectErrors: 2}, []Outcome{CF, GW, CF}, false},
		{"connect streak broken by success", compile.Outlier{ConsecutiveConnectErrors: 2}, []Outcome{CF, S, CF}, false},
		{"plain 5xx do not count as gateway errors", compile.Outlier{ConsecutiveGatewayErrors: 2}, []Outcome{X5, X5, X5}, false},
		{"all detectors off", compile.Outlier{}, []Outcome{X5, X5, X5, GW, GW, CF, CF}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestManager(t, "")
			cc := mkCluster("c", "", addrs(3)...)
			cc.Outlier = &tt.outlier
			c := setup(t, m, cc)
			e := c.Endpoints()[0]
			for _, o := range tt.outcomes {
				c.Begin(e)
				c.End(e, o)
			}
			if got := c.Snapshot().Endpoints[0].Ejected; got != tt.ejected {
				t.Fatalf("ejected = %v, want %v", got, tt.ejected)
			}
			if e.Active() != 0 {
				t.Fatalf("active = %d after balanced Begin/End", e.Active())
			}
		})
	}
}

// TestOutlierEjectionTime: BaseEjectionTime × times ejected, capped at
// MaxEjectionTime; lapses lazily at pick time; the multiplier decays one
// step per Interval the endpoint stays in.
func TestOutlierEjectionTime(t *testing.T) {
	m, clk := newTestManager(t, "")
	cc := mkCluster("c", "RoundRobin", addrs(2)...)
	cc.Outlier = &compile.Outlier{
		Consecutive5xx:   1,
		Interval:         dur(10 * time.Second),
		BaseEjectionTime: dur(30 * time.Second),
		MaxEjectionTime:  dur(100 * time.Second),
	}
	c := setup(t, m, cc)
	e := c.Endpoints()[0]
	fail := func() {
		c.Begin(e)
		c.End(e, Status5xx)
	}
	// ejectedFor reports how long e stays out from now, to the second,
	// by watching Pick.
	ejectedFor := func() time.Duration {
		t.Helper()
		for s := 0; s <= 200; s++ {
			if got := count(t, c, 4, PickInfo{}); got[e.Address] > 0 {
				return time.Duration(s) * time.Second
			}
			clk.Advance(time.Second)
		}
		t.Fatal("endpoint never came back")
		return 0
	}

	steps := []struct {
		idleBefore time.Duration // time in service before the failure
		want       time.Duration
	}{
		{0, 30 * time.Second},                 // 1 × base
		{0, 60 * time.Second},                 // 2 × base
		{0, 90 * time.Second},                 // 3 × base
		{0, 100 * time.Second},                // 4 × base, capped
		{0, 100 * time.Second},                // still capped
		{25 * time.Second, 100 * time.Second}, // 5 - 2 decays + 1 = 4 × base, capped
		{30 * time.Second, 60 * time.Second},  // 4 - 3 + 1 = 2 × base
		{10 * time.Minute, 30 * time.Second},  // fully decayed: 1 × base
	}
	for i, s := range steps {
		clk.Advance(s.idleBefore)
		fail()
		if got := ejectedFor(); got != s.want {
			t.Fatalf("step %d: ejected for %v, want %v", i, got, s.want)
		}
	}
}

func TestOutlierMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		name    string
		eps     int
		percent int
		fail    int // endpoints that fail
		want    int // endpoints ejected
	}{
		{"quarter of four", 4, 25, 3, 1},
		{"half of four", 4, 50, 4, 2},
		{"at least one of two", 2, 10, 2, 1},
		{"default 10 percent still ejects one", 5, 0, 5, 1},
		{"default 10 percent of twenty", 20, 0, 20, 2},
		{"all of three", 3, 100, 3, 3},
		{"single endpoint at 100", 1, 100, 1, 1},
		{"single endpoint at 50", 1, 50, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestManager(t, "")
			cc := mkCluster("c", "", addrs(tt.eps)...)
			cc.Outlier = &compile.Outlier{Consecutive5xx: 2, MaxEjectionPercent: tt.percent}
			c := setup(t, m, cc)
			for _, e := range c.Endpoints()[:tt.fail] {
				for range 4 {
					c.Begin(e)
					c.End(e, Status5xx)
				}
			}
			got := 0
			for _, es := range c.Snapshot().Endpoints {
				if es.Ejected {
					got++
				}
			}
			if got != tt.want {
				t.Fatalf("%d ejected, want %d", got, tt.want)
			}
		})
	}
}

// TestOutlierRefusedEjectionRetries: an endpoint refused ejection by the
// percentage cap is ejected after a fresh streak once room frees up.
func TestOutlierRefusedEjectionRetries(t *testing.T) {
	m, clk := newTestManager(t, "")
	cc := mkCluster("c", "", addrs(4)...)
	cc.Outlier = &compile.Outlier{Consecutive5xx: 2, BaseEjectionTime: dur(10 * time.Second), MaxEjectionPercent: 25}
	c := setup(t, m, cc)
	eps := c.Endpoints()
	fail := func(e *Endpoint, n int) {
		for range n {
			c.Begin(e)
			c.End(e, Status5xx)
		}
	}
	fail(eps[0], 2)
	fail(eps[1], 2) // refused: 25% of 4 is one
	if s := c.Snapshot(); !s.Endpoints[0].Ejected || s.Endpoints[1].Ejected {
		t.Fatalf("want only the first ejected: %+v", s.Endpoints)
	}
	clk.Advance(10 * time.Second)
	fail(eps[1], 2)
	if s := c.Snapshot(); s.Endpoints[0].Ejected || !s.Endpoints[1].Ejected {
		t.Fatalf("want only the second ejected: %+v", s.Endpoints)
	}
}

// TestOutlierFailuresWhileEjected: requests in flight when an endpoint was
// ejected may fail afterwards; that neither extends the ejection nor
// counts towards the next one.
func TestOutlierFailuresWhileEjected(t *testing.T) {
	m, clk := newTestManager(t, "")
	cc := mkCluster("c", "", addrs(2)...)
	cc.Outlier = &compile.Outlier{Consecutive5xx: 2, BaseEjectionTime: dur(10 * time.Second)}
	c := setup(t, m, cc)
	e := c.Endpoints()[0]
	for range 5 {
		c.Begin(e)
	}
	for range 5 {
		c.End(e, Status5xx)
	}
	until := c.Snapshot().Endpoints[0].EjectedUntil
	if until.IsZero() {
		t.Fatal("not ejected")
	}
	clk.Advance(10 * time.Second)
	if c.Snapshot().Endpoints[0].Ejected {
		t.Fatal("ejection extended by failures while ejected")
	}
	c.Begin(e)
	c.End(e, Status5xx)
	if c.Snapshot().Endpoints[0].Ejected {
		t.Fatal("one failure after unejection re-ejected: old streak leaked")
	}
}

func TestOutlierPolicyDefaults(t *testing.T) {
	if p := newOutlierPolicy(nil); p != nil {
		t.Fatal("nil config should disable detection")
	}
	if p := newOutlierPolicy(&compile.Outlier{MaxEjectionPercent: 50}); p != nil {
		t.Fatal("no thresholds should disable detection")
	}
	p := newOutlierPolicy(&compile.Outlier{Consecutive5xx: 5, BaseEjectionTime: dur(10 * time.Minute)})
	want := outlierPolicy{consec5xx: 5, interval: int64(10 * time.Second), base: int64(10 * time.Minute),
		max: int64(10 * time.Minute), maxPercent: 10}
	if *p != want {
		t.Fatalf("policy = %+v, want %+v", *p, want)
	}
}

func TestOutlierDisabledByReloadUnejects(t *testing.T) {
	m, _ := newTestManager(t, "")
	cc := mkCluster("c", "", addrs(3)...)
	cc.Outlier = &compile.Outlier{ConsecutiveGatewayErrors: 1}
	c := setup(t, m, cc)
	e := c.Endpoints()[0]
	c.Begin(e)
	c.End(e, GatewayError)
	if !c.Snapshot().Endpoints[0].Ejected {
		t.Fatal("not ejected")
	}
	// Still on, with another threshold: stays ejected.
	cc2 := mkCluster("c", "", addrs(3)...)
	cc2.Outlier = &compile.Outlier{Consecutive5xx: 7}
	m.Update(map[string]*compile.Cluster{"c": cc2})
	if !c.Snapshot().Endpoints[0].Ejected {
		t.Fatal("ejection lost on a reload that keeps detection")
	}
	// Off: unejected and picked again.
	m.Update(map[string]*compile.Cluster{"c": mkCluster("c", "", addrs(3)...)})
	if es := c.Snapshot().Endpoints[0]; es.Ejected || es.Ejections != 0 {
		t.Fatalf("detection off, yet %+v", es)
	}
	if got := count(t, c, 30, PickInfo{}); got[e.Address] == 0 {
		t.Fatalf("unejected endpoint not picked: %v", got)
	}
}
