// Package stats is the control plane's telemetry: it serves the proxies'
// Report streams (api/telemetry/v1) on the push server's gRPC port, keeps
// the golden numbers they report as time series in memory (Resolution wide
// slots over Window), runs live taps across the connected proxies, and
// serves it all as JSON on the API: GET /api/v1/graph, /api/v1/services/
// {namespace}/{name}/metrics, /api/v1/proxies and the NDJSON stream
// /api/v1/tap, all behind the admin token. `weft top`, `weft tap` and the
// dashboard read them.
//
// Data flow: proxy telemetry.Snapshot -> Report stream -> aggregator
// (differences of cumulative totals) -> series ring -> graph and metrics
// queries; tap: HTTP client -> TapStart to every connected proxy -> their
// TapEvents -> the client's stream, until it disconnects -> TapStop.
//
// Replicas: each replica keeps what its own proxies report (a proxy
// reports on the connection that carries its config). Behind a load
// balancer, a replica's graph and taps cover the proxies connected to it;
// nothing is shared through the store, which keeps the store free of
// high-rate writes.
package stats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	telemetryv1 "weft.dev/weft/api/telemetry/v1"
	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/control/push"
	"weft.dev/weft/internal/control/store"
)

// Defaults of Options.
const (
	DefaultResolution = 5 * time.Second
	DefaultWindow     = 15 * time.Minute
	// DefaultTapRate is the events per second a tap asks of each proxy.
	DefaultTapRate = 100
)

// ProxyLister lists the proxies connected to the control plane (the push
// server).
type ProxyLister interface {
	Proxies(ctx context.Context) ([]push.ProxyStatus, error)
}

// Options configure a Stats.
type Options struct {
	// Store holds Services and Workloads (graph nodes and their workloads).
	Store store.Store
	// Proxies, when set, lists the proxies for /api/v1/proxies.
	Proxies ProxyLister
	// Replica names this replica in answers; may be nil.
	Replica func() string
	// Authorize admits a Report stream once its Hello arrived; nil admits
	// all (tests). The control plane admits proxies with an SVID of the
	// Hello's namespace, as on the Mesh stream.
	Authorize func(ctx context.Context, h *telemetryv1.Hello) error
	// Resolution and Window shape the series: 5s slots over 15m by default.
	Resolution time.Duration
	Window     time.Duration
	// TapRate is the events per second a tap asks of each proxy; default
	// 100.
	TapRate int
	Logger  *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Stats is the control plane's telemetry. Register it on the gRPC server
// and Mount it on the API.
type Stats struct {
	telemetryv1.UnimplementedTelemetryServer

	opts   Options
	log    *slog.Logger
	series *series
	agg    *aggregator
	mesh   *meshCache

	mu    sync.Mutex
	conns map[*proxyConn]struct{}
	taps  map[string]*tap
}

// New makes a Stats.
func New(opts Options) (*Stats, error) {
	if opts.Store == nil {
		return nil, errors.New("stats: no store")
	}
	if opts.Resolution <= 0 {
		opts.Resolution = DefaultResolution
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Window < opts.Resolution {
		opts.Window = opts.Resolution
	}
	if opts.TapRate <= 0 {
		opts.TapRate = DefaultTapRate
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	// One slot more than the window: the current slot is partial.
	ser := newSeries(opts.Resolution, int(opts.Window/opts.Resolution)+1)
	s := &Stats{
		opts:   opts,
		log:    log.With("component", "stats"),
		series: ser,
		mesh:   &meshCache{st: opts.Store, now: opts.Now},
		conns:  map[*proxyConn]struct{}{},
		taps:   map[string]*tap{},
	}
	s.agg = newAggregator(ser, opts.Now, s.callerNode)
	return s, nil
}

// callerNode resolves a reporting proxy to its graph node with the mesh
// as it is now (cached for a moment); without the store it falls back to
// the workload.
func (s *Stats) callerNode(namespace, name string, labels map[string]string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	mm, err := s.mesh.get(ctx)
	if err != nil {
		s.log.Warn("services not read; counting a caller as its workload", "proxy", namespace+"/"+name, "error", err)
		mm = &meshModel{}
	}
	return callerNode(mm, namespace, name, labels)
}

// Register adds the Telemetry service to a gRPC server (the push
// server's, so proxies report on the connection that carries their
// config).
func (s *Stats) Register(reg grpc.ServiceRegistrar) {
	telemetryv1.RegisterTelemetryServer(reg, s)
}

// proxyConn is one proxy's Report stream.
type proxyConn struct {
	hello     *telemetryv1.Hello
	since     time.Time
	bucketsOK bool
	// cmds is the stream's outgoing queue; the stream's sender drains it.
	cmds       chan *telemetryv1.Command
	lastReport atomic.Int64 // unix nanos
	reports    atomic.Uint64
}

func (p *proxyConn) id() string { return p.hello.Namespace + "/" + p.hello.Name }

// Report serves one proxy's stream.
func (s *Stats) Report(stream telemetryv1.Telemetry_ReportServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHello()
	if h == nil || h.Name == "" {
		return status.Error(codes.InvalidArgument, "the first message must be a Hello with the proxy's name")
	}
	if h.Namespace == "" {
		h.Namespace = "default"
	}
	if s.opts.Authorize != nil {
		if err := s.opts.Authorize(ctx, h); err != nil {
			return err
		}
	}
	pc := &proxyConn{hello: h, since: s.opts.Now(), bucketsOK: s.agg.setBounds(h.DurationBuckets), cmds: make(chan *telemetryv1.Command, 256)}
	s.addConn(pc)
	defer s.removeConn(pc)
	log := s.log.With("proxy", pc.id())
	log.Debug("telemetry stream opened")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sendErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				sendErr <- nil
				return
			case c := <-pc.cmds:
				if err := stream.Send(c); err != nil {
					sendErr <- err
					cancel()
					return
				}
			}
		}
	}()
	for {
		m, err := stream.Recv()
		if err != nil {
			cancel()
			<-sendErr
			if ctx.Err() != nil && stream.Context().Err() != nil {
				return nil
			}
			return err
		}
		switch k := m.Kind.(type) {
		case *telemetryv1.ProxyReport_Stats:
			pc.lastReport.Store(s.opts.Now().UnixNano())
			pc.reports.Add(1)
			s.agg.report(h, pc.bucketsOK, k.Stats)
		case *telemetryv1.ProxyReport_Tap:
			s.deliver(pc, k.Tap)
		case *telemetryv1.ProxyReport_Hello:
			return status.Error(codes.InvalidArgument, "one Hello per stream")
		}
	}
}

