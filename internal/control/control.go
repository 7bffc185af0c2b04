// Package control runs the control plane (`weft control`): it opens the
// store (bbolt by default, etcd for replicas), makes or reads the admin and
// join tokens, writes the CLI context, and serves the HTTP API (api) and
// the proxies' push stream (push) until its context ends.
//
// Data flow: CLI -> api -> store; store.Watch -> push -> proxies.
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	identityv1 "weft.dev/weft/api/identity/v1"
	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/control/ca"
	"weft.dev/weft/internal/control/push"
	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/control/token"
)

// Defaults for Options.
const (
	DefaultHTTPAddr = "127.0.0.1:15080"
	DefaultGRPCAddr = "127.0.0.1:15010"
	StoreBolt       = "bolt"
	StoreEtcd       = "etcd"
	// JoinTokenFile is the join token's file inside the data dir.
	JoinTokenFile = "join.token"
)

// Options configure the control plane. Zero values take the defaults.
type Options struct {
	// WeftHome holds the CLI context (config); default $WEFT_HOME, else
	// ~/.weft.
	WeftHome string
	// DataDir holds the bbolt database and join.token; default
	// <WeftHome>/data.
	DataDir string
	// HTTPAddr is the API (CLI, dashboard); GRPCAddr the proxies' stream.
	HTTPAddr string
	GRPCAddr string
	// NoPush runs without the push server (API only).
	NoPush bool
	// Store is "bolt" (default) or "etcd".
	Store         string
	EtcdEndpoints []string
	EtcdPrefix    string
	// Push tunes the push server; Authorize, its TLS credentials and
	// Logger are filled in.
	Push push.Options
	// The CA, made on the first start and kept in the store: TrustDomain
	// (default weft.local), CACertPEM/CAKeyPEM to sign under the
	// organisation's root, SVIDTTL the lifetime of proxies' certificates
	// (default 24h).
	TrustDomain         string
	CACertPEM, CAKeyPEM []byte
	SVIDTTL             time.Duration
	// OnStart, when set, runs once the store, API and push server exist
	// and before they serve: the seam for parts that mount on the control
	// plane (the dashboard: p.API.Handle(...), reading p.Store and
	// p.Push). An error stops the start.
	OnStart func(p *Plane) error
	Logger  *slog.Logger
}

// Plane is a running control plane.
type Plane struct {
	Store     store.Store
	API       *api.Server
	CA        *ca.Authority
	Push      *push.Server // nil with NoPush
	HTTPAddr  string       // where the API listens (resolved port)
	GRPCAddr  string       // where proxies connect ("" with NoPush)
	ServerURL string       // the API's URL as written to the CLI context
	// ConfigPath is the CLI context file; JoinTokenPath the join token's.
	ConfigPath    string
	JoinTokenPath string

	log    *slog.Logger
	http   *http.Server
	errc   chan error
	close  sync.Once
	cancel context.CancelFunc // background work (the CA's)
}

func (o *Options) defaults() error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.WeftHome == "" {
		h, err := api.Home()
		if err != nil {
			return err
		}
		o.WeftHome = h
	}
	if o.DataDir == "" {
		o.DataDir = filepath.Join(o.WeftHome, "data")
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = DefaultHTTPAddr
	}
	if o.GRPCAddr == "" {
		o.GRPCAddr = DefaultGRPCAddr
	}
	if o.Store == "" {
		o.Store = StoreBolt
	}
	return nil
}

func openStore(ctx context.Context, o *Options) (store.Store, string, error) {
	switch o.Store {
	case StoreBolt:
		st, err := store.OpenBolt(o.DataDir)
		return st, filepath.Join(o.DataDir, store.BoltFile), err
	case StoreEtcd:
		if len(o.EtcdEndpoints) == 0 {
			return nil, "", errors.New("--store etcd needs --etcd-endpoints")
		}
		st, err := store.OpenEtcd(ctx, store.EtcdOptions{Endpoints: o.EtcdEndpoints, Prefix: o.EtcdPrefix})
		return st, "etcd " + strings.Join(o.EtcdEndpoints, ","), err
	default:
		return nil, "", fmt.Errorf("--store %q: want bolt or etcd", o.Store)
	}
}

