package push

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/control/store"
	"weft.dev/weft/internal/resource"
)

// proxyStream is one connected proxy.
type proxyStream struct {
	s      *Server
	stream meshv1.Mesh_StreamServer
	hello  *meshv1.Hello
	ns     string
	name   string
	self   string // selfKey: which inbound policy applies
	// gateway is "namespace/name" of the Gateway a `weft gateway` runs
	// (Hello.gateway); empty for sidecars.
	gateway string

	// answered carries the versions the proxy ACKs or NACKs, for a big
	// update waiting on its answer (see send). Never blocks the reader.
	answered chan string

	// wakeCh is a one-slot signal: "there may be something new to send".
	// Signals that arrive while the sender is busy merge into one, so the
	// sender always computes against the newest view.
	wakeCh chan struct{}

	mu       sync.Mutex
	all      bool            // declared no dependencies: every service
	services map[string]bool // "namespace/name": declared and learned
	learned  map[string]bool // the learned subset, for status
	st       ProxyStatus

	// Owned by the sender goroutine.
	sent        *scoped
	sentInbound *blob
	sentUnknown []string // the unknown list the proxy last got
}

// answer passes an ACKed or NACKed version to a waiting send, replacing
// one it has not read.
func (p *proxyStream) answer(v string) {
	for {
		select {
		case p.answered <- v:
			return
		default:
		}
		select {
		case <-p.answered:
		default:
		}
	}
}

func (p *proxyStream) wake() {
	select {
	case p.wakeCh <- struct{}{}:
	default:
	}
}

func (s *Server) serveStream(stream meshv1.Mesh_StreamServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message must be a Hello")
	}
	if s.opts.Authorize != nil {
		if err := s.opts.Authorize(stream.Context(), hello); err != nil {
			return err
		}
	}
	p, err := s.newProxyStream(stream, hello)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	log := s.log.With("proxy", p.ns+"/"+p.name)
	if p.gateway != "" {
		log = log.With("gateway", p.gateway)
	}

	if hello.Address != "" {
		obj, err := workloadObject(hello)
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		lease, err := s.st.Register(stream.Context(), *obj, s.opts.Grace)
		if err != nil {
			log.Error("registering workload", "error", err)
			return status.Error(codes.Unavailable, "registering workload: "+err.Error())
		}
		// The workload outlives the stream by the grace period, so a proxy
		// that reconnects (to this or another replica) does not flap.
		defer lease.Release()
	}

	s.mu.Lock()
	s.streams[p] = struct{}{}
	s.mu.Unlock()
	s.statusChanged()
	log.Info("proxy connected", "dependencies", hello.Dependencies, "version", hello.Version)
	defer func() {
		s.mu.Lock()
		delete(s.streams, p)
		s.mu.Unlock()
		s.statusChanged()
		log.Info("proxy disconnected")
	}()

	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	recvErr := make(chan error, 1)
	go func() {
		defer cancel()
		recvErr <- p.recvLoop(log)
	}()
	sendErr := p.sendLoop(ctx)
	cancel()
	if sendErr != nil && ctx.Err() == nil {
		return sendErr
	}
	select {
	case err := <-recvErr:
		return err
	default:
		return sendErr
	}
}

func (s *Server) newProxyStream(stream meshv1.Mesh_StreamServer, h *meshv1.Hello) (*proxyStream, error) {
	if h.Name == "" {
		return nil, fmt.Errorf("hello: name is required")
	}
	ns := h.Namespace
	if ns == "" {
		ns = resource.DefaultNamespace
	}
	p := &proxyStream{
		s:        s,
		stream:   stream,
		hello:    h,
		ns:       ns,
		name:     h.Name,
		self:     selfKey(ns, h.Labels),
		wakeCh:   make(chan struct{}, 1),
		answered: make(chan string, 1),
		all:      len(h.Dependencies) == 0,
		services: map[string]bool{},
		learned:  map[string]bool{},
	}
	if h.Gateway != "" {
		if strings.Contains(h.Gateway, "/") {
			return nil, fmt.Errorf("hello: gateway %q: want the Gateway's name (its namespace is the Hello's)", h.Gateway)
		}
		if h.Address != "" {
			return nil, fmt.Errorf("hello: a gateway registers no workload (no address)")
		}
		p.gateway = ns + "/" + h.Gateway
		p.all = false
	}
	for _, d := range h.Dependencies {
		dns, dname, ok := meshv1.ParseServiceRef(d, ns)
		if !ok {
			return nil, fmt.Errorf("hello: dependency %q: want name or name.namespace", d)
		}
		p.services[dns+"/"+dname] = true
	}
	for _, l := range h.Learned {
		if lns, lname, ok := meshv1.ParseServiceRef(l, ns); ok {
			p.services[lns+"/"+lname] = true
			p.learned[lns+"/"+lname] = true
		}
	}
	p.st = ProxyStatus{
		Name:           h.Name,
		Namespace:      ns,
		Replica:        s.Replica(),
		Address:        h.Address,
		ConnectedSince: time.Now().UTC(),
		Dependencies:   h.Dependencies,
	}
	if addr := peerAddr(stream.Context()); addr != "" {
		p.st.Peer = addr
	}
	return p, nil
}

