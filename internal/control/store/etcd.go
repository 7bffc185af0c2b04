package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Etcd is the shared backend for several control plane replicas. Keys:
//
//	<prefix>resources/<Kind>/<namespace>/<name>   applied objects
//	<prefix>ephemeral/<Kind>/<namespace>/<name>   registrations, on a lease
//
// The store revision is etcd's revision and an object's resourceVersion is
// its key's ModRevision, so every replica agrees on both.
type Etcd struct {
	cli    *clientv3.Client
	prefix string
	notify *notifier

	ctx    context.Context // ends on Close: stops keep-alives and the watch
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// EtcdOptions configure OpenEtcd.
type EtcdOptions struct {
	Endpoints []string
	// Prefix of every key; default "/weft/". Replicas of one mesh share it.
	Prefix string
	// DialTimeout bounds the first contact; default 5s.
	DialTimeout time.Duration
}

// DefaultEtcdPrefix is where weft keeps its keys unless told otherwise.
const DefaultEtcdPrefix = "/weft/"

// OpenEtcd connects to etcd and checks that it answers.
func OpenEtcd(ctx context.Context, opts EtcdOptions) (*Etcd, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultEtcdPrefix
	}
	if !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   opts.Endpoints,
		DialTimeout: opts.DialTimeout,
		Logger:      zap.NewNop(),
		// Fail requests fast when no endpoint answers instead of hanging
		// on a dead connection.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	if _, err := cli.Get(pctx, opts.Prefix+"resources/", clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd %s: not reachable: %w", strings.Join(opts.Endpoints, ","), err)
	}
	s := &Etcd{cli: cli, prefix: opts.Prefix, notify: newNotifier()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.watchLoop()
	return s, nil
}

var _ Store = (*Etcd)(nil)

func (s *Etcd) resKey(key string) string { return s.prefix + "resources/" + key }
func (s *Etcd) ephKey(key string) string { return s.prefix + "ephemeral/" + key }

func (s *Etcd) Put(ctx context.Context, writes []Write) (int64, error) {
	if len(writes) == 0 {
		return s.currentRev(ctx)
	}
	var cmps []clientv3.Cmp
	var checks []Write
	var ops, elseOps []clientv3.Op
	for _, w := range writes {
		if err := checkObject(&w.Object); err != nil {
			return 0, err
		}
		k := s.resKey(w.Object.Key())
		if w.ExpectVersion != "" {
			ev, ok := parseRev(w.ExpectVersion)
			if !ok {
				return 0, &KeyError{Key: w.Object.Key(), Err: ErrConflict}
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", ev))
			elseOps = append(elseOps, clientv3.OpGet(k, clientv3.WithKeysOnly()))
			checks = append(checks, w)
		}
		ops = append(ops, clientv3.OpPut(k, string(SetResourceVersion(w.Object.Data, ""))))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(elseOps...).Commit()
	if err != nil {
		return 0, fmt.Errorf("etcd put: %w", err)
	}
	if !resp.Succeeded {
		for i, r := range resp.Responses {
			var cur int64
			if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
				cur = kvs[0].ModRevision
			}
			if formatRev(cur) != checks[i].ExpectVersion {
				return 0, &KeyError{Key: checks[i].Object.Key(), Err: ErrConflict}
			}
		}
		return 0, ErrConflict
	}
	return resp.Header.Revision, nil
}

func (s *Etcd) Delete(ctx context.Context, keys []string) (int64, error) {
	if len(keys) == 0 {
		return s.currentRev(ctx)
	}
	var cmps []clientv3.Cmp
	var ops, elseOps []clientv3.Op
	for _, key := range keys {
		k := s.resKey(key)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), ">", 0))
		ops = append(ops, clientv3.OpDelete(k))
		elseOps = append(elseOps, clientv3.OpGet(k, clientv3.WithCountOnly()))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(elseOps...).Commit()
	if err != nil {
		return 0, fmt.Errorf("etcd delete: %w", err)
	}
	if !resp.Succeeded {
		for i, r := range resp.Responses {
			if r.GetResponseRange().GetCount() == 0 {
				return 0, &KeyError{Key: keys[i], Err: ErrNotFound}
			}
		}
		return 0, ErrNotFound
	}
	return resp.Header.Revision, nil
}

