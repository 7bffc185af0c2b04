package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/identity"
)

// Sidecar-to-sidecar delivery. An endpoint whose workload runs a weft
// sidecar is reached through that sidecar's inbound listener: the caller
// connects to the inbound address and opens the connection with a PROXY
// protocol v2 header whose destination is the endpoint's own address. The
// receiving sidecar delivers to the app port the destination names, and
// only to ports its app declared. Connection pools stay keyed by endpoint
// address, so each app port keeps its own pool.

// endpointDialer dials endpoints, through their sidecar when they have one,
// with mutual TLS once the proxy has an identity.
type endpointDialer struct {
	// sidecars maps an endpoint address to its sidecar.
	sidecars atomic.Pointer[map[string]sidecar]
	tls      atomic.Pointer[identity.MeshTLS]
	dialer   net.Dialer
}

// sidecar is where an endpoint's sidecar listens and who it must prove to
// be: the workload's namespace and service account.
type sidecar struct {
	inbound        string
	namespace      string
	serviceAccount string
}

func newEndpointDialer() *endpointDialer {
	d := &endpointDialer{dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}}
	empty := map[string]sidecar{}
	d.sidecars.Store(&empty)
	return d
}

// update indexes the sidecars of every endpoint in cfg.
func (d *endpointDialer) update(clusters map[string]*compile.Cluster) {
	m := map[string]sidecar{}
	for _, c := range clusters {
		for _, e := range c.Endpoints {
			if e.Inbound != "" {
				ns, _, _ := strings.Cut(e.Workload, "/")
				m[e.Address] = sidecar{inbound: e.Inbound, namespace: ns, serviceAccount: e.ServiceAccount}
			}
		}
	}
	d.sidecars.Store(&m)
}

// DialContext connects to addr, an endpoint address.
func (d *endpointDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	sc, ok := (*d.sidecars.Load())[addr]
	if !ok {
		return d.dialer.DialContext(ctx, network, addr)
	}
	c, err := d.dialer.DialContext(ctx, network, sc.inbound)
	if err != nil {
		return nil, err
	}
	if m := d.tls.Load(); m != nil {
		want, err := identity.ID(m.Source().TrustDomain(), sc.namespace, sc.serviceAccount)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("sidecar %s: expected identity: %w", sc.inbound, err)
		}
		tc := tls.Client(c, m.Client(want))
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("mTLS to sidecar %s (want %s): %w", sc.inbound, want, err)
		}
		c = tc
	}
	if err := writeDestination(c, addr); err != nil {
		c.Close()
		return nil, fmt.Errorf("sidecar %s: %w", sc.inbound, err)
	}
	return c, nil
}

// writeDestination sends the PROXY v2 header naming the endpoint. Only the
// destination port matters to the receiver; a host name (not an IP) is sent
// as 0.0.0.0.
func writeDestination(c net.Conn, endpoint string) error {
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ip = netip.IPv4Unspecified()
	}
	src, _ := c.LocalAddr().(*net.TCPAddr)
	if src == nil {
		src = &net.TCPAddr{IP: net.IPv4zero}
	}
	dst := &net.TCPAddr{IP: ip.AsSlice(), Port: p}
	if (src.IP.To4() == nil) != (dst.IP.To4() == nil) {
		// PROXY v2 wants one address family for both ends.
		if dst.IP.To4() == nil {
			src = &net.TCPAddr{IP: net.IPv6zero, Port: src.Port}
		} else {
			src = &net.TCPAddr{IP: net.IPv4zero, Port: src.Port}
		}
	}
	h := proxyproto.HeaderProxyFromAddrs(2, src, dst)
	_, err = h.WriteTo(c)
	return err
}

// SetIdentity makes the proxy use mutual TLS with this identity toward
// other sidecars and on its inbound. It may be called again on rotation
// with a new MeshTLS; open connections keep the certificate they were made
// with.
func (p *Proxy) SetIdentity(m *identity.MeshTLS) { p.tr.dialer.tls.Store(m) }

// Identity is the proxy's mTLS identity, nil when it has none (plaintext).
func (p *Proxy) Identity() *identity.MeshTLS { return p.tr.dialer.tls.Load() }
