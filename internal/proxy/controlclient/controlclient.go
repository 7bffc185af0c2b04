// Package controlclient is the proxy's side of the control plane stream
// (api/mesh/v1): it connects to any listed control plane replica, registers
// the proxy's workload with a Hello, assembles the config from a snapshot
// and deltas, hands each version to the data plane (Options.Apply), and
// ACKs or NACKs it. When the control plane goes away the proxy keeps its
// last good config; the client reconnects with jittered exponential backoff,
// rotating through the replicas, and resyncs.
//
// It imports nothing of the control plane: it meets it in api/ and in
// internal/compile's config types.
package controlclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
)

// Port is one named port of the app.
type Port struct {
	Name string
	Port int32
}

// Options configure a Client.
type Options struct {
	// Addrs are control plane replicas (host:port); any one will do.
	Addrs []string
	// Token is the join token.
	Token string

	// The Hello: who this proxy is and what it calls. Address empty
	// registers no workload (a proxy in front of a pure client).
	Name           string
	Namespace      string
	Labels         map[string]string
	ServiceAccount string
	Zone           string
	Address        string
	Ports          []Port
	Inbound        string
	// Dependencies are the services the app calls ("name" or
	// "name.namespace"); empty means every service.
	Dependencies []string

	// Apply hands a complete config to the data plane. An error NACKs the
	// version; the data plane must then keep its previous config (the proxy
	// does: proxy.Apply refuses a config it cannot build).
	Apply func(*compile.Config) error

	// Gateway, for a `weft gateway`, names the Gateway resource it runs
	// (in Namespace). The client then gets that Gateway's compiled config
	// and the clusters its routes reach, assembled into one
	// compile.Gateway for ApplyGateway (instead of Apply). ApplyGateway
	// gets nil while the control plane has no such Gateway.
	Gateway      string
	ApplyGateway func(*compile.Gateway) error

	// Creds secure the connection; nil is plain TCP (until mTLS).
	Creds credentials.TransportCredentials
	// OnSession, when set, runs in a goroutine of its own for each session
	// once its Hello is sent, with the session's connection; ctx carries
	// the session's credentials and ends with it. The proxy's telemetry
	// reporter holds its stream there, to the same replica.
	OnSession func(ctx context.Context, cc grpc.ClientConnInterface)
	// BackoffBase and BackoffMax shape reconnect delays: full jitter over
	// an exponential ceiling. Defaults 100ms and 5s.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	Logger      *slog.Logger
}

// Status is the client's view of its connection.
type Status struct {
	Connected bool
	Addr      string // replica connected to, or last tried
	// Version is the last version received; Applied the last applied.
	Version   string
	Applied   string
	LastError string // why the last connection ended, or the last NACK
}

// Client holds one proxy's session with the control plane.
type Client struct {
	opts     Options
	log      *slog.Logger
	declared map[string]bool // Dependencies as "namespace/name"

	mu        sync.Mutex
	connected bool
	addr      string
	lastErr   string
	version   string                    // last version received
	applied   *compile.Config           // last good config
	appliedGW *compile.Gateway          // last good gateway config (Options.Gateway)
	gwApplied string                    // the version appliedGW came with (it may be nil)
	decoded   map[string]any            // *compile.Service or *compile.Cluster by name
	bad       map[string]error          // received resources that do not decode
	unknown   map[string]bool           // "namespace/name" the control plane says do not exist
	wants     map[string]bool           // "namespace/name" asked for with Want
	changed   chan struct{}             // closed and replaced on every update or state change
	send      chan *meshv1.ProxyMessage // the session's outgoing queue; nil while disconnected
	sendDone  <-chan struct{}           // closed when that session ends
}

// New makes a client; Run starts it.
func New(opts Options) (*Client, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("controlclient: no control plane address")
	}
	if opts.Name == "" {
		return nil, errors.New("controlclient: name is required")
	}
	if opts.Gateway != "" {
		if opts.ApplyGateway == nil {
			return nil, errors.New("controlclient: ApplyGateway is required with Gateway")
		}
	} else if opts.Apply == nil {
		return nil, errors.New("controlclient: Apply is required")
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 100 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 5 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	declared := map[string]bool{}
	for _, d := range opts.Dependencies {
		ns, name, ok := meshv1.ParseServiceRef(d, opts.Namespace)
		if !ok {
			return nil, fmt.Errorf("controlclient: dependency %q: want name or name.namespace", d)
		}
		declared[ns+"/"+name] = true
	}
	return &Client{
		declared: declared,
		opts:     opts,
		log:      log.With("component", "controlclient"),
		decoded:  map[string]any{},
		bad:      map[string]error{},
		unknown:  map[string]bool{},
		wants:    map[string]bool{},
		changed:  make(chan struct{}),
	}, nil
}