// Start opens the store, prepares tokens and files, and starts serving.
// The caller must Close the plane.
func Start(ctx context.Context, opts Options) (_ *Plane, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	log := opts.Logger
	p := &Plane{log: log, errc: make(chan error, 2)}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()

	st, where, err := openStore(ctx, &opts)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { st.Close() })
	p.Store = st

	admin, created, err := EnsureToken(ctx, st, AdminTokenName)
	if err != nil {
		return nil, err
	}
	join, _, err := EnsureToken(ctx, st, JoinTokenName)
	if err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	cleanup = append(cleanup, cancel)
	p.JoinTokenPath = filepath.Join(opts.DataDir, JoinTokenFile)
	p.CA, err = ca.Open(ctx, st, ca.Options{
		TrustDomain: opts.TrustDomain, RootCertPEM: opts.CACertPEM, RootKeyPEM: opts.CAKeyPEM, SVIDTTL: opts.SVIDTTL,
		Logger: log,
		// A rotation changes the CA hash the join token pins.
		OnChange: func() {
			if err := p.writeJoinToken(bg, join); err != nil {
				log.Error("rewriting the join token after a CA change", "error", err)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("first start: made the admin and join tokens", "store", where)
	} else {
		log.Info("store opened", "store", where)
	}

	// Listen before writing the CLI context, so it names the real port.
	hln, err := net.Listen("tcp", opts.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("--http: %w", err)
	}
	cleanup = append(cleanup, func() { hln.Close() })
	p.HTTPAddr = hln.Addr().String()
	var gln net.Listener
	if !opts.NoPush {
		if gln, err = net.Listen("tcp", opts.GRPCAddr); err != nil {
			return nil, fmt.Errorf("--grpc: %w", err)
		}
		cleanup = append(cleanup, func() { gln.Close() })
		p.GRPCAddr = gln.Addr().String()
	}

	p.ServerURL = "http://" + dialable(p.HTTPAddr)
	p.ConfigPath = api.ConfigPath(opts.WeftHome)
	if err := api.WriteClientConfig(p.ConfigPath, api.ClientConfig{Server: p.ServerURL, Token: admin}); err != nil {
		return nil, fmt.Errorf("writing the CLI context: %w", err)
	}
	if err := p.writeJoinToken(ctx, join); err != nil {
		return nil, err
	}

	var status api.StatusSource
	if !opts.NoPush {
		po := opts.Push
		// Proxies prove themselves with their SVIDs (mutual TLS); the join
		// token is only for getting the first one, from the CA.
		po.Authorize = p.CA.AuthorizeStream
		po.ServerOptions = append(po.ServerOptions, grpc.Creds(credentials.NewTLS(p.CA.ServerTLS())))
		po.Logger = log
		p.Push = push.New(st, po)
		identityv1.RegisterIdentityServer(p.Push, ca.NewService(p.CA, st, log))
		status = pushStatus{p.Push}
	}
	p.API, err = api.New(api.Options{Store: st, StoreName: opts.Store, AdminToken: admin, Status: status, Logger: log})
	if err != nil {
		return nil, err
	}
	p.CA.Mount(p.API)
	token.Mount(p.API, st, p.CA.RootHash, log)
	if opts.OnStart != nil {
		if err := opts.OnStart(p); err != nil {
			return nil, err
		}
	}
	p.http = &http.Server{Handler: p.API, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := p.http.Serve(hln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.errc <- fmt.Errorf("http: %w", err)
		}
	}()
	go p.CA.Run(bg)
	if p.Push != nil {
		go func() {
			if err := p.Push.Serve(gln); err != nil {
				p.errc <- fmt.Errorf("grpc: %w", err)
			}
		}()
	}

	// Where things are, never the tokens themselves.
	log.Info("serving", "api", p.ServerURL, "proxies", p.GRPCAddr)
	log.Info("CLI context (server and admin token) written", "path", p.ConfigPath)
	log.Info("join token for proxies written", "path", p.JoinTokenPath)
	return p, nil
}

// writeJoinToken writes the default join token, with the CA hash it pins,
// for proxies on this machine; a revoked one is removed instead.
func (p *Plane) writeJoinToken(ctx context.Context, secret string) error {
	if rec, err := token.Get(ctx, p.Store, JoinTokenName); err == nil && rec.Revoked != nil {
		p.log.Warn("the default join token was revoked: not writing it; make one with `weft token create`", "path", p.JoinTokenPath)
		if err := os.Remove(p.JoinTokenPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := api.WritePrivateFile(p.JoinTokenPath, []byte(token.Format(p.CA.RootHash(), secret)+"\n")); err != nil {
		return fmt.Errorf("writing the join token: %w", err)
	}
	return nil
}

// dialable turns a listen address into one a client can dial: an
// unspecified host (":15080", "0.0.0.0:15080") becomes loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Wait returns when a server fails or ctx ends.
func (p *Plane) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-p.errc:
		return err
	}
}

// Close stops serving (requests in flight get a few seconds) and closes
// the store. Proxies' registrations outlive it by their grace period.
func (p *Plane) Close() error {
	var err error
	p.close.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = p.http.Shutdown(ctx)
		if p.Push != nil {
			p.Push.Stop()
		}
		p.cancel()
		err = errors.Join(err, p.Store.Close())
	})
	return err
}

// Run starts the control plane and serves until ctx ends.
func Run(ctx context.Context, opts Options) error {
	p, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	werr := p.Wait(ctx)
	p.log.Info("shutting down")
	return errors.Join(werr, p.Close())
}
