package telemetry

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Access log lines are encoded by hand into one shared buffer (no fmt, no
// reflection, no allocation per line) and written out in batches by one
// writer goroutine, woken when the buffer passes flushAt or flushEvery
// after the first unwritten line: no request ever waits on the sink. While
// a write is in progress lines pile up to maxPending; a sink that blocks
// (a pipe nobody reads) makes the log drop lines beyond that, as Envoy's
// does, and never holds up traffic.
const (
	flushAt       = 32 * 1024
	maxPending    = 512 * 1024
	flushEvery    = 200 * time.Millisecond
	maxFieldBytes = 4096 // a longer path or header value is cut, marked "..."
)

type accessLog struct {
	w           io.Writer
	sampleBelow uint64

	mu      sync.Mutex // guards buf, spare, armed, dropped
	buf     []byte
	spare   []byte
	armed   bool
	dropped int64
	timer   *time.Timer

	wmu    sync.Mutex    // serialises writes to w
	kick   chan struct{} // wakes the writer; one slot, never blocks a sender
	stop   chan struct{}
	done   chan struct{} // the writer goroutine ended
	closed chan struct{} // the last lines are written
	once   sync.Once
}

func newAccessLog(w io.Writer, sampling float64) *accessLog {
	l := &accessLog{
		w:           w,
		sampleBelow: ratioBound(sampling),
		buf:         make([]byte, 0, 2*flushAt),
		spare:       make([]byte, 0, 2*flushAt),
		kick:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
		closed:      make(chan struct{}),
	}
	l.timer = time.AfterFunc(time.Hour, l.wake)
	l.timer.Stop()
	go l.run()
	return l
}

// sampled says whether the request of trace t is logged.
func (l *accessLog) sampled(t TraceID) bool { return inSample(t, l.sampleBelow) }

// lineEncoder appends one JSON line, newline included.
type lineEncoder interface{ appendLine([]byte) []byte }

// write appends one line and schedules its writing.
func (l *accessLog) write(e lineEncoder) {
	l.mu.Lock()
	if len(l.buf) >= maxPending {
		l.dropped++
		l.mu.Unlock()
		return
	}
	l.buf = e.appendLine(l.buf)
	full := len(l.buf) >= flushAt
	if !full && !l.armed {
		l.armed = true
		l.timer.Reset(flushEvery)
	}
	l.mu.Unlock()
	if full {
		l.wake()
	}
}

func (l *accessLog) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *accessLog) run() {
	defer close(l.done)
	for {
		select {
		case <-l.kick:
			l.flush()
		case <-l.stop:
			return
		}
	}
}

// flush writes out what is buffered.
func (l *accessLog) flush() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	b := l.buf
	l.buf = l.spare[:0]
	l.armed = false
	l.mu.Unlock()
	if len(b) > 0 {
		// A failing sink (closed stdout) loses lines, never requests.
		_, _ = l.w.Write(b)
	}
	l.mu.Lock()
	l.spare = b[:0] // at most maxPending plus a line, so kept as grown
	l.mu.Unlock()
}

// close writes what is left and stops the writer, giving up when ctx
// ends (a sink that never takes the bytes must not hold up exit).
func (l *accessLog) close(ctx context.Context) error {
	l.once.Do(func() {
		l.timer.Stop()
		close(l.stop)
		go func() {
			<-l.done
			l.flush()
			if s, ok := l.w.(interface{ Sync() error }); ok {
				_ = s.Sync()
			}
			close(l.closed)
		}()
	})
	select {
	case <-l.closed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("access log: %w", ctx.Err())
	}
}

// JSON encoding helpers. appendString escapes per RFC 8259: quotes,
// backslashes and control characters; invalid UTF-8 becomes U+FFFD, so a
// line is always valid JSON whatever bytes a client sent.

const hexDigits = "0123456789abcdef"

func appendKey(b []byte, key string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendStringField(b []byte, key, v string) []byte {
	return appendString(appendKey(b, key), v)
}

func appendIntField(b []byte, key string, v int64) []byte {
	return strconv.AppendInt(appendKey(b, key), v, 10)
}

// appendMillis writes d in milliseconds with microsecond precision.
func appendMillisField(b []byte, key string, d time.Duration) []byte {
	b = appendKey(b, key)
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return b
}

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s, maxFieldBytes)
	return append(b, '"')
}

// appendEscaped writes s escaped, without quotes, cut to max bytes (marked
// "...").
func appendEscaped(b []byte, s string, max int) []byte {
	cut := false
	if len(s) > max {
		s, cut = s[:max], true
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			if cut && !utf8.FullRuneInString(s[i:]) {
				// A rune split by the cut: drop its head.
				start = len(s)
				break
			}
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	if cut {
		b = append(b, "..."...)
	}
	return b
}

// appendHex writes src as lower-case hex.
func appendHex(b []byte, src []byte) []byte {
	for _, c := range src {
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

// appendStart opens a line with its start time, UTC, in microseconds.
func appendStart(b []byte, t time.Time) []byte {
	b = append(b, `{"start_time":"`...)
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	return append(b, '"')
}
