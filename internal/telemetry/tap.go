package telemetry

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Live tap: the control plane asks a proxy to copy the requests matching a
// filter (weft tap). A request's End checks one atomic pointer; only while
// a tap is open does it match the request and, within the tap's rate, queue
// an event. Events go to one buffered channel that the proxy's reporter
// drains; when it is full they are dropped and counted, never waited for.

// TapFilter selects outbound requests; an empty field matches all.
type TapFilter struct {
	// Namespace and Service name the destination: the service the request
	// was addressed to or the backend service it went to.
	Namespace, Service string
	PathPrefix         string
	Method             string
}

// TapEvent is one finished request as this proxy (the caller's side) saw
// it.
type TapEvent struct {
	// Taps are the ids of the open taps it matched.
	Taps []string

	Start    time.Time
	Duration time.Duration
	Source   Peer
	// Service is the backend's service "name.namespace"; Workload the
	// endpoint's "namespace/name".
	Service, Workload, Route string
	Method, Authority, Path  string
	Status                   int
	GRPCStatus               int32 // -1: not gRPC
	Flags                    string
	TraceID                  TraceID
	Upstream                 string
	MutualTLS                bool
}

// maxTapPath bounds the path an event carries.
const maxTapPath = 512

// TapQueue is how many events wait for the reporter at most.
const TapQueue = 1024

type tapSub struct {
	id      string
	f       TapFilter
	limiter *rate.Limiter
}

// tapSet is the immutable list of open taps, swapped as a whole.
type tapSet struct{ subs []*tapSub }

// taps is a Telemetry's tap state; events is made by New.
type taps struct {
	mu      sync.Mutex // serialises changes of set
	set     atomic.Pointer[tapSet]
	events  chan *TapEvent
	dropped atomic.Uint64
}

// OpenTap starts copying the outbound requests that match f, at most
// perSecond a second (bursts of as many), into TapEvents, tagged with id,
// until CloseTap(id). Opening an id again replaces its filter.
func (t *Telemetry) OpenTap(id string, f TapFilter, perSecond int) {
	if t == nil {
		return
	}
	if perSecond <= 0 {
		perSecond = 100
	}
	ts := &t.taps
	ts.mu.Lock()
	defer ts.mu.Unlock()
	next := &tapSet{}
	if cur := ts.set.Load(); cur != nil {
		for _, s := range cur.subs {
			if s.id != id {
				next.subs = append(next.subs, s)
			}
		}
	}
	next.subs = append(next.subs, &tapSub{id: id, f: f, limiter: rate.NewLimiter(rate.Limit(perSecond), perSecond)})
	ts.set.Store(next)
}

// CloseTap stops the tap id; unknown ids are ignored.
func (t *Telemetry) CloseTap(id string) {
	if t == nil {
		return
	}
	ts := &t.taps
	ts.mu.Lock()
	defer ts.mu.Unlock()
	cur := ts.set.Load()
	if cur == nil {
		return
	}
	next := &tapSet{}
	for _, s := range cur.subs {
		if s.id != id {
			next.subs = append(next.subs, s)
		}
	}
	if len(next.subs) == 0 {
		next = nil
	}
	ts.set.Store(next)
}

// CloseAllTaps stops every tap (the control plane went away).
func (t *Telemetry) CloseAllTaps() {
	if t == nil {
		return
	}
	t.taps.mu.Lock()
	t.taps.set.Store(nil)
	t.taps.mu.Unlock()
}

// TapEvents is where tapped requests arrive; one reader drains it.
func (t *Telemetry) TapEvents() <-chan *TapEvent {
	if t == nil {
		return nil
	}
	return t.taps.events
}

// TapDropped returns and resets the count of events dropped since the last
// call: over a tap's rate or with the queue full.
func (t *Telemetry) TapDropped() uint64 {
	if t == nil {
		return 0
	}
	return t.taps.dropped.Swap(0)
}

// offer queues x for every open tap it matches.
func (ts *tapSet) offer(t *taps, x *Exchange) {
	if x.reporter != Client {
		return
	}
	var ids []string
	for _, s := range ts.subs {
		if !s.f.matches(x) {
			continue
		}
		if !s.limiter.Allow() {
			t.dropped.Add(1)
			continue
		}
		ids = append(ids, s.id)
	}
	if len(ids) == 0 {
		return
	}
	path := x.req.URL.Path
	if len(path) > maxTapPath {
		path = path[:maxTapPath]
	}
	ev := &TapEvent{
		Taps: ids, Start: x.start, Duration: x.dur, Source: x.rec.selfPeer(),
		Service: orUnknown(x.d.service()), Workload: x.d.workload, Route: x.d.route,
		Method: x.req.Method, Authority: x.req.Host, Path: path,
		Status: x.status, GRPCStatus: x.grpcStatus, Flags: x.flags, TraceID: x.sc.traceID,
		Upstream: x.upAddr, MutualTLS: x.mtls,
	}
	select {
	case t.events <- ev:
	default:
		t.dropped.Add(1)
	}
}

func (f *TapFilter) matches(x *Exchange) bool {
	if f.Method != "" && !strings.EqualFold(f.Method, x.req.Method) {
		return false
	}
	if f.PathPrefix != "" && !strings.HasPrefix(x.req.URL.Path, f.PathPrefix) {
		return false
	}
	if f.Namespace == "" && f.Service == "" {
		return true
	}
	// The service the request was addressed to, or its backend's.
	if destIs(x.d.svcName, x.d.svcNamespace, f) {
		return true
	}
	if c := x.d.cluster; c != "" {
		if i := strings.LastIndexByte(c, ':'); i > 0 {
			c = c[:i]
		}
		name, ns := c, ""
		if i := strings.LastIndexByte(c, '.'); i >= 0 {
			name, ns = c[:i], c[i+1:]
		}
		return destIs(name, ns, f)
	}
	return false
}

func destIs(name, ns string, f *TapFilter) bool {
	if name == "" {
		return false
	}
	return (f.Service == "" || f.Service == name) && (f.Namespace == "" || f.Namespace == ns)
}
