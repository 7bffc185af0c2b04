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
	if rv != "" {
		// Reads fill in the version of every object they return, so this
		// is on the path of every List: insert it without decoding when
		// metadata has none yet, which is how the store keeps objects.
		if at, empty, ok := metadataInsertPoint(data); ok {
			field := `"resourceVersion":` + strconv.Quote(rv)
			if !empty {
				field += ","
			}
			out := make([]byte, 0, len(data)+len(field))
			out = append(out, data[:at]...)
			out = append(out, field...)
			return append(out, data[at:]...)
		}
	}
	return setResourceVersionSlow(data, rv)
}

func setResourceVersionSlow(data []byte, rv string) []byte {
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

// metadataInsertPoint finds where a field can go in the top-level
// "metadata" object of a JSON object: just after its '{'. ok is false when
// there is no such object, when it already has a resourceVersion, or when
// the JSON is not plainly what it seems (escaped or repeated keys); callers
// then take the slow path.
func metadataInsertPoint(data []byte) (at int, empty, ok bool) {
	meta := -1 // offset of the metadata value
	okObject := walkObject(data, skipSpace(data, 0), func(key string, value int) bool {
		if key == "metadata" {
			if meta >= 0 {
				return false
			}
			meta = value
		}
		return true
	})
	if !okObject || meta < 0 || data[meta] != '{' {
		return 0, false, false
	}
	n := 0
	okMeta := walkObject(data, meta, func(key string, _ int) bool {
		n++
		return key != "resourceVersion"
	})
	if !okMeta {
		return 0, false, false
	}
	return meta + 1, n == 0, true
}

// walkObject calls fn with each key of the object at data[i] and the
// offset of its value, and reports whether the object is well formed (as
// far as this walk checks) and fn accepted every key.
func walkObject(data []byte, i int, fn func(key string, value int) bool) bool {
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return true
	}
	for {
		key, next, ok := readKey(data, skipSpace(data, i))
		if !ok {
			return false
		}
		i = skipSpace(data, next)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		if !fn(key, i) {
			return false
		}
		if i, ok = skipValue(data, i); !ok {
			return false
		}
		i = skipSpace(data, i)
		if i < len(data) && data[i] == '}' {
			return true
		}
		if i >= len(data) || data[i] != ',' {
			return false
		}
		i++
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// readKey reads a string without escapes (every key weft writes); one
// with escapes sends the caller to the slow path.
func readKey(data []byte, i int) (string, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			return "", 0, false
		case '"':
			return string(data[i+1 : j]), j + 1, true
		}
	}
	return "", 0, false
}

// skipValue returns the index just past the JSON value at i.
func skipValue(data []byte, i int) (int, bool) {
	if i >= len(data) {
		return 0, false
	}
	switch data[i] {
	case '"':
		for j := i + 1; j < len(data); j++ {
			switch data[j] {
			case '\\':
				j++
			case '"':
				return j + 1, true
			}
		}
		return 0, false
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end, ok := skipValue(data, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	default: // number, true, false, null
		j := i
		for j < len(data) && !strings.ContainsRune(",}] \t\n\r", rune(data[j])) {
			j++
		}
		return j, j > i
	}
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
