package upstream

import (
	"errors"
	"testing"
	"time"

	"weft.dev/weft/internal/compile"
)

func limitedCluster(t *testing.T, l compile.Limits) (*Manager, *Cluster) {
	m, _ := newTestManager(t, "")
	cc := mkCluster("c", "", addrs(2)...)
	cc.Limits = l
	return m, setup(t, m, cc)
}

// admitAsync starts an Admit in a goroutine and returns its result channel.
type admitResult struct {
	release func()
	err     error
}

func admitAsync(c *Cluster, done <-chan struct{}) <-chan admitResult {
	ch := make(chan admitResult, 1)
	go func() {
		r, err := c.Admit(done)
		ch <- admitResult{r, err}
	}()
	return ch
}

func waitPending(t *testing.T, c *Cluster, n int64) {
	t.Helper()
	eventually(t, "pending requests", func() bool { return c.Snapshot().Pending == n })
}

func TestAdmitImmediate(t *testing.T) {
	tests := []struct {
		name   string
		limits compile.Limits
		admit  int   // successful admissions held open first
		want   error // the next Admit's result
	}{
		{"unlimited", compile.Limits{}, 1000, nil},
		{"under max requests", compile.Limits{MaxRequests: 3}, 2, nil},
		{"at max requests", compile.Limits{MaxRequests: 3}, 3, ErrMaxRequests},
		{"max requests before connections", compile.Limits{MaxRequests: 2, MaxConnections: 2, MaxPendingRequests: 5}, 2, ErrMaxRequests},
		{"connections free", compile.Limits{MaxConnections: 2, MaxPendingRequests: 1}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := limitedCluster(t, tt.limits)
			var releases []func()
			for i := range tt.admit {
				r, err := c.Admit(nil)
				if err != nil {
					t.Fatalf("admission %d: %v", i, err)
				}
				releases = append(releases, r)
			}
			r, err := c.Admit(nil)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Admit = %v, want %v", err, tt.want)
			}
			if err == nil {
				r()
			}
			for _, r := range releases {
				r()
			}
			if s := c.Snapshot(); s.Requests != 0 || s.Connections != 0 || s.Pending != 0 {
				t.Fatalf("counters after releasing all: %+v", s)
			}
			// Room again.
			if r, err := c.Admit(nil); err != nil {
				t.Fatalf("Admit after releases: %v", err)
			} else {
				r()
			}
		})
	}
}

// TestAdmitPending: past MaxConnections, up to MaxPendingRequests wait for
// a slot; past those, ErrOverflow at once.
func TestAdmitPending(t *testing.T) {
	_, c := limitedCluster(t, compile.Limits{MaxConnections: 1, MaxPendingRequests: 2})
	first, err := c.Admit(nil)
	if err != nil {
		t.Fatal(err)
	}
	w1 := admitAsync(c, nil)
	waitPending(t, c, 1)
	w2 := admitAsync(c, nil)
	waitPending(t, c, 2)

	if _, err := c.Admit(nil); err != ErrOverflow {
		t.Fatalf("third waiter: %v, want ErrOverflow", err)
	}
	select {
	case r := <-w1:
		t.Fatalf("waiter admitted while the slot is held: %v", r.err)
	case r := <-w2:
		t.Fatalf("waiter admitted while the slot is held: %v", r.err)
	case <-time.After(20 * time.Millisecond):
	}

	first()
	first() // idempotent: must not free a second slot
	var got admitResult
	select {
	case got = <-w1:
	case got = <-w2:
	case <-time.After(10 * time.Second):
		t.Fatal("no waiter admitted after a release")
	}
	if got.err != nil {
		t.Fatal(got.err)
	}
	if s := c.Snapshot(); s.Connections != 1 || s.Pending != 1 || s.Requests != 2 {
		t.Fatalf("after one handoff: %+v", s)
	}
	got.release()
	var last admitResult
	select {
	case last = <-w1:
	case last = <-w2:
	case <-time.After(10 * time.Second):
		t.Fatal("second waiter never admitted")
	}
	last.release()
	if s := c.Snapshot(); s.Connections != 0 || s.Pending != 0 || s.Requests != 0 {
		t.Fatalf("counters after all released: %+v", s)
	}
}

