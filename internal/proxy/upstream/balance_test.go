package upstream

import (
	"fmt"
	"testing"

	"weft.dev/weft/internal/compile"
)

var allLBs = []string{"RoundRobin", "Random", "LeastRequest", "RingHash"}

func TestPickSpreadsLoad(t *testing.T) {
	tests := []struct {
		lb        string
		key       func(i int) string
		tolerance int // allowed deviation from an even share, in picks
	}{
		{lb: "RoundRobin", tolerance: 0},
		{lb: "Random", tolerance: 100},
		{lb: "LeastRequest", tolerance: 100},
		{lb: "RingHash", key: func(i int) string { return fmt.Sprint("user-", i) }, tolerance: 250},
		{lb: "RingHash", tolerance: 100}, // no key: random
		{lb: "", tolerance: 0},           // default: round robin
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/key=%v", tt.lb, tt.key != nil), func(t *testing.T) {
			m, _ := newTestManager(t, "")
			c := setup(t, m, mkCluster("c", tt.lb, addrs(4)...))
			const n = 4000
			got := map[string]int{}
			for i := range n {
				info := PickInfo{}
				if tt.key != nil {
					info.HashKey = tt.key(i)
				}
				e, err := c.Pick(info)
				if err != nil {
					t.Fatal(err)
				}
				got[e.Address]++
			}
			for _, a := range addrs(4) {
				if d := got[a] - n/4; d < -tt.tolerance || d > tt.tolerance {
					t.Errorf("%s got %d picks, want %d±%d (all: %v)", a, got[a], n/4, tt.tolerance, got)
				}
			}
		})
	}
}

func TestPickSkipsIneligible(t *testing.T) {
	for _, lb := range allLBs {
		t.Run(lb, func(t *testing.T) {
			m, _ := newTestManager(t, "")
			as := addrs(5)
			c := setup(t, m, mkCluster("c", lb, as...))
			setUnhealthy(c, as[1], true)
			setUnhealthy(c, as[3], true)
			got := count(t, c, 1000, PickInfo{HashKey: "k"})
			if got[as[1]]+got[as[3]] != 0 {
				t.Fatalf("unhealthy endpoints picked: %v", got)
			}
			for i := range 1000 {
				e, _ := c.Pick(PickInfo{HashKey: fmt.Sprint(i)})
				got[e.Address]++
			}
			if got[as[1]]+got[as[3]] != 0 {
				t.Fatalf("unhealthy endpoints picked: %v", got)
			}
			setUnhealthy(c, as[1], false)
			got = map[string]int{}
			for i := range 1000 {
				e, _ := c.Pick(PickInfo{HashKey: fmt.Sprint(i)})
				got[e.Address]++
			}
			if got[as[1]] == 0 {
				t.Fatalf("endpoint back to healthy never picked: %v", got)
			}
		})
	}
}

func TestPickPanicMode(t *testing.T) {
	for _, lb := range allLBs {
		t.Run(lb, func(t *testing.T) {
			m, _ := newTestManager(t, "")
			as := addrs(3)
			c := setup(t, m, mkCluster("c", lb, as...))
			for _, a := range as {
				setUnhealthy(c, a, true)
			}
			got := map[string]int{}
			for i := range 600 {
				e, err := c.Pick(PickInfo{HashKey: fmt.Sprint(i)})
				if err != nil {
					t.Fatalf("Pick in panic mode: %v", err)
				}
				got[e.Address]++
			}
			if len(got) != 3 {
				t.Fatalf("panic mode should spread over all endpoints, got %v", got)
			}
			if !c.Snapshot().Panic {
				t.Fatal("snapshot does not report panic mode")
			}

			m.Update(map[string]*compile.Cluster{"c": mkCluster("c", lb)})
			if _, err := c.Pick(PickInfo{}); err != ErrNoEndpoint {
				t.Fatalf("Pick with no endpoints = %v, want ErrNoEndpoint", err)
			}
			if c.Snapshot().Panic {
				t.Fatal("no endpoints is not panic mode")
			}
		})
	}
}

