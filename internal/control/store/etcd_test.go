package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/control/store/etcdtest"
	"weft.dev/weft/internal/control/store/storetest"
)

// One etcd for the whole test; each store gets its own key prefix, so
// stores start empty without restarting etcd.
func TestEtcd(t *testing.T) {
	e := etcdtest.Start(t)
	var n atomic.Int64
	openAt := func(t *testing.T, prefix string) store.Store {
		s, err := store.OpenEtcd(context.Background(), store.EtcdOptions{Endpoints: []string{e.Endpoint}, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			return openAt(t, fmt.Sprintf("/test-%d/", n.Add(1)))
		})
	})
	t.Run("Replicas", func(t *testing.T) {
		storetest.RunReplicas(t, func(t *testing.T) (store.Store, store.Store) {
			prefix := fmt.Sprintf("/test-%d/", n.Add(1))
			return openAt(t, prefix), openAt(t, prefix)
		})
	})
}

func TestEtcdUnreachable(t *testing.T) {
	_, err := store.OpenEtcd(context.Background(), store.EtcdOptions{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: 500e6})
	if err == nil {
		t.Fatal("OpenEtcd on a closed port succeeded")
	}
}
