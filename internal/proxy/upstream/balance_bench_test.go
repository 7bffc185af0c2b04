package upstream

import (
	"fmt"
	"testing"
)

// BenchmarkPick measures one pick per balancer; -benchmem must show 0
// allocs/op. Begin/End are in the loop for LeastRequest so Active moves.
func BenchmarkPick(b *testing.B) {
	for _, lb := range allLBs {
		for _, n := range []int{10, 1000} {
			b.Run(fmt.Sprintf("%s/%d", lb, n), func(b *testing.B) {
				m := NewManager("")
				defer m.Close()
				c := setup(b, m, mkCluster("c", lb, addrs(n)...))
				info := PickInfo{HashKey: "user-1234567"}
				b.ReportAllocs()
				for b.Loop() {
					e, err := c.Pick(info)
					if err != nil {
						b.Fatal(err)
					}
					c.Begin(e)
					c.End(e, Success)
				}
			})
		}
	}
}

// BenchmarkPickParallel shows contention on the shared snapshot and, for
// round robin, its counter.
func BenchmarkPickParallel(b *testing.B) {
	for _, lb := range allLBs {
		b.Run(lb, func(b *testing.B) {
			m := NewManager("")
			defer m.Close()
			c := setup(b, m, mkCluster("c", lb, addrs(10)...))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				info := PickInfo{HashKey: "user-1234567"}
				for pb.Next() {
					e, _ := c.Pick(info)
					c.Begin(e)
					c.End(e, Success)
				}
			})
		})
	}
}

// BenchmarkRebuild is the cost paid off the hot path when an endpoint is
// ejected or changes health.
func BenchmarkRebuild(b *testing.B) {
	for _, lb := range []string{"RoundRobin", "RingHash"} {
		for _, n := range []int{10, 1000} {
			b.Run(fmt.Sprintf("%s/%d", lb, n), func(b *testing.B) {
				m := NewManager("")
				defer m.Close()
				as := addrs(n)
				c := setup(b, m, mkCluster("c", lb, as...))
				setUnhealthy(c, as[0], true) // a filtered ring, the costly case
				b.ReportAllocs()
				for b.Loop() {
					c.mu.Lock()
					c.rebuildLocked()
					c.mu.Unlock()
				}
			})
		}
	}
}

// BenchmarkNewRing is the cost of a membership change under RingHash.
func BenchmarkNewRing(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			m := NewManager("")
			defer m.Close()
			c := setup(b, m, mkCluster("c", "RingHash", addrs(n)...))
			b.ReportAllocs()
			for b.Loop() {
				newRing(c.eps)
			}
		})
	}
}

// BenchmarkRingJoin is the usual membership change: one endpoint joins a
// 1000-endpoint RingHash cluster (the ring is updated, not rebuilt).
func BenchmarkRingJoin(b *testing.B) {
	as := addrs(1001)
	eps := make([]*Endpoint, len(as))
	for i, a := range as {
		eps[i] = &Endpoint{Address: a}
	}
	r := newRing(eps[:1000])
	b.ReportAllocs()
	for b.Loop() {
		r.update(eps[:1000], eps)
	}
}
