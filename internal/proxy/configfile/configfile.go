// Package configfile runs a proxy from a resource file instead of a control
// plane: it decodes, validates and compiles the file, applies it, and
// re-applies it when the file changes or on SIGHUP. A file that fails at any
// step is refused with the reason and the previous config keeps serving.
package configfile

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/resource"
)

// pollInterval is how often the file is checked for changes. Polling (not
// inotify) also sees editors that replace the file and bind-mounted
// ConfigMaps that swap a symlink.
const pollInterval = time.Second

// loadGCPercent is the GC percent while a large file loads. Decoding makes
// garbage in proportion to the file (about 63 MB for 1,000 services, a
// 420 KB file), and at the default of 100 the heap grows to twice what the
// load keeps live; what the load keeps then ends up spread over that
// larger heap. Half the headroom costs a few more collections for a peak
// resident set about 4.5 MB lower and an idle one about 0.5 MB lower.
const loadGCPercent = 50

// lowGCAbove is the file size from which a load runs at loadGCPercent.
// Below it (about 150 services) the load's garbage is small, and a lower
// GC percent would also lower the runtime's minimum heap and start
// collections a small proxy never needs.
const lowGCAbove = 64 << 10

// lowGC lowers the GC percent to loadGCPercent for loading a file of size
// bytes, unless the file is small or the percent lower already or off,
// and returns what restores it.
func lowGC(size int) (restore func()) {
	if size < lowGCAbove {
		return func() {}
	}
	old := debug.SetGCPercent(loadGCPercent)
	if old < 0 || old <= loadGCPercent {
		debug.SetGCPercent(old)
		return func() {}
	}
	return func() { debug.SetGCPercent(old) }
}

// Load reads and compiles the file at path.
func Load(path string, opts compile.Options) (*compile.Config, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := Compile(path, data, opts)
	return cfg, data, err
}

// Compile decodes, validates and compiles file contents.
func Compile(name string, data []byte, opts compile.Options) (*compile.Config, error) {
	objs, err := resource.Decode(name, data)
	if err != nil {
		return nil, err
	}
	cfg, err := compile.Compile(resource.NewSet(objs), opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

// Watcher keeps a proxy's config in step with a file.
type Watcher struct {
	Path string
	// Options say which workload the config is compiled for.
	Options compile.Options
	Apply   func(*compile.Config) error
	// OnError is told of every refused version (after it is logged).
	OnError func(error)
	Log     *slog.Logger
	// sum is the hash of the last version handled (applied or refused):
	// a poll compares the file against it without keeping a copy of the
	// file, and without allocating, so an idle proxy makes no garbage.
	sum  [sha256.Size]byte
	hash hash.Hash
	buf  []byte
}

// LoadInitial loads the file once; the proxy must not start without it.
func (w *Watcher) LoadInitial() error {
	data, err := os.ReadFile(w.Path)
	if err != nil {
		return err
	}
	w.sum = sha256.Sum256(data)
	defer lowGC(len(data))()
	// The file is not needed past decoding: nothing keeps it while the
	// config compiles and applies, the peak of a load.
	cfg, err := Compile(w.Path, data, w.Options)
	if err != nil {
		return err
	}
	if err := w.Apply(cfg); err != nil {
		return fmt.Errorf("%s: %w", w.Path, err)
	}
	w.Log.Info("config loaded", "file", w.Path, "version", cfg.Version, "services", len(cfg.Services))
	return nil
}

// Run re-applies the file on change or when reload receives, until ctx ends.
func (w *Watcher) Run(ctx context.Context, reload <-chan os.Signal) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-reload:
			forced = true
		}
		w.check(forced)
	}
}

func (w *Watcher) check(forced bool) {
	if !forced {
		sum, err := w.fileSum()
		if err != nil {
			w.refuse(err)
			return
		}
		if sum == w.sum {
			return
		}
	}
	data, err := os.ReadFile(w.Path)
	if err != nil {
		w.refuse(err)
		return
	}
	w.sum = sha256.Sum256(data) // a bad file is reported once, not every poll
	defer lowGC(len(data))()
	cfg, err := Compile(w.Path, data, w.Options)
	if err == nil {
		err = w.Apply(cfg)
	}
	if err != nil {
		w.refuse(err)
		return
	}
	w.Log.Info("config reloaded", "file", w.Path, "version", cfg.Version, "services", len(cfg.Services))
}

// fileSum hashes the file as it is now, reading it through a buffer kept
// from one poll to the next.
func (w *Watcher) fileSum() (sum [sha256.Size]byte, err error) {
	f, err := os.Open(w.Path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	if w.hash == nil {
		w.hash, w.buf = sha256.New(), make([]byte, 32<<10)
	}
	w.hash.Reset()
	for {
		n, err := f.Read(w.buf)
		w.hash.Write(w.buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return sum, err
		}
	}
	w.hash.Sum(sum[:0])
	return sum, nil
}

func (w *Watcher) refuse(err error) {
	w.Log.Error("config refused; keeping the previous config", "file", w.Path, "err", err.Error())
	if w.OnError != nil {
		w.OnError(err)
	}
}
