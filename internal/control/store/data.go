package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// checkObject refuses identities that would break the key layout, which
// both backends split on "/".
func checkObject(o *Object) error {
	for _, part := range []struct{ what, v string }{{"kind", o.Kind}, {"namespace", o.Namespace}, {"name", o.Name}} {
		if part.v == "" {
			return fmt.Errorf("object %s: empty %s", o.Key(), part.what)
		}
		if strings.Contains(part.v, "/") {
			return fmt.Errorf("object %s: %s %q contains '/'", o.Key(), part.what, part.v)
		}
	}
	return nil
}

// SplitKey splits "Kind/namespace/name".
func SplitKey(key string) (kind, namespace, name string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// formatRev and parseRev convert between revisions and resourceVersions.
func formatRev(rev int64) string { return strconv.FormatInt(rev, 10) }

func parseRev(rv string) (int64, bool) {
	n, err := strconv.ParseInt(rv, 10, 64)
	return n, err == nil && n >= 0
}

// SetResourceVersion sets metadata.resourceVersion in a JSON object, or
// removes it when rv is empty. Data that is not a JSON object is returned
// as it is: the store does not own its shape.
func SetResourceVersion(data []byte, rv string) []byte {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		return data
	}
	var meta map[string]json.RawMessage
	if raw, ok := top["metadata"]; ok {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return data
		}
	}
	if rv == "" {
		if _, ok := meta["resourceVersion"]; !ok {
			return data
		}
		delete(meta, "resourceVersion")
	} else {
		if meta == nil {
			meta = map[string]json.RawMessage{}
		}
		meta["resourceVersion"], _ = json.Marshal(rv)
	}
	top["metadata"], _ = json.Marshal(meta)
	out, err := json.Marshal(top)
	if err != nil {
		return data
	}
	return out
}

// notifier fans revisions out to watchers, one slot per watcher: a new
// revision replaces one the watcher has not read yet, so a slow reader gets
// the newest, never a backlog.
type notifier struct {
	mu     sync.Mutex
	last   int64
	subs   map[*watcher]struct{}
	closed bool
}

type watcher struct {
	ch   chan int64
	once sync.Once
}

func (w *watcher) close() { w.once.Do(func() { close(w.ch) }) }

func newNotifier() *notifier { return &notifier{subs: map[*watcher]struct{}{}} }

func (n *notifier) subscribe(done <-chan struct{}) <-chan int64 {
	w := &watcher{ch: make(chan int64, 1)}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		w.close()
		return w.ch
	}
	n.subs[w] = struct{}{}
	n.mu.Unlock()
	go func() {
		<-done
		n.mu.Lock()
		delete(n.subs, w)
		w.close()
		n.mu.Unlock()
	}()
	return w.ch
}

// publish sends rev to every watcher. Revisions never go backwards even if
// two writers publish out of order.
func (n *notifier) publish(rev int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if rev < n.last {
		rev = n.last
	}
	n.last = rev
	for w := range n.subs {
		select {
		case <-w.ch:
		default:
		}
		w.ch <- rev
	}
}

// close ends every watch; used when the store closes.
func (n *notifier) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	for w := range n.subs {
		w.close()
		delete(n.subs, w)
	}
}