func TestPickAvoid(t *testing.T) {
	tests := []struct {
		name      string
		eps       int
		unhealthy []int // indices
		avoid     int
		want      []int // the only acceptable picks
	}{
		{name: "two", eps: 2, avoid: 0, want: []int{1}},
		{name: "five", eps: 5, avoid: 2, want: []int{0, 1, 3, 4}},
		{name: "last", eps: 3, avoid: 2, want: []int{0, 1}},
		{name: "only one", eps: 1, avoid: 0, want: []int{0}},
		{name: "other unhealthy", eps: 2, unhealthy: []int{1}, avoid: 0, want: []int{0}},
		{name: "panic", eps: 3, unhealthy: []int{0, 1, 2}, avoid: 1, want: []int{0, 2}},
	}
	for _, lb := range allLBs {
		for _, tt := range tests {
			t.Run(lb+"/"+tt.name, func(t *testing.T) {
				m, _ := newTestManager(t, "")
				as := addrs(tt.eps)
				c := setup(t, m, mkCluster("c", lb, as...))
				for _, i := range tt.unhealthy {
					setUnhealthy(c, as[i], true)
				}
				avoid := c.Endpoint(as[tt.avoid])
				ok := map[string]bool{}
				for _, i := range tt.want {
					ok[as[i]] = true
				}
				for i := range 500 {
					e, err := c.Pick(PickInfo{HashKey: fmt.Sprint(i), Avoid: avoid})
					if err != nil {
						t.Fatal(err)
					}
					if !ok[e.Address] {
						t.Fatalf("picked %s avoiding %s, want one of %v", e.Address, avoid.Address, tt.want)
					}
				}
			})
		}
	}
}

// TestLeastRequestAvoidsBusy: with two distinct choices per pick, the
// busiest of three endpoints can never win.
func TestLeastRequestAvoidsBusy(t *testing.T) {
	m, _ := newTestManager(t, "")
	as := addrs(3)
	c := setup(t, m, mkCluster("c", "LeastRequest", as...))
	busy := c.Endpoint(as[0])
	for range 10 {
		c.Begin(busy)
	}
	c.Begin(c.Endpoint(as[1]))
	got := count(t, c, 1000, PickInfo{})
	if got[as[0]] != 0 {
		t.Fatalf("busiest endpoint picked: %v", got)
	}
	if got[as[2]] <= got[as[1]] {
		t.Fatalf("idle endpoint should win over the one with a request: %v", got)
	}
}

func TestRingHashConsistent(t *testing.T) {
	as := addrs(10)
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = fmt.Sprintf("session-%d", i)
	}
	placement := func(c *Cluster) map[string]string {
		out := map[string]string{}
		for _, k := range keys {
			e, err := c.Pick(PickInfo{HashKey: k})
			if err != nil {
				t.Fatal(err)
			}
			out[k] = e.Address
		}
		return out
	}

	m1, _ := newTestManager(t, "")
	c1 := setup(t, m1, mkCluster("c", "RingHash", as...))
	base := placement(c1)

	// Same key, same endpoint, every time and on every proxy (whatever the
	// endpoint order in its config).
	if again := placement(c1); fmt.Sprint(again) != fmt.Sprint(base) {
		t.Fatal("placement changed between identical picks")
	}
	rev := append([]string(nil), as...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	m2, _ := newTestManager(t, "")
	if other := placement(setup(t, m2, mkCluster("c", "RingHash", rev...))); fmt.Sprint(other) != fmt.Sprint(base) {
		t.Fatal("another proxy with the same endpoints places keys differently")
	}

	// Even enough: 100 virtual nodes each.
	per := map[string]int{}
	for _, a := range base {
		per[a]++
	}
	for _, a := range as {
		if per[a] < 100 || per[a] > 320 {
			t.Errorf("%s holds %d of %d keys", a, per[a], len(keys))
		}
	}

	// An endpoint going unhealthy moves only its own keys.
	setUnhealthy(c1, as[3], true)
	after := placement(c1)
	for k, a := range base {
		if a != as[3] && after[k] != a {
			t.Fatalf("key %s moved from healthy %s to %s", k, a, after[k])
		}
		if after[k] == as[3] {
			t.Fatalf("key %s still on unhealthy endpoint", k)
		}
	}
	setUnhealthy(c1, as[3], false)
	if back := placement(c1); fmt.Sprint(back) != fmt.Sprint(base) {
		t.Fatal("keys did not return when the endpoint recovered")
	}

	// Adding an endpoint moves about 1/11 of the keys, all to it.
	m1.Update(map[string]*compile.Cluster{"c": mkCluster("c", "RingHash", append(as, "10.9.9.9:8080")...)})
	moved := 0
	for k, a := range placement(c1) {
		if a != base[k] {
			moved++
			if a != "10.9.9.9:8080" {
				t.Fatalf("key %s moved between old endpoints", k)
			}
		}
	}
	if moved < len(keys)/22 || moved > len(keys)/6 {
		t.Fatalf("%d of %d keys moved to the new endpoint", moved, len(keys))
	}
}