func (s *Etcd) currentRev(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.prefix+"resources/", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("etcd: %w", err)
	}
	return resp.Header.Revision, nil
}

func (s *Etcd) Get(ctx context.Context, kind, namespace, name string) (*Object, error) {
	key := kind + "/" + namespace + "/" + name
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.resKey(key)), clientv3.OpGet(s.ephKey(key))).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcd get: %w", err)
	}
	var obj *Object
	for i, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().GetKvs() {
			obj = etcdObject(key, kv, i == 1)
		}
	}
	if obj == nil {
		return nil, &KeyError{Key: key, Err: ErrNotFound}
	}
	return obj, nil
}

func etcdObject(key string, kv *mvccpb.KeyValue, ephemeral bool) *Object {
	kind, ns, name, _ := SplitKey(key)
	rv := formatRev(kv.ModRevision)
	return &Object{Kind: kind, Namespace: ns, Name: name, ResourceVersion: rv, Ephemeral: ephemeral,
		Data: SetResourceVersion(kv.Value, rv)}
}

func (s *Etcd) List(ctx context.Context, kind string) ([]*Object, int64, error) {
	sub := ""
	if kind != "" {
		sub = kind + "/"
	}
	resPrefix, ephPrefix := s.resKey(sub), s.ephKey(sub)
	// One transaction: both ranges are read at the same revision.
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(resPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(ephPrefix, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, 0, fmt.Errorf("etcd list: %w", err)
	}
	byKey := map[string]*Object{}
	for i, prefix := range []string{s.resKey(""), s.ephKey("")} {
		for _, kv := range resp.Responses[i].GetResponseRange().GetKvs() {
			key := strings.TrimPrefix(string(kv.Key), prefix)
			if _, _, _, ok := SplitKey(key); !ok {
				continue // not ours
			}
			byKey[key] = etcdObject(key, kv, i == 1)
		}
	}
	return sortedObjects(byKey), resp.Header.Revision, nil
}

// Register puts the object on a lease whose TTL is the grace period
// (etcd rounds it up to whole seconds, at least its minimum TTL), kept
// alive while held. If this replica dies, keep-alives stop and etcd removes
// the object when the TTL runs out; every replica's watch sees that.
func (s *Etcd) Register(ctx context.Context, obj Object, grace time.Duration) (Lease, error) {
	if err := checkObject(&obj); err != nil {
		return nil, err
	}
	l := &etcdLease{
		s:     s,
		key:   s.ephKey(obj.Key()),
		value: string(SetResourceVersion(obj.Data, "")),
		ttl:   int64(math.Ceil(grace.Seconds())),
		grace: grace,
	}
	if l.ttl < 1 {
		l.ttl = 1
	}
	id, err := l.grantAndPut(ctx, false)
	if err != nil {
		return nil, err
	}
	l.id = id
	l.hctx, l.stop = context.WithCancel(s.ctx)
	s.wg.Add(1)
	go l.hold()
	return l, nil
}

type etcdLease struct {
	s     *Etcd
	key   string
	value string
	ttl   int64
	grace time.Duration

	hctx context.Context
	stop context.CancelFunc
	once sync.Once

	mu sync.Mutex
	id clientv3.LeaseID
}

// grantAndPut makes a lease and puts the object on it. onlyIfAbsent is for
// re-creating a lost lease: if the key exists meanwhile, someone else (the
// proxy, through another replica) registered it again, and that one wins.
func (l *etcdLease) grantAndPut(ctx context.Context, onlyIfAbsent bool) (clientv3.LeaseID, error) {
	g, err := l.s.cli.Grant(ctx, l.ttl)
	if err != nil {
		return 0, fmt.Errorf("etcd lease: %w", err)
	}
	put := clientv3.OpPut(l.key, l.value, clientv3.WithLease(g.ID))
	txn := l.s.cli.Txn(ctx)
	if onlyIfAbsent {
		txn = txn.If(clientv3.Compare(clientv3.CreateRevision(l.key), "=", 0))
	}
	resp, err := txn.Then(put).Commit()
	if err == nil && !resp.Succeeded {
		err = errKeyTaken
	}
	if err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		l.s.cli.Revoke(rctx, g.ID)
		cancel()
		if errors.Is(err, errKeyTaken) {
			return 0, err
		}
		return 0, fmt.Errorf("etcd register: %w", err)
	}
	return g.ID, nil
}

