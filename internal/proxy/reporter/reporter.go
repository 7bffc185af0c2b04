// Package reporter is the proxy's side of api/telemetry/v1: while the proxy
// holds a session with a control plane replica, it keeps a Report stream on
// the same gRPC connection, sends its outbound golden numbers
// (telemetry.Snapshot) every Interval, and runs the live taps the control
// plane opens, sending the tapped requests back.
//
// Data flow: telemetry series -> Snapshot every Interval -> Stats; the
// request path -> telemetry's tap queue -> TapEvents batches. Commands
// (TapStart, TapStop) -> telemetry.OpenTap/CloseTap. Taps die with the
// stream: a control plane that went away leaves none open.
//
// Like controlclient, it imports nothing of the control plane.
package reporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	telemetryv1 "weft.dev/weft/api/telemetry/v1"
	"weft.dev/weft/internal/telemetry"
)

// Defaults of Options.
const (
	DefaultInterval = 2 * time.Second
	// DefaultMaxTapRate caps the events per second a tap may ask of one
	// proxy.
	DefaultMaxTapRate = 100
	// tapBatch and tapFlush shape TapEvents messages: up to tapBatch events,
	// sent at most tapFlush after the first.
	tapBatch = 64
	tapFlush = 100 * time.Millisecond
)

// Options configure a Reporter.
type Options struct {
	Telemetry *telemetry.Telemetry
	// Name, Namespace and Labels are the proxy's workload, as on its Mesh
	// stream.
	Name      string
	Namespace string
	Labels    map[string]string
	// Interval between Stats; default 2s.
	Interval time.Duration
	// MaxTapRate caps a tap's events per second; default 100.
	MaxTapRate int
	Logger     *slog.Logger
}

// Reporter reports one proxy's telemetry.
type Reporter struct {
	opts    Options
	log     *slog.Logger
	started time.Time
	// running serialises Runs: a session's taps are closed before the
	// next session's can open.
	running sync.Mutex
}

// New makes a reporter; Run it for each control plane session.
func New(opts Options) *Reporter {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.MaxTapRate <= 0 {
		opts.MaxTapRate = DefaultMaxTapRate
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Reporter{opts: opts, log: log.With("component", "reporter"), started: time.Now()}
}

// Run holds a Report stream on cc until ctx ends (nil) or the stream fails.
// ctx carries the session's credentials (metadata), as the Mesh stream's.
// Sessions are one at a time: the caller runs Run once per session.
func (r *Reporter) Run(parent context.Context, cc grpc.ClientConnInterface) (err error) {
	r.running.Lock()
	defer r.running.Unlock()
	tel := r.opts.Telemetry
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	stream, err := telemetryv1.NewTelemetryClient(cc).Report(ctx)
	if err != nil {
		return err
	}
	// The taps belong to this stream's control plane.
	defer tel.CloseAllTaps()
	hello := &telemetryv1.Hello{
		Name: r.opts.Name, Namespace: r.opts.Namespace, Labels: r.opts.Labels,
		StartedUnixNano: r.started.UnixNano(), DurationBuckets: telemetry.DurationBuckets,
		IntervalMillis: r.opts.Interval.Milliseconds(),
	}
	recvErr := make(chan error, 1)
	// The stream's real end: a failed Send says only io.EOF, the status
	// comes with Recv. A stream ended by the caller is no error.
	defer func() {
		if err != nil {
			cancel()
			if rerr := <-recvErr; rerr != nil {
				err = rerr
			}
		}
		if parent.Err() != nil || errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
			err = nil
		}
	}()
	if err := stream.Send(&telemetryv1.ProxyReport{Kind: &telemetryv1.ProxyReport_Hello{Hello: hello}}); err != nil {
		go func() { _, err := stream.Recv(); recvErr <- err }()
		return err
	}

	go func() {
		for {
			cmd, err := stream.Recv()
			if err != nil {
				recvErr <- err
				cancel()
				return
			}
			r.command(cmd)
		}
	}()

	// The first numbers right away: a control plane that just (re)started
	// has none from this proxy.
	if err := stream.Send(statsMessage(tel.Snapshot())); err != nil {
		return err
	}
	tick := time.NewTicker(r.opts.Interval)
	defer tick.Stop()
	events := tel.TapEvents()
	var batch []*telemetryv1.TapEvent
	var flush <-chan time.Time
	var flushTimer *time.Timer
	sendBatch := func() error {
		if flushTimer != nil {
			flushTimer.Stop()
			flushTimer, flush = nil, nil
		}
		dropped := tel.TapDropped()
		if len(batch) == 0 && dropped == 0 {
			return nil
		}
		m := &telemetryv1.ProxyReport{Kind: &telemetryv1.ProxyReport_Tap{Tap: &telemetryv1.TapEvents{Events: batch, Dropped: dropped}}}
		batch = nil
		return stream.Send(m)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err() // the deferred func finds why
		case <-tick.C:
			if err := stream.Send(statsMessage(tel.Snapshot())); err != nil {
				return err
			}
		case ev := <-events:
			batch = append(batch, tapEvent(ev))
			if len(batch) >= tapBatch {
				if err := sendBatch(); err != nil {
					return err
				}
			} else if flushTimer == nil {
				flushTimer = time.NewTimer(tapFlush)
				flush = flushTimer.C
			}
		case <-flush:
			flushTimer, flush = nil, nil
			if err := sendBatch(); err != nil {
				return err
			}
		}
	}
}

