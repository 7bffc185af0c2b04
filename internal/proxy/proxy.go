// Package proxy is weft's data plane engine: it holds the active config,
// routes HTTP requests and TCP connections to service ports, and forwards
// them to upstream endpoints with retries, balancing and circuit breaking.
// Listeners (internal/proxy/listener) feed it connections; the admin server
// (internal/proxy/admin) reads its state.
package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy/upstream"
	"weft.dev/weft/internal/telemetry"
)

// Options configure a Proxy.
type Options struct {
	// Zone is this proxy's zone, for zone-aware balancing.
	Zone   string
	Logger *slog.Logger
	// Workload, Namespace and ServiceAccount describe the workload this
	// proxy stands for (empty when unknown): telemetry's source of outbound
	// and destination of inbound traffic.
	Workload, Namespace, ServiceAccount string
	// Telemetry records metrics, access logs and spans; nil records nothing.
	Telemetry *telemetry.Telemetry
}

// Proxy routes and forwards traffic per the active config. It is safe for
// concurrent use; Apply swaps config without disturbing requests in flight.
type Proxy struct {
	log       *slog.Logger
	table     atomic.Pointer[table]
	upstreams *upstream.Manager
	rp        *httputil.ReverseProxy
	tr        *transports
	in        *inbound
	// permissive: the inbound accepts plaintext beside mTLS.
	permissive atomic.Bool
	mtlsForced atomic.Bool
	learner    atomic.Pointer[func(context.Context, string) bool]
	tel        *telemetry.Recorder
	budgets    sync.Map // cluster name -> *retryBudget; outlives reloads
	applyMu    sync.Mutex
}

// New makes a proxy with no config; it serves 404 until Apply.
func New(opts Options) *Proxy {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &Proxy{log: log, upstreams: upstream.NewManager(opts.Zone), tr: newTransports()}
	p.in = newInbound(p)
	p.tel = opts.Telemetry.For(selfPeer(opts), p.principal)
	p.rp = &httputil.ReverseProxy{
		Rewrite:   rewrite,
		Transport: &forwarder{p: p},
		// 0, not -1: ReverseProxy already flushes every write of responses
		// of unknown length (gRPC, chunked streams, long polls) and of SSE;
		// a response of known length then goes out in one write instead of
		// a flush per header block and per body write.
		FlushInterval:  0,
		BufferPool:     bufferPool{},
		ErrorHandler:   p.upstreamError,
		ModifyResponse: modifyResponse,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return p
}

// Apply makes cfg the active config. A config whose route table cannot be
// built (e.g. a regex that does not compile) is refused and the previous
// config stays active.
func (p *Proxy) Apply(cfg *compile.Config) error {
	t, err := buildTable(cfg)
	if err != nil {
		return err
	}
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	// Clusters first so that routes never point at a cluster that is not
	// there yet.
	p.upstreams.Update(cfg.Clusters)
	p.tr.dialer.update(cfg.Clusters)
	p.table.Store(t)
	return nil
}

// Config returns the active config, or nil before the first Apply.
func (p *Proxy) Config() *compile.Config {
	if t := p.table.Load(); t != nil {
		return t.cfg
	}
	return nil
}

// Ready reports whether a config is active.
func (p *Proxy) Ready() bool { return p.table.Load() != nil }

// Upstreams exposes cluster state for the admin server.
func (p *Proxy) Upstreams() *upstream.Manager { return p.upstreams }

// Close stops background work (health checks) and idle connections.
func (p *Proxy) Close() {
	p.upstreams.Close()
	p.tr.close()
	p.in.h1.CloseIdleConnections()
	p.in.h2c.CloseIdleConnections()
}

// bufferPool reuses the 16 KiB copy buffers of ReverseProxy (one TLS
// record; a buffer is held by every request in flight), which
// otherwise allocates one per request.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 16*1024); return &b }}

func (bufferPool) Get() []byte  { return *(copyBuffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

var _ http.Handler = (*Handler)(nil)

// learnTimeout bounds how long a request for an unknown host waits for the
// control plane to add that service to this proxy's config.
const learnTimeout = time.Second

// SetLearner installs how the proxy learns services on demand: called with
// a host the config does not know, it asks the control plane for it and
// reports whether the config now has it. Without one, unknown hosts are
// refused at once.
func (p *Proxy) SetLearner(learn func(ctx context.Context, host string) bool) {
	p.learner.Store(&learn)
}

// Learn asks the control plane for an unknown host (see SetLearner) and
// reports whether the config now has it.
func (p *Proxy) Learn(ctx context.Context, host string) bool {
	l := p.learner.Load()
	if l == nil || host == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, learnTimeout)
	defer cancel()
	return (*l)(ctx, host)
}