var errKeyTaken = errors.New("registered again elsewhere")

// hold keeps the lease alive until released or the store closes. A lease
// lost while etcd was unreachable is made again.
func (l *etcdLease) hold() {
	defer l.s.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		l.mu.Lock()
		id := l.id
		l.mu.Unlock()
		ch, err := l.s.cli.KeepAlive(l.hctx, id)
		if err == nil {
			for range ch {
				backoff = 100 * time.Millisecond
			}
		}
		if l.hctx.Err() != nil {
			return
		}
		// The lease expired (etcd was unreachable for longer than the TTL).
		for {
			select {
			case <-l.hctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			ctx, cancel := context.WithTimeout(l.hctx, 5*time.Second)
			nid, err := l.grantAndPut(ctx, true)
			cancel()
			if errors.Is(err, errKeyTaken) {
				return
			}
			if err == nil {
				l.mu.Lock()
				l.id = nid
				l.mu.Unlock()
				break
			}
		}
	}
}

// Release refreshes the lease one last time, stops keeping it alive and
// revokes it when grace has passed (if this replica dies first, the TTL
// does the same).
func (l *etcdLease) Release() {
	l.once.Do(func() {
		go func() {
			l.mu.Lock()
			id := l.id
			l.mu.Unlock()
			ctx, cancel := context.WithTimeout(l.s.ctx, 5*time.Second)
			l.s.cli.KeepAliveOnce(ctx, id)
			cancel()
			l.stop()
			time.AfterFunc(l.grace, func() {
				ctx, cancel := context.WithTimeout(l.s.ctx, 5*time.Second)
				defer cancel()
				l.s.cli.Revoke(ctx, id)
			})
		}()
	})
}

// watchLoop turns etcd watch events under the prefix into revisions for
// Watch. After the watch breaks (compaction, lost leader) it starts again
// and publishes the current revision, so watchers re-read whatever they
// might have missed.
func (s *Etcd) watchLoop() {
	defer s.wg.Done()
	defer s.notify.close()
	first := true
	for s.ctx.Err() == nil {
		if !first {
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			if rev, err := s.currentRev(ctx); err == nil {
				s.notify.publish(rev)
			}
			cancel()
		}
		first = false
		wch := s.cli.Watch(clientv3.WithRequireLeader(s.ctx), s.prefix, clientv3.WithPrefix())
		for resp := range wch {
			if resp.Err() != nil {
				break
			}
			if len(resp.Events) > 0 {
				rev := resp.Header.Revision
				for _, ev := range resp.Events {
					rev = max(rev, ev.Kv.ModRevision)
				}
				s.notify.publish(rev)
			}
		}
		select {
		case <-s.ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *Etcd) Watch(ctx context.Context) <-chan int64 {
	return s.notify.subscribe(ctx.Done())
}

// Close stops keep-alives (registrations then expire after their TTL, so
// a replica that shuts down does not drop its proxies' workloads before
// they re-register elsewhere) and disconnects.
func (s *Etcd) Close() error {
	s.cancel()
	s.wg.Wait()
	return s.cli.Close()
}
