// Package push is the control plane's push server: the gRPC stream every
// proxy holds open (api/mesh/v1). It registers each proxy's Workload in the
// store for as long as its stream lives, watches the store, compiles the
// mesh once per revision (debounced and coalesced), and sends each proxy
// only what changed in its own scope: a snapshot on connect, then deltas.
// It tracks every proxy's ACKs and NACKs for `weft status`.
//
// Data flow: store.Watch -> debounce -> List + compile (view.go) -> wake
// every stream -> each stream's sender picks the newest view and sends its
// delta (stream.go). A slow proxy never holds up the others and never gets a
// backlog: when it catches up it gets the newest config (Consul's
// deliverLatest, Istio's push queue).
package push

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/control/store"
)

// Defaults of Options.
const (
	DefaultGrace          = 10 * time.Second
	DefaultDebounce       = 50 * time.Millisecond
	DefaultDebounceMax    = 250 * time.Millisecond
	DefaultStatusInterval = time.Second
	DefaultSettle         = 7 * time.Second
)

// Options configure a Server.
type Options struct {
	// JoinToken is what proxies must present ("authorization: Bearer
	// <token>"). Empty disables the check (tests only).
	JoinToken string
	// Grace is how long a proxy's Workload outlives its stream, so a
	// reconnecting proxy's endpoints do not flap. Default 10s.
	Grace time.Duration
	// Debounce is the quiet time after a store change before the mesh is
	// recompiled, so a burst of changes makes one push; DebounceMax bounds
	// the wait under a steady stream of changes.
	Debounce    time.Duration
	DebounceMax time.Duration
	// Replica names this control plane replica in proxy status. Default:
	// the host name and the listening address.
	Replica string
	// StatusInterval is how often this replica's proxy status is written to
	// the store (when it changed) for other replicas to read. Default 1s.
	StatusInterval time.Duration
	// Settle is how long after start a proxy that already holds a config
	// (it reconnects after a control plane restart) waits for its first
	// update, so that the other proxies have re-registered their workloads
	// first: otherwise it would be sent a mesh with endpoints missing. It
	// keeps serving its config meanwhile. New proxies are not held. Default
	// 7s: longer than the proxies' reconnect backoff cap (5s), so every
	// proxy has tried again by then; negative disables.
	Settle time.Duration
	// MaxConcurrentBig bounds how many large updates (snapshots of big
	// scopes) are being sent at once, which bounds the memory their
	// encoding takes. Default 8.
	MaxConcurrentBig int
	// Authorize, when set, admits a proxy once its Hello arrived; its error
	// (a gRPC status) ends the stream. The control plane checks there that
	// the proxy's client certificate names the identity its Hello
	// registers.
	Authorize func(ctx context.Context, hello *meshv1.Hello) error
	// ServerOptions are added to the gRPC server's, e.g. grpc.Creds for
	// TLS. Without credentials the server speaks plain TCP.
	ServerOptions []grpc.ServerOption
	Logger        *slog.Logger
}

// Server is the push server. Create with New, run with Serve.
type Server struct {
	st   store.Store
	opts Options
	log  *slog.Logger
	grpc *grpc.Server

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	startedAt time.Time
	current   atomic.Pointer[view]
	viewReady chan struct{} // closed when the first view is built
	readyOnce sync.Once

	mu      sync.RWMutex
	streams map[*proxyStream]struct{}
	started bool
	replica string

	statusDirty chan struct{} // 1-slot: this replica's status changed
	statusWake  chan struct{} // 1-slot: a view with new route status (status_write.go)
	bigSends    chan struct{} // slots for large updates
	metrics     Metrics
}

// Metrics are counters for the control plane's own telemetry.
type Metrics struct {
	Builds      atomic.Int64 // views compiled
	BuildErrors atomic.Int64
	Pushes      atomic.Int64 // updates sent
	Acks        atomic.Int64
	Nacks       atomic.Int64
	// LastBuild is how long the last compile took, in nanoseconds.
	LastBuild atomic.Int64
}

// New makes a server over st. It does nothing until Serve.
func New(st store.Store, opts Options) *Server {
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.DebounceMax < opts.Debounce {
		opts.DebounceMax = max(DefaultDebounceMax, opts.Debounce)
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = DefaultStatusInterval
	}
	if opts.Settle == 0 {
		opts.Settle = DefaultSettle
	}
	if opts.MaxConcurrentBig <= 0 {
		opts.MaxConcurrentBig = 8
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		st:          st,
		opts:        opts,
		log:         log.With("component", "push"),
		viewReady:   make(chan struct{}),
		streams:     map[*proxyStream]struct{}{},
		statusDirty: make(chan struct{}, 1),
		statusWake:  make(chan struct{}, 1),
		bigSends:    make(chan struct{}, opts.MaxConcurrentBig),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	sopts := append([]grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// Proxies ping every 20s to notice a dead control plane quickly.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(4 << 20),
	}, opts.ServerOptions...)
	s.grpc = grpc.NewServer(sopts...)
	meshv1.RegisterMeshServer(s.grpc, &meshService{s: s})
	return s
}

