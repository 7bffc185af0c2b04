package upstream

import (
	"testing"

	"weft.dev/weft/internal/compile"
)

// releaseSink makes release funcs escape as they do in the proxy, so the
// benchmarks count the allocations a real caller pays.
var releaseSink func()

func BenchmarkAdmit(b *testing.B) {
	tests := []struct {
		name   string
		limits compile.Limits
	}{
		{"unlimited", compile.Limits{}},
		{"maxRequests", compile.Limits{MaxRequests: 1024}},
		{"all", compile.Limits{MaxRequests: 1024, MaxConnections: 1024, MaxPendingRequests: 1024}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			m := NewManager("")
			defer m.Close()
			cc := mkCluster("c", "", addrs(10)...)
			cc.Limits = tt.limits
			c := setup(b, m, cc)
			b.ReportAllocs()
			for b.Loop() {
				release, err := c.Admit(nil)
				if err != nil {
					b.Fatal(err)
				}
				releaseSink = release
				release()
			}
		})
	}
}

func BenchmarkAdmitConnection(b *testing.B) {
	m := NewManager("")
	defer m.Close()
	cc := mkCluster("c", "", addrs(10)...)
	cc.Limits = compile.Limits{MaxConnections: 1024}
	c := setup(b, m, cc)
	b.ReportAllocs()
	for b.Loop() {
		release, err := c.AdmitConnection()
		if err != nil {
			b.Fatal(err)
		}
		releaseSink = release
		release()
	}
}
