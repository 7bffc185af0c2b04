package configfile_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"weft.dev/weft/internal/proxy"
	"weft.dev/weft/internal/proxy/configfile"
	"weft.dev/weft/internal/proxy/proxytest"
)

func writeServices(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "services.yaml")
	if err := os.WriteFile(path, []byte(proxytest.ManyServices(n)), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

var discardLog = slog.New(slog.DiscardHandler)

// liveHeap is the heap still reachable after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// loadProxy reads and compiles the file and applies it to a new proxy,
// the way `weft proxy --config` starts.
func loadProxy(tb testing.TB, path string) *proxy.Proxy {
	tb.Helper()
	p := proxy.New(proxy.Options{})
	w := &configfile.Watcher{Path: path, Apply: p.Apply, Log: discardLog}
	if err := w.LoadInitial(); err != nil {
		tb.Fatal(err)
	}
	return p
}

// retained is what a proxy holding the config of path keeps on the heap.
func retained(tb testing.TB, path string) uint64 {
	before := liveHeap()
	p := loadProxy(tb, path)
	after := liveHeap()
	if got := len(p.Config().Services); got == 0 {
		tb.Fatal("no services loaded")
	}
	p.Close()
	runtime.KeepAlive(p)
	if after < before {
		return 0
	}
	return after - before
}

// retainedBudget bounds the heap a proxy keeps for 1,000 services (two
// ports and one endpoint each). It is about twice what it takes today
// (2.7 MB): the point is to catch a change that makes every service cost
// much more, as the idle resident set of a sidecar holding a large mesh
// follows it.
const retainedBudget = 5 << 20

func TestThousandServicesRetainedHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 1,000 services")
	}
	path := writeServices(t, 1000)
	got := retained(t, path)
	t.Logf("1,000 services: %d bytes retained (%.1f KB per service)", got, float64(got)/1000/1024)
	if got > retainedBudget {
		t.Errorf("a proxy holding 1,000 services retains %d bytes of heap, over the budget of %d", got, retainedBudget)
	}
}

// BenchmarkLoadThousandServices reports, beside the allocations of one
// load (B/op, allocs/op), the heap a proxy keeps for the config
// (retained-B) and per service (retained-B/svc).
func BenchmarkLoadThousandServices(b *testing.B) {
	path := writeServices(b, 1000)
	var kept uint64
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		before := liveHeap()
		b.StartTimer()
		p := loadProxy(b, path)
		b.StopTimer()
		kept = liveHeap() - before
		p.Close()
		runtime.KeepAlive(p)
		b.StartTimer()
	}
	b.ReportMetric(float64(kept), "retained-B")
	b.ReportMetric(float64(kept)/1000, "retained-B/svc")
}