func TestAdmitUnlimitedPending(t *testing.T) {
	_, c := limitedCluster(t, compile.Limits{MaxConnections: 1})
	first, err := c.Admit(nil)
	if err != nil {
		t.Fatal(err)
	}
	var waiters []<-chan admitResult
	for i := range 20 {
		waiters = append(waiters, admitAsync(c, nil))
		waitPending(t, c, int64(i+1))
	}
	first()
	for _, w := range waiters {
		r := <-w
		if r.err != nil {
			t.Fatal(r.err)
		}
		r.release()
	}
}

func TestAdmitDoneAbortsWait(t *testing.T) {
	_, c := limitedCluster(t, compile.Limits{MaxConnections: 1, MaxPendingRequests: 1})
	first, err := c.Admit(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first()
	done := make(chan struct{})
	w := admitAsync(c, done)
	waitPending(t, c, 1)
	close(done)
	if r := <-w; r.err != ErrAdmitAborted {
		t.Fatalf("aborted wait: %v, want ErrAdmitAborted", r.err)
	}
	if s := c.Snapshot(); s.Pending != 0 || s.Requests != 1 {
		t.Fatalf("counters after abort: %+v", s)
	}
	// The pending place is free again.
	w = admitAsync(c, nil)
	waitPending(t, c, 1)
	first()
	r := <-w
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.release()
}

func TestAdmitConnection(t *testing.T) {
	_, c := limitedCluster(t, compile.Limits{MaxConnections: 2, MaxPendingRequests: 10})
	r1, err := c.AdmitConnection()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.Admit(nil) // requests and raw connections share the slots
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AdmitConnection(); err != ErrOverflow {
		t.Fatalf("third connection: %v, want ErrOverflow", err)
	}
	r1()
	r1()
	if s := c.Snapshot(); s.Connections != 1 || s.Requests != 1 {
		t.Fatalf("after releasing the connection twice: %+v", s)
	}
	r3, err := c.AdmitConnection()
	if err != nil {
		t.Fatal(err)
	}
	r2()
	r3()

	_, u := limitedCluster(t, compile.Limits{MaxRequests: 1})
	for range 10 {
		if _, err := u.AdmitConnection(); err != nil {
			t.Fatalf("connections are unlimited without MaxConnections: %v", err)
		}
	}
}

// TestAdmitAcrossReload: counters survive a reload; in-flight admissions
// release against the limits they were admitted under.
func TestAdmitAcrossReload(t *testing.T) {
	m, c := limitedCluster(t, compile.Limits{MaxRequests: 2, MaxConnections: 2})
	r1, _ := c.Admit(nil)
	r2, _ := c.Admit(nil)

	reload := func(l compile.Limits) {
		cc := mkCluster("c", "", addrs(2)...)
		cc.Limits = l
		m.Update(map[string]*compile.Cluster{"c": cc})
	}
	reload(compile.Limits{MaxRequests: 2, MaxConnections: 2, MaxPendingRequests: 1})
	if _, err := c.Admit(nil); err != ErrMaxRequests {
		t.Fatalf("in-flight requests forgotten across reload: %v", err)
	}
	reload(compile.Limits{MaxRequests: 10, MaxConnections: 2})
	done := make(chan struct{})
	close(done)
	if _, err := c.Admit(done); err != ErrAdmitAborted {
		t.Fatalf("held slots forgotten across reload: %v", err)
	}
	reload(compile.Limits{})
	r1()
	r2()
	if s := c.Snapshot(); s.Requests != 0 || s.Connections != 0 {
		t.Fatalf("counters after releasing under new limits: %+v", s)
	}
}
