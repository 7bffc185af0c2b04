package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/resource"
)

// Source hands a gateway its config. FileSource reads a file; a control
// plane source will receive the same compile.Gateway over the config
// stream.
type Source interface {
	// Initial returns the config to start with; the gateway does not start
	// without one.
	Initial() (*compile.Gateway, error)
	// Run calls apply with every later version until ctx ends. A version
	// apply refuses is reported and the gateway keeps the one it has.
	Run(ctx context.Context, apply func(*compile.Gateway) error)
}

// FileSource compiles a resource file for one Gateway, and again when the
// file changes or Reload receives.
type FileSource struct {
	Path    string
	Options compile.GatewayOptions
	Reload  <-chan os.Signal
	Log     *slog.Logger
	// OnApplied and OnError are told of each applied and refused version.
	OnApplied func(*compile.Gateway)
	OnError   func(error)
	last      []byte
}

// pollInterval is how often the file is checked for changes.
const pollInterval = time.Second

// LoadGateway reads, validates and compiles a file for one Gateway.
func LoadGateway(name string, data []byte, opts compile.GatewayOptions) (*compile.Gateway, error) {
	objs, err := resource.Decode(name, data)
	if err != nil {
		return nil, err
	}
	gw, err := compile.CompileGateway(resource.NewSet(objs), opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return gw, nil
}

func (s *FileSource) Initial() (*compile.Gateway, error) {
	data, err := os.ReadFile(s.Path)
	if err != nil {
		return nil, err
	}
	gw, err := LoadGateway(s.Path, data, s.Options)
	if err != nil {
		return nil, err
	}
	s.last = data
	return gw, nil
}

func (s *FileSource) Run(ctx context.Context, apply func(*compile.Gateway) error) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.Reload:
			forced = true
		}
		data, err := os.ReadFile(s.Path)
		if err != nil {
			s.refuse(err)
			continue
		}
		if !forced && bytes.Equal(data, s.last) {
			continue
		}
		s.last = data // a bad file is reported once, not every poll
		gw, err := LoadGateway(s.Path, data, s.Options)
		if err == nil {
			err = apply(gw)
		}
		if err != nil {
			s.refuse(err)
			continue
		}
		s.Log.Info("config reloaded", "file", s.Path, "version", gw.Version, "listeners", len(gw.Listeners))
		if s.OnApplied != nil {
			s.OnApplied(gw)
		}
	}
}

func (s *FileSource) refuse(err error) {
	s.Log.Error("config refused; keeping the previous config", "file", s.Path, "err", err.Error())
	if s.OnError != nil {
		s.OnError(err)
	}
}