func (r *Reporter) command(cmd *telemetryv1.Command) {
	tel := r.opts.Telemetry
	switch k := cmd.Kind.(type) {
	case *telemetryv1.Command_TapStart:
		ts := k.TapStart
		rate := int(ts.MaxPerSecond)
		if rate <= 0 || rate > r.opts.MaxTapRate {
			rate = r.opts.MaxTapRate
		}
		f := ts.GetFilter()
		tel.OpenTap(ts.Id, telemetry.TapFilter{
			Namespace: f.GetNamespace(), Service: f.GetService(), PathPrefix: f.GetPathPrefix(), Method: f.GetMethod(),
		}, rate)
		r.log.Info("tap opened", "id", ts.Id, "namespace", f.GetNamespace(), "service", f.GetService(),
			"path_prefix", f.GetPathPrefix(), "method", f.GetMethod(), "per_second", rate)
	case *telemetryv1.Command_TapStop:
		tel.CloseTap(k.TapStop.Id)
		r.log.Info("tap closed", "id", k.TapStop.Id)
	default:
		r.log.Debug("unknown telemetry command", "command", fmt.Sprintf("%T", cmd.Kind))
	}
}

func statsMessage(s telemetry.Snapshot) *telemetryv1.ProxyReport {
	st := &telemetryv1.Stats{TimeUnixNano: time.Now().UnixNano()}
	for _, rt := range s.Requests {
		st.Requests = append(st.Requests, &telemetryv1.RequestStats{
			DestinationService: rt.Service, Route: rt.Route, Requests: rt.Requests, Errors: rt.Errors,
			Buckets: rt.Buckets, DurationSumSeconds: rt.DurationSum, StatusClasses: rt.StatusClasses[:],
		})
	}
	for _, tt := range s.TCP {
		st.Tcp = append(st.Tcp, &telemetryv1.TCPStats{
			DestinationService: tt.Service, Route: tt.Route, Opened: tt.Opened, Closed: tt.Closed,
			SentBytes: tt.SentBytes, ReceivedBytes: tt.RecvedBytes,
		})
	}
	return &telemetryv1.ProxyReport{Kind: &telemetryv1.ProxyReport_Stats{Stats: st}}
}

func tapEvent(ev *telemetry.TapEvent) *telemetryv1.TapEvent {
	return &telemetryv1.TapEvent{
		TapIds: ev.Taps, StartUnixNano: ev.Start.UnixNano(), DurationNanos: int64(ev.Duration),
		SourceWorkload: ev.Source.Workload, SourceNamespace: ev.Source.Namespace,
		DestinationService: ev.Service, DestinationWorkload: ev.Workload, Route: ev.Route,
		Method: ev.Method, Authority: ev.Authority, Path: ev.Path,
		Status: int32(ev.Status), GrpcStatus: ev.GRPCStatus, ResponseFlags: ev.Flags,
		TraceId: ev.TraceID.String(), UpstreamAddress: ev.Upstream, Mtls: ev.MutualTLS,
	}
}