// Run connects and keeps the session up until ctx ends. It returns only
// then (with nil), or when the control plane refuses the token or the
// Hello (a configuration error that retrying cannot fix).
func Run(ctx context.Context, opts Options) error {
	c, err := New(opts)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// Run is the session loop; see the package Run.
func (c *Client) Run(ctx context.Context) error {
	// Start at a random replica so proxies spread over them.
	next := rand.IntN(len(c.opts.Addrs))
	attempt := 0
	for {
		addr := c.opts.Addrs[next%len(c.opts.Addrs)]
		next++
		healthy, err := c.session(ctx, addr)
		if ctx.Err() != nil {
			return nil
		}
		if fatal(err) {
			c.log.Error("control plane refused this proxy; not retrying", "addr", addr, "error", err)
			return err
		}
		if healthy {
			attempt = 0
		}
		d := Backoff(attempt, c.opts.BackoffBase, c.opts.BackoffMax)
		attempt++
		c.log.Warn("control plane stream ended; keeping the last good config", "addr", addr, "error", err, "retry_in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Backoff is the delay before reconnect attempt n (0-based): uniform in
// [0, min(max, base*2^n)) ("full jitter"), so proxies that lost the same
// replica do not come back in lockstep.
func Backoff(n int, base, max time.Duration) time.Duration {
	ceil := max
	if n < 30 {
		if c := base << n; c > 0 && c < max {
			ceil = c
		}
	}
	return rand.N(ceil) + time.Millisecond
}

// fatal errors are those a retry cannot fix.
func fatal(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument:
		return true
	}
	return false
}

// session runs one stream to addr. healthy reports whether the stream got
// as far as a config update (so backoff starts over).
func (c *Client) session(ctx context.Context, addr string) (healthy bool, err error) {
	creds := c.opts.Creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)),
	)
	if err != nil {
		return false, err
	}
	defer cc.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.opts.Token != "" {
		sctx = metadata.AppendToOutgoingContext(sctx, "authorization", "Bearer "+c.opts.Token)
	}
	stream, err := meshv1.NewMeshClient(cc).Stream(sctx)
	if err != nil {
		return false, err
	}

	c.mu.Lock()
	c.addr = addr
	hello := c.helloLocked()
	send := make(chan *meshv1.ProxyMessage, 256)
	c.send, c.sendDone = send, sctx.Done()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.send, c.sendDone = nil, nil
		c.connected = false
		if err != nil {
			c.lastErr = err.Error()
		}
		c.notifyLocked()
		c.mu.Unlock()
	}()
	if err := stream.Send(&meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Hello{Hello: hello}}); err != nil {
		return false, recvErr(stream, err)
	}
	if c.opts.OnSession != nil {
		go c.opts.OnSession(sctx, cc)
	}

	// One goroutine writes (ACKs, NACKs, Wants), this one reads.
	sendErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-sctx.Done():
				sendErr <- nil
				return
			case m := <-send:
				if err := stream.Send(m); err != nil {
					sendErr <- err
					cancel()
					return
				}
			}
		}
	}()
	for {
		u, err := stream.Recv()
		if err != nil {
			cancel()
			if se := <-sendErr; se != nil && err == nil {
				err = se
			}
			return healthy, err
		}
		if !healthy {
			healthy = true
			c.log.Info("connected to control plane", "addr", addr)
		}
		reply := c.handle(u)
		select {
		case send <- reply:
		case <-sctx.Done():
		}
	}
}

// recvErr gets the real reason of a failed Send, which gRPC reports as
// io.EOF while the status arrives on Recv.
func recvErr(stream grpc.BidiStreamingClient[meshv1.ProxyMessage, meshv1.ConfigUpdate], err error) error {
	if _, rerr := stream.Recv(); rerr != nil {
		return rerr
	}
	return err
}

