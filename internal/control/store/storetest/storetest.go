// Package storetest is the conformance suite every store backend passes:
// the behaviour the control plane relies on, written once and run against
// bbolt and a real etcd.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"weft.dev/weft/internal/control/store"
)

// Open returns a fresh, empty store; the suite closes it.
type Open func(t *testing.T) store.Store

// Grace is the registration grace period the suite uses. One second is
// etcd's smallest lease TTL with the test cluster's timings.
const Grace = time.Second

// Run runs every conformance test against stores made by open.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"PutGet", testPutGet},
		{"AtomicMultiPut", testAtomicMultiPut},
		{"Conflict", testConflict},
		{"Delete", testDelete},
		{"ListOrder", testListOrder},
		{"Ephemeral", testEphemeral},
		{"EphemeralReplace", testEphemeralReplace},
		{"WatchCoalesces", testWatchCoalesces},
		{"WatchSeesExpiry", testWatchSeesExpiry},
		{"WatchEndsWithContext", testWatchEndsWithContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// RunReplicas checks what several replicas on one shared backend rely on:
// open returns two stores on the same data, as two control plane replicas
// would have.
func RunReplicas(t *testing.T, open func(t *testing.T) (a, b store.Store)) {
	t.Run("SeeEachOthersWrites", func(t *testing.T) {
		a, b := open(t)
		defer a.Close()
		defer b.Close()
		ctx := testCtx(t)
		w := b.Watch(ctx)
		rev, err := a.Put(ctx, []store.Write{write("Service", "default", "reviews", `{"spec":{"a":1}}`, "0")})
		if err != nil {
			t.Fatal(err)
		}
		waitRev(t, w, rev)
		got, err := b.Get(ctx, "Service", "default", "reviews")
		if err != nil {
			t.Fatalf("b.Get after a.Put: %v", err)
		}
		if got.ResourceVersion != fmt.Sprint(rev) {
			t.Errorf("b sees resourceVersion %s, a wrote at %d", got.ResourceVersion, rev)
		}
		// b's conditional write on a's version succeeds; a's stale one fails.
		if _, err := b.Put(ctx, []store.Write{write("Service", "default", "reviews", `{"spec":{"a":2}}`, got.ResourceVersion)}); err != nil {
			t.Fatalf("b.Put with current version: %v", err)
		}
		if _, err := a.Put(ctx, []store.Write{write("Service", "default", "reviews", `{"spec":{"a":3}}`, got.ResourceVersion)}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("a.Put with stale version: got %v, want ErrConflict", err)
		}
	})
	t.Run("SeeEachOthersRegistrations", func(t *testing.T) {
		a, b := open(t)
		defer b.Close()
		ctx := testCtx(t)
		w := b.Watch(ctx)
		if _, err := a.Register(ctx, obj("Workload", "default", "web-1", `{"spec":{"address":"127.0.0.1"}}`), Grace); err != nil {
			t.Fatal(err)
		}
		<-w
		eventually(t, 5*time.Second, func() string {
			o, err := b.Get(ctx, "Workload", "default", "web-1")
			if err != nil {
				return fmt.Sprintf("b.Get: %v", err)
			}
			if !o.Ephemeral {
				return "not marked ephemeral"
			}
			return ""
		})
		// a dies without releasing: the registration goes when its lease
		// runs out, and b's watch sees that.
		a.Close()
		start := time.Now()
		eventually(t, 10*time.Second, func() string {
			if _, err := b.Get(ctx, "Workload", "default", "web-1"); !errors.Is(err, store.ErrNotFound) {
				return fmt.Sprintf("registration of a closed replica still there (%v)", err)
			}
			return ""
		})
		t.Logf("registration expired %v after its replica closed", time.Since(start).Round(10*time.Millisecond))
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func obj(kind, ns, name, data string) store.Object {
	return store.Object{Kind: kind, Namespace: ns, Name: name, Data: []byte(data)}
}

func write(kind, ns, name, data, expect string) store.Write {
	return store.Write{Object: obj(kind, ns, name, data), ExpectVersion: expect}
}

// spec returns the "spec" of a stored object's JSON, to compare content.
func spec(t *testing.T, o *store.Object) string {
	t.Helper()
	var v struct {
		Spec     json.RawMessage `json:"spec"`
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(o.Data, &v); err != nil {
		t.Fatalf("%s: data is not JSON: %v: %s", o.Key(), err, o.Data)
	}
	if v.Metadata.ResourceVersion != o.ResourceVersion {
		t.Errorf("%s: metadata.resourceVersion %q, ResourceVersion %q", o.Key(), v.Metadata.ResourceVersion, o.ResourceVersion)
	}
	return string(v.Spec)
}

func testPutGet(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	if _, err := s.Get(ctx, "Service", "default", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a missing object: got %v, want ErrNotFound", err)
	}
	// A resourceVersion in the written data is not stored: the store's own
	// one is filled in on read.
	rev, err := s.Put(ctx, []store.Write{write("Service", "default", "reviews", `{"metadata":{"name":"reviews","resourceVersion":"999"},"spec":{"x":1}}`, "")})
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.Get(ctx, "Service", "default", "reviews")
	if err != nil {
		t.Fatal(err)
	}
	if o.ResourceVersion != fmt.Sprint(rev) || o.Kind != "Service" || o.Namespace != "default" || o.Name != "reviews" || o.Ephemeral {
		t.Errorf("got %+v, want Service/default/reviews at %d", o, rev)
	}
	if got := spec(t, o); got != `{"x":1}` {
		t.Errorf("spec %s", got)
	}
	rev2, err := s.Put(ctx, []store.Write{write("Service", "default", "reviews", `{"spec":{"x":2}}`, "")})
	if err != nil {
		t.Fatal(err)
	}
	if rev2 <= rev {
		t.Errorf("revision went from %d to %d", rev, rev2)
	}
	if _, err := s.Put(ctx, []store.Write{write("Service", "default", "a/b", `{}`, "")}); err == nil {
		t.Error("a name with '/' was accepted")
	}
}

func testAtomicMultiPut(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	rev, err := s.Put(ctx, []store.Write{write("Service", "default", "a", `{"spec":1}`, "0")})
	if err != nil {
		t.Fatal(err)
	}
	// b and c are new; a's expectation is stale ("0": must not exist).
	_, err = s.Put(ctx, []store.Write{
		write("Service", "default", "b", `{"spec":1}`, ""),
		write("Service", "default", "a", `{"spec":2}`, "0"),
		write("HTTPRoute", "default", "c", `{"spec":1}`, "0"),
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("got %v, want ErrConflict", err)
	}
	var ke *store.KeyError
	if !errors.As(err, &ke) || ke.Key != "Service/default/a" {
		t.Errorf("conflict %v does not name Service/default/a", err)
	}
	for _, n := range []struct{ kind, name string }{{"Service", "b"}, {"HTTPRoute", "c"}} {
		if _, err := s.Get(ctx, n.kind, "default", n.name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s %s was stored by a refused write (%v)", n.kind, n.name, err)
		}
	}
	o, _ := s.Get(ctx, "Service", "default", "a")
	if o == nil || spec(t, o) != "1" || o.ResourceVersion != fmt.Sprint(rev) {
		t.Errorf("a changed by a refused write: %+v", o)
	}
	// All succeed together and share one revision.
	rev2, err := s.Put(ctx, []store.Write{
		write("Service", "default", "b", `{"spec":1}`, "0"),
		write("Service", "default", "a", `{"spec":2}`, fmt.Sprint(rev)),
	})
	if err != nil {
		t.Fatal(err)
	}
	objs, _, err := s.List(ctx, "Service")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.ResourceVersion != fmt.Sprint(rev2) {
			t.Errorf("%s at %s, want %d", o.Key(), o.ResourceVersion, rev2)
		}
	}
}

func testConflict(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	rev, err := s.Put(ctx, []store.Write{write("Service", "default", "a", `{"spec":1}`, "0")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		expect string
		ok     bool
	}{
		{"0", false},                   // must not exist, but does
		{fmt.Sprint(rev + 100), false}, // from the future
		{"not-a-number", false},
		{fmt.Sprint(rev), true},
		{fmt.Sprint(rev), false}, // now stale: the previous write changed it
		{"", true},               // unconditional
	} {
		_, err := s.Put(ctx, []store.Write{write("Service", "default", "a", `{"spec":2}`, tc.expect)})
		if tc.ok && err != nil {
			t.Errorf("ExpectVersion %q: %v", tc.expect, err)
		}
		if !tc.ok && !errors.Is(err, store.ErrConflict) {
			t.Errorf("ExpectVersion %q: got %v, want ErrConflict", tc.expect, err)
		}
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	if _, err := s.Put(ctx, []store.Write{
		write("Service", "default", "a", `{}`, ""),
		write("Service", "default", "b", `{}`, ""),
	}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Delete(ctx, []string{"Service/default/a", "Service/default/missing"})
	var ke *store.KeyError
	if !errors.Is(err, store.ErrNotFound) || !errors.As(err, &ke) || ke.Key != "Service/default/missing" {
		t.Fatalf("delete with a missing key: got %v, want ErrNotFound naming it", err)
	}
	if _, err := s.Get(ctx, "Service", "default", "a"); err != nil {
		t.Errorf("a deleted by a refused delete: %v", err)
	}
	rev, err := s.Delete(ctx, []string{"Service/default/a", "Service/default/b"})
	if err != nil {
		t.Fatal(err)
	}
	objs, lrev, err := s.List(ctx, "Service")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 0 || lrev < rev {
		t.Errorf("after delete: %d objects at %d (delete at %d)", len(objs), lrev, rev)
	}
	// Deleting is a change: writing again gives a newer version.
	rev2, err := s.Put(ctx, []store.Write{write("Service", "default", "a", `{}`, "0")})
	if err != nil || rev2 <= rev {
		t.Errorf("re-create after delete: rev %d, err %v", rev2, err)
	}
}

func testListOrder(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	keys := [][3]string{
		{"Service", "prod", "b"}, {"Service", "default", "z"}, {"HTTPRoute", "default", "a"},
		{"Service", "default", "a"}, {"ServiceX", "default", "a"}, {"Service", "prod", "a"},
	}
	for _, k := range keys {
		if _, err := s.Put(ctx, []store.Write{write(k[0], k[1], k[2], `{}`, "")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Register(ctx, obj("Service", "default", "m", `{}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	objs, rev, err := s.List(ctx, "Service")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Service/default/a", "Service/default/m", "Service/default/z", "Service/prod/a", "Service/prod/b"}
	if got := objKeys(objs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List(Service) = %v, want %v", got, want)
	}
	if rev == 0 {
		t.Error("List returned revision 0")
	}
	all, _, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"HTTPRoute/default/a", "Service/default/a", "Service/default/m", "Service/default/z", "Service/prod/a", "Service/prod/b", "ServiceX/default/a"}
	if got := objKeys(all); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List(\"\") = %v, want %v", got, want)
	}
}

func objKeys(objs []*store.Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Key())
	}
	return out
}

func testEphemeral(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	if _, err := s.Put(ctx, []store.Write{write("Workload", "default", "web-1", `{"spec":"applied"}`, "")}); err != nil {
		t.Fatal(err)
	}
	lease, err := s.Register(ctx, obj("Workload", "default", "web-1", `{"spec":"registered"}`), Grace)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, obj("Workload", "default", "web-2", `{"spec":"registered"}`), Grace); err != nil {
		t.Fatal(err)
	}
	// The registration shadows the applied object while it lives.
	o, err := s.Get(ctx, "Workload", "default", "web-1")
	if err != nil {
		t.Fatal(err)
	}
	if !o.Ephemeral || spec(t, o) != `"registered"` {
		t.Errorf("Get while registered: %+v %s", o, o.Data)
	}
	objs, _, _ := s.List(ctx, "Workload")
	if len(objs) != 2 || !objs[0].Ephemeral || !objs[1].Ephemeral {
		t.Errorf("List while registered: %v", objKeys(objs))
	}
	// Held leases outlive grace.
	time.Sleep(Grace + 500*time.Millisecond)
	if o, err := s.Get(ctx, "Workload", "default", "web-1"); err != nil || !o.Ephemeral {
		t.Fatalf("held registration gone after grace: %v", err)
	}
	released := time.Now()
	lease.Release()
	time.Sleep(Grace / 2)
	if o, err := s.Get(ctx, "Workload", "default", "web-1"); err != nil || !o.Ephemeral {
		t.Fatalf("registration gone before grace passed: %v", err)
	}
	eventually(t, Grace+5*time.Second, func() string {
		o, err := s.Get(ctx, "Workload", "default", "web-1")
		if err != nil {
			return err.Error()
		}
		if o.Ephemeral {
			return "registration still there"
		}
		return ""
	})
	if d := time.Since(released); d < Grace*9/10 {
		t.Errorf("registration removed %v after release, before grace %v", d, Grace)
	}
	// The applied object is visible again; web-2 is still held.
	if o, err := s.Get(ctx, "Workload", "default", "web-1"); err != nil || o.Ephemeral || spec(t, o) != `"applied"` {
		t.Errorf("after expiry: %v %v", o, err)
	}
	if _, err := s.Get(ctx, "Workload", "default", "web-2"); err != nil {
		t.Errorf("web-2: %v", err)
	}
}

func testEphemeralReplace(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	old, err := s.Register(ctx, obj("Workload", "default", "web-1", `{"spec":1}`), Grace)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, obj("Workload", "default", "web-1", `{"spec":2}`), Grace); err != nil {
		t.Fatal(err)
	}
	// Releasing the replaced registration does not remove the new one (a
	// proxy that reconnected before its old stream was noticed gone).
	old.Release()
	time.Sleep(Grace + 1500*time.Millisecond)
	o, err := s.Get(ctx, "Workload", "default", "web-1")
	if err != nil {
		t.Fatalf("new registration removed by the old lease: %v", err)
	}
	if spec(t, o) != "2" {
		t.Errorf("spec %s, want 2", spec(t, o))
	}
}

func testWatchCoalesces(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	w := s.Watch(ctx)
	var last int64
	for i := 0; i < 50; i++ {
		rev, err := s.Put(ctx, []store.Write{write("Service", "default", fmt.Sprint("s", i), `{}`, "")})
		if err != nil {
			t.Fatal(err)
		}
		last = rev
	}
	// Nobody read while 50 changes happened: the reader gets the newest
	// revision after at most a few sends, never a backlog of 50.
	var got []int64
	deadline := time.After(10 * time.Second)
	for len(got) == 0 || got[len(got)-1] < last {
		select {
		case rev, ok := <-w:
			if !ok {
				t.Fatal("watch closed")
			}
			got = append(got, rev)
		case <-deadline:
			t.Fatalf("never saw revision %d; got %v", last, got)
		}
	}
	if len(got) > 10 {
		t.Errorf("%d sends for 50 changes: not coalesced (%v)", len(got), got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			t.Errorf("revisions went backwards: %v", got)
		}
	}
	if got[len(got)-1] != last {
		t.Errorf("last revision %d, want %d", got[len(got)-1], last)
	}
}

func testWatchSeesExpiry(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	lease, err := s.Register(ctx, obj("Workload", "default", "web-1", `{}`), Grace)
	if err != nil {
		t.Fatal(err)
	}
	w := s.Watch(ctx)
	lease.Release()
	// The first event may still be the registration itself (etcd's watch
	// is asynchronous); the expiry must follow.
	deadline := time.After(Grace + 5*time.Second)
	for {
		select {
		case <-w:
			if _, err := s.Get(ctx, "Workload", "default", "web-1"); errors.Is(err, store.ErrNotFound) {
				return
			}
		case <-deadline:
			t.Fatal("no watch event for an expired registration")
		}
	}
}

func testWatchEndsWithContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	w := s.Watch(ctx)
	cancel()
	select {
	case _, ok := <-w:
		for ok {
			_, ok = <-w
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch not closed after its context ended")
	}
}

func waitRev(t *testing.T, w <-chan int64, rev int64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case r := <-w:
			if r >= rev {
				return
			}
		case <-deadline:
			t.Fatalf("watch did not reach revision %d", rev)
		}
	}
}

func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
