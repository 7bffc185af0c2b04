package proxy

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

type atomicInt = atomic.Int64

// replayBody lets a request body be sent again on retry. It keeps what has
// been read, up to a limit; past the limit the body streams on and can no
// longer be replayed, so a large upload is never retried half-sent.
type replayBody struct {
	mu       sync.Mutex
	src      io.ReadCloser
	buf      []byte
	limit    int64
	overflow bool
	srcDone  bool
	gen      int // bumped on rewind; stale views stop reading
	closed   bool
}

func newReplayBody(src io.ReadCloser, limit int64) *replayBody {
	if limit <= 0 {
		limit = 64 * 1024
	}
	return &replayBody{src: src, limit: limit}
}

var errStaleBody = errors.New("request body was rewound for a retry")

// view returns a reader for one attempt, starting at the beginning.
func (b *replayBody) view() io.ReadCloser {
	b.mu.Lock()
	defer b.mu.Unlock()
	return &bodyView{b: b, gen: b.gen}
}

// rewind prepares a retry. It fails once more than the limit was read.
func (b *replayBody) rewind() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.overflow || b.closed {
		return false
	}
	b.gen++
	return true
}

func (b *replayBody) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.src.Close()
	}
}

type bodyView struct {
	b   *replayBody
	gen int
	pos int
}

func (v *bodyView) Read(p []byte) (int, error) {
	b := v.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if v.gen != b.gen || b.closed {
		return 0, errStaleBody
	}
	if v.pos < len(b.buf) {
		n := copy(p, b.buf[v.pos:])
		v.pos += n
		return n, nil
	}
	if b.srcDone {
		return 0, io.EOF
	}
	n, err := b.src.Read(p)
	if n > 0 && !b.overflow {
		if int64(len(b.buf)+n) > b.limit {
			b.overflow = true
			b.buf = nil
		} else {
			b.buf = append(b.buf, p[:n]...)
			v.pos = len(b.buf)
		}
	}
	if err == io.EOF {
		b.srcDone = true
	}
	return n, err
}

// Close is a no-op: the transport closes each attempt's body, but the
// source must stay open for a retry. The forwarder closes it at the end.
func (v *bodyView) Close() error { return nil }