// workloadObject is the Workload a proxy registers, validated like an
// applied one.
func workloadObject(h *meshv1.Hello) (*store.Object, error) {
	ns := h.Namespace
	if ns == "" {
		ns = resource.DefaultNamespace
	}
	w := resource.Workload{
		TypeMeta:   metav1.TypeMeta{APIVersion: resource.APIVersion, Kind: resource.KindWorkload},
		ObjectMeta: metav1.ObjectMeta{Name: h.Name, Namespace: ns, Labels: h.Labels},
		Spec: resource.WorkloadSpec{
			Address:        h.Address,
			ServiceAccount: h.ServiceAccount,
			Zone:           h.Zone,
			Inbound:        h.Inbound,
		},
	}
	for _, p := range h.Ports {
		w.Spec.Ports = append(w.Spec.Ports, resource.WorkloadPort{Name: p.Name, Port: p.Port})
	}
	data, err := json.Marshal(&w)
	if err != nil {
		return nil, err
	}
	if _, err := resource.Decode("hello", data); err != nil {
		return nil, fmt.Errorf("hello: workload does not validate: %w", err)
	}
	return &store.Object{Kind: resource.KindWorkload, Namespace: ns, Name: h.Name, Data: data}, nil
}

// recvLoop reads ACKs, NACKs and Wants until the stream ends.
func (p *proxyStream) recvLoop(log interface {
	Warn(string, ...any)
	Debug(string, ...any)
}) error {
	for {
		m, err := p.stream.Recv()
		if err != nil {
			return err
		}
		switch k := m.Kind.(type) {
		case *meshv1.ProxyMessage_Ack:
			p.s.metrics.Acks.Add(1)
			p.mu.Lock()
			p.st.VersionAcked = k.Ack.Version
			p.st.AckedAt = time.Now().UTC()
			p.mu.Unlock()
			p.s.statusChanged()
			p.answer(k.Ack.Version)
		case *meshv1.ProxyMessage_Nack:
			p.s.metrics.Nacks.Add(1)
			// The proxy keeps its last good config; the operator sees why in
			// `weft status`. Nothing is resent: the next change may fix it.
			log.Warn("proxy refused config", "version", k.Nack.Version, "error", k.Nack.Error)
			p.mu.Lock()
			p.st.NackVersion = k.Nack.Version
			p.st.NackError = k.Nack.Error
			p.st.NackedAt = time.Now().UTC()
			p.mu.Unlock()
			p.s.statusChanged()
			p.answer(k.Nack.Version)
		case *meshv1.ProxyMessage_Want:
			ns, name, ok := meshv1.ParseServiceRef(k.Want.Service, p.ns)
			if !ok {
				log.Debug("want of a name that is no service", "service", k.Want.Service)
				continue
			}
			key := ns + "/" + name
			p.mu.Lock()
			added := !p.all && !p.services[key]
			if added {
				p.services[key] = true
				p.learned[key] = true
			}
			p.mu.Unlock()
			if added {
				p.s.statusChanged()
			}
			// Wake even when nothing was added: a Want of an unknown
			// service is answered with the unknown list.
			p.wake()
		case *meshv1.ProxyMessage_Hello:
			return status.Error(codes.InvalidArgument, "hello sent twice")
		}
	}
}

func (p *proxyStream) scope() scope {
	p.mu.Lock()
	defer p.mu.Unlock()
	return newScope(p.all, p.services)
}

