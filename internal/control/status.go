package control

import (
	"context"

	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/control/push"
)

// pushStatus shows the push server's proxies through the API.
type pushStatus struct{ s *push.Server }

var _ api.StatusSource = pushStatus{}

func (p pushStatus) Proxies(ctx context.Context) ([]api.ProxyStatus, error) {
	ps, err := p.s.Proxies(ctx)
	out := make([]api.ProxyStatus, len(ps))
	for i, s := range ps {
		out[i] = api.ProxyStatus{
			Name: s.Name, Namespace: s.Namespace, Replica: s.Replica,
			Address: s.Address, Peer: s.Peer, ConnectedSince: s.ConnectedSince,
			Dependencies: s.Dependencies, Learned: s.Learned, Services: s.Services,
			VersionSent: s.VersionSent, Revision: s.Revision, SentAt: s.SentAt,
			VersionAcked: s.VersionAcked, AckedAt: s.AckedAt,
			NackVersion: s.NackVersion, NackError: s.NackError, NackedAt: s.NackedAt,
		}
	}
	return out, err
}
