package store_test

import (
	"context"
	"strings"
	"testing"

	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/control/store/storetest"
)

func TestBolt(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.OpenBolt(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// Durable objects and the revision survive a restart; registrations do
// not (their proxies re-register).
func TestBoltReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := store.OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := s.Put(ctx, []store.Write{{Object: store.Object{Kind: "Service", Namespace: "default", Name: "a", Data: []byte(`{}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, store.Object{Kind: "Workload", Namespace: "default", Name: "w", Data: []byte(`{}`)}, storetest.Grace); err != nil {
		t.Fatal(err)
	}
	// A second process on the same data dir is refused, not blocked.
	if _, err := store.OpenBolt(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second open: %v", err)
	}
	s.Close()

	s, err = store.OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	objs, rev2, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Key() != "Service/default/a" || objs[0].ResourceVersion != "1" {
		t.Errorf("after reopen: %+v", objs)
	}
	if rev2 <= rev {
		t.Errorf("revision %d after reopen, was %d before the registration", rev2, rev)
	}
	rev3, err := s.Put(ctx, []store.Write{{Object: store.Object{Kind: "Service", Namespace: "default", Name: "b", Data: []byte(`{}`)}}})
	if err != nil || rev3 <= rev2 {
		t.Errorf("revision after reopen went from %d to %d (%v)", rev2, rev3, err)
	}
}