func (s *Stats) addConn(pc *proxyConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[pc] = struct{}{}
	// Taps already open reach a proxy that connects while they run.
	for _, t := range s.taps {
		s.sendLocked(pc, t.start())
	}
}

func (s *Stats) removeConn(pc *proxyConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, pc)
}

// sendLocked queues a command for a proxy; a proxy whose queue is full
// (its stream is stuck) misses it: a missed start costs that proxy's
// events, a missed stop costs nothing, as events of closed taps are
// dropped here.
func (s *Stats) sendLocked(pc *proxyConn, c *telemetryv1.Command) {
	select {
	case pc.cmds <- c:
	default:
		s.log.Warn("telemetry command not sent: the proxy's stream is stuck", "proxy", pc.id())
	}
}

// tap is one open tap: a client reading matching requests.
type tap struct {
	id      string
	filter  *telemetryv1.TapFilter
	rate    int
	events  chan *api.TapRequest
	dropped atomic.Uint64
}

func (t *tap) start() *telemetryv1.Command {
	return &telemetryv1.Command{Kind: &telemetryv1.Command_TapStart{TapStart: &telemetryv1.TapStart{Id: t.id, Filter: t.filter, MaxPerSecond: uint32(t.rate)}}}
}

// tapBuffer is how many requests wait for a slow tap client before more
// are dropped.
const tapBuffer = 512

// openTap asks every connected proxy to tap f; it returns the tap and how
// many proxies were asked.
func (s *Stats) openTap(f *telemetryv1.TapFilter) (*tap, int) {
	var b [8]byte
	rand.Read(b[:])
	t := &tap{id: hex.EncodeToString(b[:]), filter: f, rate: s.opts.TapRate, events: make(chan *api.TapRequest, tapBuffer)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taps[t.id] = t
	for pc := range s.conns {
		s.sendLocked(pc, t.start())
	}
	return t, len(s.conns)
}

func (s *Stats) closeTap(t *tap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.taps, t.id)
	stop := &telemetryv1.Command{Kind: &telemetryv1.Command_TapStop{TapStop: &telemetryv1.TapStop{Id: t.id}}}
	for pc := range s.conns {
		s.sendLocked(pc, stop)
	}
}

// deliver hands a proxy's tapped requests to their taps.
func (s *Stats) deliver(pc *proxyConn, evs *telemetryv1.TapEvents) {
	proxy := pc.id()
	s.mu.Lock()
	defer s.mu.Unlock()
	if evs.Dropped > 0 {
		// Drops on the proxy are not tied to a tap; every open tap hears.
		for _, t := range s.taps {
			t.dropped.Add(evs.Dropped)
		}
	}
	for _, ev := range evs.Events {
		var req *api.TapRequest
		for _, id := range ev.TapIds {
			t := s.taps[id]
			if t == nil {
				continue
			}
			if req == nil {
				req = tapRequest(proxy, ev)
			}
			select {
			case t.events <- req:
			default:
				t.dropped.Add(1)
			}
		}
	}
}

func tapRequest(proxy string, ev *telemetryv1.TapEvent) *api.TapRequest {
	r := &api.TapRequest{
		Time: time.Unix(0, ev.StartUnixNano).UTC(), Proxy: proxy,
		SourceWorkload: ev.SourceWorkload, SourceNamespace: ev.SourceNamespace,
		DestinationService: ev.DestinationService, DestinationWorkload: ev.DestinationWorkload, Route: ev.Route,
		Method: ev.Method, Authority: ev.Authority, Path: ev.Path, Status: int(ev.Status),
		ResponseFlags: ev.ResponseFlags, LatencyMs: float64(ev.DurationNanos) / 1e6, TraceID: ev.TraceId,
		Upstream: ev.UpstreamAddress, MutualTLS: ev.Mtls,
	}
	if r.ResponseFlags == "-" {
		r.ResponseFlags = ""
	}
	if ev.GrpcStatus >= 0 {
		g := int(ev.GrpcStatus)
		r.GRPCStatus = &g
	}
	return r
}

// telemetryOf reports this replica's telemetry streams by proxy
// "namespace/name".
func (s *Stats) telemetryOf() map[string]*api.ProxyTelemetry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*api.ProxyTelemetry{}
	for pc := range s.conns {
		pt := &api.ProxyTelemetry{Connected: true, Since: pc.since.UTC(), Started: time.Unix(0, pc.hello.StartedUnixNano).UTC(), Reports: pc.reports.Load()}
		if n := pc.lastReport.Load(); n != 0 {
			pt.LastReport = time.Unix(0, n).UTC()
		}
		if old := out[pc.id()]; old == nil || pt.Since.After(old.Since) {
			out[pc.id()] = pt
		}
	}
	return out
}

func (s *Stats) replica() string {
	if s.opts.Replica == nil {
		return ""
	}
	return s.opts.Replica()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