// sendLoop sends the proxy's config whenever the view or its scope
// changes: a snapshot first (or nothing when the proxy's version is still
// current), then deltas.
func (p *proxyStream) sendLoop(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-p.s.viewReady:
	}
	if wait := time.Until(p.s.startedAt.Add(p.s.opts.Settle)); p.hello.Version != "" && wait > 0 {
		// A resyncing proxy right after a (re)start: let the others
		// re-register before computing what it gets.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	for first := true; ; first = false {
		if err := p.push(first); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.wakeCh:
		}
	}
}

// push sends what the proxy lacks of the newest view, if anything.
func (p *proxyStream) push(first bool) error {
	v := p.s.current.Load()
	var sc *scoped
	var in *blob // nil for a gateway: it has no inbound
	if p.gateway != "" {
		if ok, accounts := v.gatewayAllowed(p.gateway, p.hello.ServiceAccount); !ok {
			return status.Errorf(codes.PermissionDenied, "Gateway %s may be run by service account %s, not %s (annotation %s)",
				p.gateway, strings.Join(accounts, ", "), p.hello.ServiceAccount, AnnotationGatewayServiceAccount)
		}
		sc = v.gatewayScoped(p.gateway)
	} else {
		sc = v.scoped(p.scope())
		var err error
		if in, err = v.inbound(p.self, p.ns, p.hello.Labels); err != nil {
			return status.Error(codes.Internal, err.Error())
		}
	}
	if sc == p.sent && in == p.sentInbound {
		return nil
	}
	version := proxyVersion(sc, in)
	u := &meshv1.ConfigUpdate{Version: version, Revision: sc.rev, Unknown: sc.unknown}
	if !(first && p.hello.Version == version) {
		// Not a resync of the version the proxy holds: send what changed.
		// The delta of the shared part is shared with every proxy making
		// the same move; the inbound policy is this workload's own.
		d := delta(p.sent, sc)
		u.Snapshot, u.Resources, u.Removed = d.Snapshot, d.Resources, d.Removed
		if in != nil && (d.Snapshot || p.sentInbound == nil || in.sum != p.sentInbound.sum) {
			u.Resources = append(u.Resources[:len(u.Resources):len(u.Resources)], in.pb)
		}
	}
	p.sent, p.sentInbound = sc, in
	newUnknown := !slices.Equal(sc.unknown, p.sentUnknown)
	p.sentUnknown = sc.unknown
	unchanged := !first && !u.Snapshot && len(u.Resources) == 0 && len(u.Removed) == 0
	if unchanged && !newUnknown {
		return nil // the change was outside this proxy's scope
	}
	if err := p.send(u); err != nil {
		return err
	}
	p.s.metrics.Pushes.Add(1)
	p.mu.Lock()
	p.st.VersionSent = u.Version
	p.st.Revision = u.Revision
	p.st.SentAt = time.Now().UTC()
	p.st.Services = countServices(sc)
	p.mu.Unlock()
	p.s.statusChanged()
	return nil
}

// bigUpdate is the size from which an update waits for a slot among
// Options.MaxConcurrentBig, and holds it until the proxy answers: a
// thousand proxies connecting at once must not each have a multi-megabyte
// snapshot queued in the transport at the same time. gRPC's Send returns
// once a message is queued, not sent, so only the answer says the buffer
// is gone. (Istio throttles pushes the same way.)
const bigUpdate = 256 << 10

// bigAnswerWait bounds how long a big update holds its slot waiting for
// the proxy's answer.
const bigAnswerWait = 10 * time.Second

func (p *proxyStream) send(u *meshv1.ConfigUpdate) error {
	size := 0
	for _, r := range u.Resources {
		size += len(r.Body) + len(r.Name)
	}
	if size < bigUpdate {
		return p.stream.Send(u)
	}
	ctx := p.stream.Context()
	select {
	case p.s.bigSends <- struct{}{}:
		defer func() { <-p.s.bigSends }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := p.stream.Send(u); err != nil {
		return err
	}
	t := time.NewTimer(bigAnswerWait)
	defer t.Stop()
	for {
		select {
		case v := <-p.answered:
			if v == u.Version {
				return nil
			}
		case <-t.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

func countServices(sc *scoped) int {
	n := 0
	for _, b := range sc.items {
		if strings.HasPrefix(b.name, meshv1.ServicePrefix) {
			n++
		}
	}
	return n
}

// status returns a copy of the proxy's status.
func (p *proxyStream) status() ProxyStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.Learned = make([]string, 0, len(p.learned))
	for k := range p.learned {
		st.Learned = append(st.Learned, k)
	}
	sort.Strings(st.Learned)
	return st
}
