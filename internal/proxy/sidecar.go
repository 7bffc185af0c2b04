package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"

	"weft.dev/weft/internal/compile"
)

// Sidecar-to-sidecar delivery. An endpoint whose workload runs a weft
// sidecar is reached through that sidecar's inbound listener: the caller
// connects to the inbound address and opens the connection with a PROXY
// protocol v2 header whose destination is the endpoint's own address. The
// receiving sidecar delivers to the app port the destination names, and
// only to ports its app declared. Connection pools stay keyed by endpoint
// address, so each app port keeps its own pool.

// endpointDialer dials endpoints, through their sidecar when they have one.
type endpointDialer struct {
	// inbound maps an endpoint address to its sidecar's inbound address.
	inbound atomic.Pointer[map[string]string]
	dialer  net.Dialer
}

func newEndpointDialer() *endpointDialer {
	d := &endpointDialer{dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}}
	empty := map[string]string{}
	d.inbound.Store(&empty)
	return d
}

// update indexes the sidecars of every endpoint in cfg.
func (d *endpointDialer) update(clusters map[string]*compile.Cluster) {
	m := map[string]string{}
	for _, c := range clusters {
		for _, e := range c.Endpoints {
			if e.Inbound != "" {
				m[e.Address] = e.Inbound
			}
		}
	}
	d.inbound.Store(&m)
}

// DialContext connects to addr, an endpoint address.
func (d *endpointDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	in, ok := (*d.inbound.Load())[addr]
	if !ok {
		return d.dialer.DialContext(ctx, network, addr)
	}
	c, err := d.dialer.DialContext(ctx, network, in)
	if err != nil {
		return nil, err
	}
	if err := writeDestination(c, addr); err != nil {
		c.Close()
		return nil, fmt.Errorf("sidecar %s: %w", in, err)
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