func (c *Client) helloLocked() *meshv1.Hello {
	h := &meshv1.Hello{
		Name:           c.opts.Name,
		Namespace:      c.opts.Namespace,
		Labels:         c.opts.Labels,
		ServiceAccount: c.opts.ServiceAccount,
		Zone:           c.opts.Zone,
		Address:        c.opts.Address,
		Inbound:        c.opts.Inbound,
		Dependencies:   c.opts.Dependencies,
		Version:        c.version,
		Gateway:        c.opts.Gateway,
	}
	for _, p := range c.opts.Ports {
		h.Ports = append(h.Ports, &meshv1.Port{Name: p.Name, Port: p.Port})
	}
	for w := range c.wants {
		h.Learned = append(h.Learned, w)
	}
	sort.Strings(h.Learned)
	return h
}

// handle applies one update and returns the ACK or NACK to send.
func (c *Client) handle(u *meshv1.ConfigUpdate) *meshv1.ProxyMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.notifyLocked()
	c.connected = true
	c.unknown = map[string]bool{}
	for _, k := range u.Unknown {
		c.unknown[k] = true
	}
	changed := u.Snapshot || len(u.Resources) > 0 || len(u.Removed) > 0
	if u.Snapshot {
		c.decoded, c.bad = map[string]any{}, map[string]error{}
	}
	for _, name := range u.Removed {
		delete(c.decoded, name)
		delete(c.bad, name)
	}
	for _, r := range u.Resources {
		delete(c.bad, r.Name)
		v, err := decodeResource(r.Name, r.Body)
		if err != nil {
			delete(c.decoded, r.Name)
			c.bad[r.Name] = err
			continue
		}
		c.decoded[r.Name] = v
	}
	c.version = u.Version
	if c.opts.Gateway != "" {
		return c.handleGatewayLocked(u, changed)
	}
	if !changed && c.applied != nil && c.applied.Version == u.Version {
		return ack(u.Version) // a resync confirmed what we already run
	}
	cfg, err := c.assembleLocked(u.Version)
	if err == nil {
		err = c.opts.Apply(cfg)
	}
	if err != nil {
		c.lastErr = fmt.Sprintf("version %s refused: %v", u.Version, err)
		c.log.Warn("config refused; keeping the last good one", "version", u.Version, "error", err)
		return &meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Nack{Nack: &meshv1.Nack{Version: u.Version, Error: err.Error()}}}
	}
	c.applied = cfg
	c.log.Debug("config applied", "version", u.Version, "services", len(cfg.Services), "clusters", len(cfg.Clusters))
	return ack(u.Version)
}

func ack(v string) *meshv1.ProxyMessage {
	return &meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Ack{Ack: &meshv1.Ack{Version: v}}}
}

func decodeResource(name string, body []byte) (any, error) {
	var v any
	switch {
	case name == meshv1.InboundResource:
		v = &compile.Inbound{}
	case strings.HasPrefix(name, meshv1.ServicePrefix):
		v = &compile.Service{}
	case strings.HasPrefix(name, meshv1.ClusterPrefix):
		v = &compile.Cluster{}
	case strings.HasPrefix(name, meshv1.GatewayPrefix):
		v = &compile.Gateway{}
	default:
		return nil, fmt.Errorf("resource %s: unknown kind", name)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("resource %s: %w", name, err)
	}
	return v, nil
}

// assembleLocked builds the config from the received resources. Decoded
// resources are shared between versions: configs are immutable.
func (c *Client) assembleLocked(version string) (*compile.Config, error) {
	if len(c.bad) > 0 {
		var errs []string
		for _, err := range c.bad {
			errs = append(errs, err.Error())
		}
		sort.Strings(errs)
		return nil, errors.New(strings.Join(errs, "; "))
	}
	cfg := &compile.Config{Version: version, Services: []*compile.Service{}, Clusters: map[string]*compile.Cluster{}}
	for name, v := range c.decoded {
		switch x := v.(type) {
		case *compile.Service:
			cfg.Services = append(cfg.Services, x)
		case *compile.Cluster:
			cfg.Clusters[strings.TrimPrefix(name, meshv1.ClusterPrefix)] = x
		case *compile.Inbound:
			cfg.Inbound = x
		}
	}
	sort.Slice(cfg.Services, func(i, j int) bool {
		a, b := cfg.Services[i], cfg.Services[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return cfg, nil
}

func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Status reports the connection and config state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Connected: c.connected, Addr: c.addr, Version: c.version, LastError: c.lastErr}
	if c.applied != nil {
		st.Applied = c.applied.Version
	}
	if c.opts.Gateway != "" {
		st.Applied = c.gwApplied
	}
	return st
}

// Config is the last good config, or nil before the first.
func (c *Client) Config() *compile.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied
}
