package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bolt is the embedded backend: one bbolt file for durable objects and the
// revision counter, registrations in memory. Registrations are not
// persisted on purpose: they belong to proxies connected to this process,
// and those re-register when they reconnect after a restart.
type Bolt struct {
	db     *bolt.DB
	notify *notifier

	// mu guards eph. Register and expiry bump the revision and change eph
	// under the write lock, and reads take both under the read lock, so a
	// reader never sees a revision without the registration it counts.
	mu     sync.RWMutex
	eph    map[string]*boltReg
	regSeq uint64
}

type boltReg struct {
	id  uint64
	obj Object
}

var (
	bucketMeta    = []byte("meta")
	bucketObjects = []byte("objects")
	keyRevision   = []byte("revision")
)

// BoltFile is the database's file name inside the data directory.
const BoltFile = "weft.db"

// OpenBolt opens (creating if needed) <dir>/weft.db. It fails fast if
// another process holds the file.
func OpenBolt(dir string) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dir, BoltFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: in use by another process (another weft control on this data dir?)", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketObjects} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return &Bolt{db: db, notify: newNotifier(), eph: map[string]*boltReg{}}, nil
}

var _ Store = (*Bolt)(nil)

// A stored value is the object's modification revision (8 bytes, big
// endian) followed by its JSON.
func encodeValue(rev int64, data []byte) []byte {
	v := make([]byte, 8+len(data))
	binary.BigEndian.PutUint64(v, uint64(rev))
	copy(v[8:], data)
	return v
}

func decodeValue(v []byte) (int64, []byte) {
	if len(v) < 8 {
		return 0, nil
	}
	return int64(binary.BigEndian.Uint64(v)), v[8:]
}

func readRev(tx *bolt.Tx) int64 {
	v := tx.Bucket(bucketMeta).Get(keyRevision)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func bumpRev(tx *bolt.Tx) (int64, error) {
	rev := readRev(tx) + 1
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(rev))
	return rev, tx.Bucket(bucketMeta).Put(keyRevision, v[:])
}

func (s *Bolt) Put(ctx context.Context, writes []Write) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for i := range writes {
		if err := checkObject(&writes[i].Object); err != nil {
			return 0, err
		}
	}
	var rev int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketObjects)
		if len(writes) == 0 {
			rev = readRev(tx)
			return nil
		}
		for _, w := range writes {
			if w.ExpectVersion == "" {
				continue
			}
			cur := "0"
			if v := b.Get([]byte(w.Object.Key())); v != nil {
				r, _ := decodeValue(v)
				cur = formatRev(r)
			}
			if cur != w.ExpectVersion {
				return &KeyError{Key: w.Object.Key(), Err: ErrConflict}
			}
		}
		var err error
		if rev, err = bumpRev(tx); err != nil {
			return err
		}
		for _, w := range writes {
			data := SetResourceVersion(w.Object.Data, "")
			if err := b.Put([]byte(w.Object.Key()), encodeValue(rev, data)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(writes) > 0 {
		s.notify.publish(rev)
	}
	return rev, nil
}

func (s *Bolt) Delete(ctx context.Context, keys []string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var rev int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketObjects)
		if len(keys) == 0 {
			rev = readRev(tx)
			return nil
		}
		for _, k := range keys {
			if b.Get([]byte(k)) == nil {
				return &KeyError{Key: k, Err: ErrNotFound}
			}
		}
		var err error
		if rev, err = bumpRev(tx); err != nil {
			return err
		}
		for _, k := range keys {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(keys) > 0 {
		s.notify.publish(rev)
	}
	return rev, nil
}

func (s *Bolt) Get(ctx context.Context, kind, namespace, name string) (*Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := kind + "/" + namespace + "/" + name
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r, ok := s.eph[key]; ok {
		return r.read(), nil
	}
	var obj *Object
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketObjects).Get([]byte(key))
		if v == nil {
			return &KeyError{Key: key, Err: ErrNotFound}
		}
		obj = boltObject(key, v)
		return nil
	})
	return obj, err
}

func boltObject(key string, v []byte) *Object {
	rev, data := decodeValue(v)
	kind, ns, name, _ := SplitKey(key)
	rv := formatRev(rev)
	return &Object{Kind: kind, Namespace: ns, Name: name, ResourceVersion: rv, Data: SetResourceVersion(data, rv)}
}

func (r *boltReg) read() *Object {
	o := r.obj
	o.Data = SetResourceVersion(o.Data, o.ResourceVersion)
	return &o
}

func (s *Bolt) List(ctx context.Context, kind string) ([]*Object, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	prefix := []byte(nil)
	if kind != "" {
		prefix = []byte(kind + "/")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	byKey := map[string]*Object{}
	var rev int64
	err := s.db.View(func(tx *bolt.Tx) error {
		rev = readRev(tx)
		c := tx.Bucket(bucketObjects).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			byKey[string(k)] = boltObject(string(k), v)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	for k, r := range s.eph {
		if kind == "" || r.obj.Kind == kind {
			byKey[k] = r.read()
		}
	}
	return sortedObjects(byKey), rev, nil
}

func sortedObjects(byKey map[string]*Object) []*Object {
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*Object, len(keys))
	for i, k := range keys {
		out[i] = byKey[k]
	}
	return out
}

func (s *Bolt) Register(ctx context.Context, obj Object, grace time.Duration) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkObject(&obj); err != nil {
		return nil, err
	}
	s.mu.Lock()
	var rev int64
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		rev, err = bumpRev(tx)
		return err
	})
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.regSeq++
	obj.ResourceVersion = formatRev(rev)
	obj.Ephemeral = true
	obj.Data = SetResourceVersion(obj.Data, "")
	r := &boltReg{id: s.regSeq, obj: obj}
	s.eph[obj.Key()] = r
	s.mu.Unlock()
	s.notify.publish(rev)
	return &boltLease{s: s, key: obj.Key(), id: r.id, grace: grace}, nil
}

type boltLease struct {
	s     *Bolt
	key   string
	id    uint64
	grace time.Duration
	once  sync.Once
}

func (l *boltLease) Release() {
	l.once.Do(func() { time.AfterFunc(l.grace, l.expire) })
}

// expire removes the registration unless it was replaced by a newer one
// for the same key.
func (l *boltLease) expire() {
	s := l.s
	s.mu.Lock()
	r, ok := s.eph[l.key]
	if !ok || r.id != l.id {
		s.mu.Unlock()
		return
	}
	var rev int64
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		rev, err = bumpRev(tx)
		return err
	})
	delete(s.eph, l.key)
	s.mu.Unlock()
	if err == nil {
		s.notify.publish(rev)
	}
}

func (s *Bolt) Watch(ctx context.Context) <-chan int64 {
	return s.notify.subscribe(ctx.Done())
}

func (s *Bolt) Close() error {
	s.notify.close()
	return s.db.Close()
}