// TestPickAllocatesNothing guards the hot path.
func TestPickAllocatesNothing(t *testing.T) {
	for _, lb := range allLBs {
		t.Run(lb, func(t *testing.T) {
			m := NewManager("")
			defer m.Close()
			c := setup(t, m, mkCluster("c", lb, addrs(10)...))
			avoid := c.Endpoints()[0]
			allocs := testing.AllocsPerRun(1000, func() {
				e, _ := c.Pick(PickInfo{HashKey: "user-42", Avoid: avoid})
				c.Begin(e)
				c.End(e, Success)
			})
			if allocs != 0 {
				t.Fatalf("Pick+Begin+End allocates %v times", allocs)
			}
		})
	}
}

func TestLBKindOf(t *testing.T) {
	tests := map[string]lbKind{
		"": lbRoundRobin, "RoundRobin": lbRoundRobin, "Random": lbRandom,
		"LeastRequest": lbLeastRequest, "RingHash": lbRingHash, "Maglev": lbRoundRobin,
	}
	for in, want := range tests {
		if got := lbKindOf(&compile.Cluster{LoadBalancer: compile.LoadBalancer{Type: in}}); got != want {
			t.Errorf("lbKindOf(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestRingUpdateMatchesFresh: the incremental ring after any membership
// change is the ring built from scratch.
func TestRingUpdateMatchesFresh(t *testing.T) {
	pool := make([]*Endpoint, 30)
	for i, a := range addrs(len(pool)) {
		pool[i] = &Endpoint{Address: a}
	}
	pick := func(is ...int) []*Endpoint {
		out := make([]*Endpoint, len(is))
		for k, i := range is {
			out[k] = pool[i]
		}
		return out
	}
	steps := [][]*Endpoint{
		pick(0, 1, 2, 3, 4),
		pick(0, 1, 2, 3, 4, 5),          // add
		pick(0, 2, 3, 4, 5),             // remove
		pick(5, 4, 3, 2, 0),             // reorder
		pick(9, 3, 10, 0, 11, 12, 13),   // add and remove
		pick(20),                        // almost all gone
		pick(),                          // empty
		pick(1, 2, 3, 4, 5, 6, 7, 8, 9), // back
	}
	var r *ring
	var prev []*Endpoint
	for n, eps := range steps {
		r = r.update(prev, eps)
		prev = eps
		fresh := newRing(eps)
		if len(r.hashes) != len(eps)*vnodesPerEndpoint || len(r.owners) != len(r.hashes) {
			t.Fatalf("step %d: ring has %d points for %d endpoints", n, len(r.hashes), len(eps))
		}
		for i := range fresh.hashes {
			if r.hashes[i] != fresh.hashes[i] || eps[r.owners[i]] != eps[fresh.owners[i]] {
				t.Fatalf("step %d: point %d differs from a fresh build", n, i)
			}
		}
	}
}