// Metrics returns the server's counters.
func (s *Server) Metrics() *Metrics { return &s.metrics }

// Connected is how many proxies hold a stream to this replica.
func (s *Server) Connected() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.streams)
}

// RegisterService adds another service to the proxies' gRPC port (the
// CA's Identity service); call it before Serve. It makes the Server a
// grpc.ServiceRegistrar.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(desc, impl)
}

// Serve accepts proxies on ln until Stop. It starts the store watch on its
// first call; several listeners may be served at once.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return errors.New("push: server stopped")
	}
	if !s.started {
		s.started = true
		s.startedAt = time.Now()
		s.replica = s.opts.Replica
		if s.replica == "" {
			host, _ := os.Hostname()
			s.replica = strings.ReplaceAll(host+"@"+ln.Addr().String(), "/", "_")
		}
		s.wg.Add(3)
		go s.watch()
		go s.writeStatus()
		go s.writeStatuses()
	}
	s.mu.Unlock()
	err := s.grpc.Serve(ln)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop ends every stream and the store watch. Proxies' Workloads stay for
// their grace period, so they survive a control plane restart.
func (s *Server) Stop() {
	s.cancel()
	s.grpc.Stop()
	s.wg.Wait()
}

// Replica is this replica's name in proxy status ("" before Serve).
func (s *Server) Replica() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.replica
}

// watch rebuilds the view on every (debounced) store revision and wakes
// every stream.
func (s *Server) watch() {
	defer s.wg.Done()
	b := newBuilder(s.log)
	revs := s.st.Watch(s.ctx)
	// Build once at start, whatever the watch says: the store may be idle.
	pending := true
	var first time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case _, ok := <-revs:
			if !ok {
				if s.ctx.Err() == nil {
					s.log.Error("store watch ended; proxies get no further updates from this replica")
				}
				return
			}
			now := time.Now()
			if !pending {
				pending, first = true, now
			}
			// Debounce: wait for a quiet moment, but never longer than
			// DebounceMax after the first change of the burst.
			wait := min(s.opts.Debounce, s.opts.DebounceMax-now.Sub(first))
			timer.Reset(max(wait, 0))
		case <-timer.C:
			if !pending {
				continue
			}
			pending = false
			if err := s.rebuild(b); err != nil {
				s.metrics.BuildErrors.Add(1)
				s.log.Error("mesh not recompiled; proxies keep their config", "error", err)
				// Try again later: a store blip should not freeze pushes.
				pending, first = true, time.Now()
				timer.Reset(time.Second)
			}
		}
	}
}

func (s *Server) rebuild(b *builder) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	objs, rev, err := s.st.List(ctx, "")
	cancel()
	if err != nil {
		return fmt.Errorf("list store: %w", err)
	}
	prev := s.current.Load()
	v, err := b.build(objs, rev)
	if err != nil {
		return err
	}
	if v == prev {
		return nil // only internal objects changed
	}
	s.metrics.Builds.Add(1)
	s.metrics.LastBuild.Store(int64(time.Since(start)))
	s.current.Store(v)
	s.readyOnce.Do(func() { close(s.viewReady) })
	if prev == nil || v.statuses != prev.statuses {
		s.wakeStatus()
	}
	s.log.Debug("mesh compiled", "revision", rev, "resources", len(v.res), "took", time.Since(start))
	s.mu.RLock()
	for ps := range s.streams {
		ps.wake()
	}
	s.mu.RUnlock()
	return nil
}

// meshService implements meshv1.MeshServer.
type meshService struct {
	meshv1.UnimplementedMeshServer
	s *Server
}

func (m *meshService) Stream(stream meshv1.Mesh_StreamServer) error {
	if err := m.s.authorize(stream.Context()); err != nil {
		return err
	}
	return m.s.serveStream(stream)
}

// authorize checks the join token. mTLS will replace it; until then the
// token is what keeps strangers from registering workloads.
func (s *Server) authorize(ctx context.Context) error {
	if s.opts.JoinToken == "" {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		tok, ok := strings.CutPrefix(v, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.JoinToken)) == 1 {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "missing or wrong join token")
}
