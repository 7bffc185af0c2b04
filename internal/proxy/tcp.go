package proxy

import (
	"context"
	"io"
	"net"
	"sync"

	"weft.dev/weft/internal/proxy/upstream"
	"weft.dev/weft/internal/telemetry"
)

// connectAttempts is how many endpoints an opaque connection tries before
// giving up: a dead endpoint costs the caller one dial, not the connection.
const connectAttempts = 3

// Protocol returns the protocol of the target's service port ("" when it is
// to be sniffed) and whether the target is known.
func (p *Proxy) Protocol(tg *Target) (string, bool) {
	t := p.table.Load()
	if t == nil {
		return "", false
	}
	sp := t.lookupTarget(tg)
	if sp == nil {
		return "", false
	}
	return sp.port.Protocol, true
}

// ServeTCP relays an opaque connection to one endpoint of the target's TCP
// backends, and closes conn when done.
func (p *Proxy) ServeTCP(conn net.Conn, tg *Target) {
	defer conn.Close()
	tc := p.tel.BeginTCP(conn, telemetry.Client)
	defer tc.End()
	t := p.table.Load()
	if t == nil {
		return
	}
	sp := t.lookupTarget(tg)
	if sp == nil || sp.tcp == nil {
		p.log.Debug("tcp: unknown target", "host", tg.Host, "port", tg.Port)
		tc.Flag(ReasonUnknownService)
		return
	}
	b := sp.tcp.pick()
	if b == nil {
		tc.Flag(ReasonInvalidRoute)
		return
	}
	tc.Destination(sp.svc.Name, sp.svc.Namespace, sp.port.TCP.Route, b.Cluster)
	c := p.upstreams.Cluster(b.Cluster)
	if c == nil {
		return
	}
	p.relayToCluster(conn, tc, c)
}

// relayToCluster admits an opaque connection to c (circuit breaker), dials
// one of its endpoints and relays until both directions end; tc records
// the outcome. Sidecar ports and the gateway's TCP routes share it.
func (p *Proxy) relayToCluster(conn net.Conn, tc *telemetry.Conn, c *upstream.Cluster) {
	release, err := c.AdmitConnection()
	if err != nil {
		p.log.Debug("tcp: refused", "cluster", c.Name(), "err", err)
		tc.Flag(ReasonCircuitOpen)
		return
	}
	defer release()
	up, ep := p.dialCluster(c, conn.RemoteAddr())
	if up == nil {
		tc.Flag(ReasonNoHealthy)
		return
	}
	p.recordConnected(tc, ep)
	tc.Bytes(relay(conn, up))
	c.End(ep, upstream.Success)
}

func (p *Proxy) dialCluster(c *upstream.Cluster, src net.Addr) (net.Conn, *upstream.Endpoint) {
	info := upstream.PickInfo{}
	if lb := c.Config().LoadBalancer; lb.Type == "RingHash" && lb.HashSource && src != nil {
		if h, _, err := net.SplitHostPort(src.String()); err == nil {
			info.HashKey = h
		}
	}
	for i := 0; i < connectAttempts; i++ {
		ep, err := c.Pick(info)
		if err != nil {
			return nil, nil
		}
		c.Begin(ep)
		up, err := p.tr.dial(context.Background(), ep.Address)
		if err == nil {
			return up, ep
		}
		p.log.Debug("tcp: connect failed", "endpoint", ep.Address, "err", err)
		c.End(ep, upstream.ConnectFailure)
		info.Avoid = ep
	}
	return nil, nil
}

// relay copies both ways until both directions end, passing half-closes
// through so request/response protocols that close their write side work.
// It returns the bytes copied from a to b and from b to a.
func relay(a, b net.Conn) (aToB, bToA int64) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); aToB = copyHalf(b, a) }()
	go func() { defer wg.Done(); bToA = copyHalf(a, b) }()
	wg.Wait()
	b.Close()
	return aToB, bToA
}

type closeWriter interface{ CloseWrite() error }

func copyHalf(dst, src net.Conn) int64 {
	buf := copyBuffers.Get().(*[]byte)
	n, err := io.CopyBuffer(dst, src, *buf)
	copyBuffers.Put(buf)
	if cw, ok := dst.(closeWriter); ok && err == nil {
		cw.CloseWrite()
		return n
	}
	// Without half-close (or after an error) the only signal left is a
	// full close, which also unblocks the other direction.
	dst.Close()
	src.Close()
	return n
}
