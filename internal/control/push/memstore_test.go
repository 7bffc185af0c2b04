package push

import (
	"context"
	"sort"
	"strconv"
	"sync"
	"time"

	"weft.dev/weft/internal/control/store"
)

// memStore is a small in-memory store.Store for tests: durable objects and
// registrations in maps, one revision counter, one-slot watchers.
type memStore struct {
	mu       sync.Mutex
	rev      int64
	objs     map[string]store.Object
	eph      map[string]*memReg
	regSeq   uint64
	watchers map[chan int64]struct{}
	// listCalls counts List calls, for tests of coalescing.
	listCalls int
}

type memReg struct {
	id  uint64
	obj store.Object
}

func newMemStore() *memStore {
	return &memStore{objs: map[string]store.Object{}, eph: map[string]*memReg{}, watchers: map[chan int64]struct{}{}}
}

var _ store.Store = (*memStore)(nil)

func (m *memStore) bumpLocked() int64 {
	m.rev++
	for ch := range m.watchers {
		select {
		case <-ch:
		default:
		}
		ch <- m.rev
	}
	return m.rev
}

func (m *memStore) Put(_ context.Context, writes []store.Write) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, w := range writes {
		if w.ExpectVersion == "" {
			continue
		}
		cur := "0"
		if o, ok := m.objs[w.Object.Key()]; ok {
			cur = o.ResourceVersion
		}
		if cur != w.ExpectVersion {
			return 0, store.ErrConflict
		}
	}
	rev := m.bumpLocked()
	for _, w := range writes {
		o := w.Object
		o.ResourceVersion = strconv.FormatInt(rev, 10)
		m.objs[o.Key()] = o
	}
	return rev, nil
}

func (m *memStore) Delete(_ context.Context, keys []string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		if _, ok := m.objs[k]; !ok {
			return 0, store.ErrNotFound
		}
	}
	for _, k := range keys {
		delete(m.objs, k)
	}
	return m.bumpLocked(), nil
}

func (m *memStore) Get(_ context.Context, kind, ns, name string) (*store.Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := kind + "/" + ns + "/" + name
	if r, ok := m.eph[key]; ok {
		o := r.obj
		return &o, nil
	}
	if o, ok := m.objs[key]; ok {
		return &o, nil
	}
	return nil, store.ErrNotFound
}

func (m *memStore) List(_ context.Context, kind string) ([]*store.Object, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.listCalls++
	byKey := map[string]*store.Object{}
	for k, o := range m.objs {
		if kind == "" || o.Kind == kind {
			o := o
			byKey[k] = &o
		}
	}
	for k, r := range m.eph {
		if kind == "" || r.obj.Kind == kind {
			o := r.obj
			byKey[k] = &o
		}
	}
	out := make([]*store.Object, 0, len(byKey))
	for _, o := range byKey {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, m.rev, nil
}

func (m *memStore) Register(_ context.Context, obj store.Object, grace time.Duration) (store.Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rev := m.bumpLocked()
	m.regSeq++
	obj.ResourceVersion = strconv.FormatInt(rev, 10)
	obj.Ephemeral = true
	m.eph[obj.Key()] = &memReg{id: m.regSeq, obj: obj}
	return &memLease{m: m, key: obj.Key(), id: m.regSeq, grace: grace}, nil
}

type memLease struct {
	m     *memStore
	key   string
	id    uint64
	grace time.Duration
	once  sync.Once
}

func (l *memLease) Release() {
	l.once.Do(func() {
		time.AfterFunc(l.grace, func() {
			l.m.mu.Lock()
			defer l.m.mu.Unlock()
			if r, ok := l.m.eph[l.key]; ok && r.id == l.id {
				delete(l.m.eph, l.key)
				l.m.bumpLocked()
			}
		})
	})
}

func (m *memStore) registered(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.eph[key]
	return ok
}

func (m *memStore) Watch(ctx context.Context) <-chan int64 {
	ch := make(chan int64, 1)
	m.mu.Lock()
	m.watchers[ch] = struct{}{}
	m.mu.Unlock()
	out := make(chan int64)
	go func() {
		defer close(out)
		defer func() {
			m.mu.Lock()
			delete(m.watchers, ch)
			m.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case r := <-ch:
				select {
				case out <- r:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func (m *memStore) Close() error { return nil }
