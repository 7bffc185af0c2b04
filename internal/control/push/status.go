package push

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"google.golang.org/grpc/peer"

	"weft.dev/weft/internal/control/store"
)

// StatusKind is the store kind under which each replica keeps the status of
// the proxies connected to it, as one ephemeral object named after the
// replica. Kinds starting with "_" are the control plane's own, not mesh
// resources: the API should not list them as resources.
const StatusKind = "_ProxyStatus"

// statusNamespace holds the status objects (store keys need one).
const statusNamespace = "_"

// ProxyStatus is what `weft status` shows of one connected proxy.
type ProxyStatus struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Replica is the control plane replica the proxy is connected to.
	Replica string `json:"replica"`
	// Address is the workload address the proxy registered ("" for a
	// proxy that registers no workload); Peer is where its stream comes
	// from.
	Address        string    `json:"address,omitempty"`
	Peer           string    `json:"peer,omitempty"`
	ConnectedSince time.Time `json:"connectedSince"`
	// Dependencies as declared (empty: every service); Learned are the
	// services it asked for on demand, "namespace/name".
	Dependencies []string `json:"dependencies,omitempty"`
	Learned      []string `json:"learned,omitempty"`
	// Services is how many services its current config holds.
	Services int `json:"services"`
	// The last version sent, the store revision it was computed from, and
	// the last version the proxy applied.
	VersionSent  string    `json:"versionSent,omitempty"`
	Revision     int64     `json:"revision,omitempty"`
	SentAt       time.Time `json:"sentAt,omitzero"`
	VersionAcked string    `json:"versionAcked,omitempty"`
	AckedAt      time.Time `json:"ackedAt,omitzero"`
	// The last version the proxy refused, and why. It keeps serving its
	// last good config.
	NackVersion string    `json:"nackVersion,omitempty"`
	NackError   string    `json:"nackError,omitempty"`
	NackedAt    time.Time `json:"nackedAt,omitzero"`
}

// InSync reports whether the proxy applied the last version it was sent.
func (p *ProxyStatus) InSync() bool { return p.VersionSent != "" && p.VersionAcked == p.VersionSent }

// statusDoc is the stored form of one replica's proxies.
type statusDoc struct {
	Replica string        `json:"replica"`
	Written time.Time     `json:"written"`
	Proxies []ProxyStatus `json:"proxies"`
}

// Proxies lists every proxy connected to any replica sharing the store:
// this replica's from memory (current to the moment), others' as they last
// wrote them (at most StatusInterval old). Sorted by namespace and name.
// When the store cannot be read, it returns this replica's proxies and the
// error.
func (s *Server) Proxies(ctx context.Context) ([]ProxyStatus, error) {
	local := s.localStatus()
	me := s.Replica()
	objs, _, err := s.st.List(ctx, StatusKind)
	if err != nil {
		sortStatus(local)
		return local, fmt.Errorf("proxy status of other replicas: %w", err)
	}
	byProxy := map[string]ProxyStatus{}
	keep := func(p ProxyStatus) {
		// A proxy that moved shows on its new replica at once and on the
		// old one until that one writes again (or its status expires):
		// keep the newer connection.
		k := p.Namespace + "/" + p.Name
		if old, ok := byProxy[k]; !ok || p.ConnectedSince.After(old.ConnectedSince) {
			byProxy[k] = p
		}
	}
	for _, o := range objs {
		if o.Name == me {
			continue
		}
		var doc statusDoc
		if err := json.Unmarshal(o.Data, &doc); err != nil {
			s.log.Warn("unreadable proxy status of another replica", "key", o.Key(), "error", err)
			continue
		}
		for _, p := range doc.Proxies {
			keep(p)
		}
	}
	for _, p := range local {
		keep(p)
	}
	out := make([]ProxyStatus, 0, len(byProxy))
	for _, p := range byProxy {
		out = append(out, p)
	}
	sortStatus(out)
	return out, nil
}

func sortStatus(ps []ProxyStatus) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Namespace != ps[j].Namespace {
			return ps[i].Namespace < ps[j].Namespace
		}
		if ps[i].Name != ps[j].Name {
			return ps[i].Name < ps[j].Name
		}
		return ps[i].Replica < ps[j].Replica
	})
}

func (s *Server) localStatus() []ProxyStatus {
	s.mu.RLock()
	streams := make([]*proxyStream, 0, len(s.streams))
	for p := range s.streams {
		streams = append(streams, p)
	}
	s.mu.RUnlock()
	out := make([]ProxyStatus, 0, len(streams))
	for _, p := range streams {
		out = append(out, p.status())
	}
	return out
}

func (s *Server) statusChanged() {
	select {
	case s.statusDirty <- struct{}{}:
	default:
	}
}

// writeStatus publishes this replica's proxy status to the store at most
// once per StatusInterval, when it changed. It is an ephemeral object: if
// this replica dies, it disappears after the grace period.
func (s *Server) writeStatus() {
	defer s.wg.Done()
	var lease store.Lease
	defer func() {
		if lease != nil {
			lease.Release()
		}
	}()
	tick := time.NewTicker(s.opts.StatusInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case <-s.statusDirty:
		default:
			continue
		}
		local := s.localStatus()
		sortStatus(local)
		data, err := json.Marshal(statusDoc{Replica: s.Replica(), Written: time.Now().UTC(), Proxies: local})
		if err != nil {
			s.log.Error("encoding proxy status", "error", err)
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		nl, err := s.st.Register(ctx, store.Object{Kind: StatusKind, Namespace: statusNamespace, Name: s.Replica(), Data: data}, s.opts.Grace)
		cancel()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("writing proxy status", "error", err)
				s.statusChanged() // try again next tick
			}
			continue
		}
		// The new registration replaced the old one; releasing the old
		// lease does not remove it.
		if lease != nil {
			lease.Release()
		}
		lease = nl
	}
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
