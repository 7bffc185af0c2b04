package telemetry

import (
	"net"
	"time"
)

// Conn is one opaque TCP connection through one side of a proxy. A nil
// *Conn ignores every call.
type Conn struct {
	rec      *Recorder
	conn     net.Conn
	reporter Reporter
	mtls     bool
	start    time.Time
	dur      time.Duration

	source Peer
	d      dest
	upAddr string
	flag   string

	// opened is set once the upstream connection is up; the series it was
	// counted under is the one the close is counted under.
	opened  bool
	openKey tcpKey

	received, sent int64
}

// BeginTCP starts recording a downstream connection that arrived on the
// rep side of the proxy.
func (r *Recorder) BeginTCP(conn net.Conn, rep Reporter) *Conn {
	if r == nil {
		return nil
	}
	return &Conn{rec: r, conn: conn, reporter: rep, start: time.Now()}
}

// Destination records the service, route and backend cluster the
// connection is for.
func (c *Conn) Destination(svcName, svcNamespace, route, cluster string) {
	if c != nil {
		c.d.svcName, c.d.svcNamespace, c.d.route, c.d.cluster = svcName, svcNamespace, route, cluster
	}
}

// Connected records the upstream connection (endpoint workload
// "namespace/name", address) and counts the connection opened.
func (c *Conn) Connected(workload, addr string) {
	if c == nil {
		return
	}
	c.d.workload, c.upAddr = workload, addr
	if m := c.rec.t.metrics; m != nil && !c.opened {
		c.openKey = c.key()
		m.tcp(&c.openKey).opened.Inc()
	}
	c.opened = true
}

// Flag records why the proxy closed the connection without relaying it.
func (c *Conn) Flag(reason string) {
	if c != nil {
		c.flag = reason
	}
}

// SetSource records the caller's identity (server side).
func (c *Conn) SetSource(p Peer) {
	if c != nil {
		c.source = p
	}
}

// SetMutualTLS records that the hop is protected by mutual TLS.
func (c *Conn) SetMutualTLS(on bool) {
	if c != nil {
		c.mtls = on
	}
}

// Bytes records what was relayed: received from and sent to the
// downstream peer.
func (c *Conn) Bytes(received, sent int64) {
	if c != nil {
		c.received, c.sent = received, sent
	}
}

func (c *Conn) key() tcpKey {
	k := tcpKey{labelKey{reporter: c.reporter, mtls: c.mtls, d: c.d, flags: c.flag}}
	if k.flags == "" {
		k.flags = noFlags
	}
	if c.reporter == Client {
		k.src = c.rec.selfPeer()
	} else {
		k.src, k.dst = c.source, c.rec.selfPeer()
	}
	return k
}

// End records the closed connection. A connection that never reached an
// upstream is counted opened and closed with its flag.
func (c *Conn) End() {
	if c == nil {
		return
	}
	c.dur = time.Since(c.start)
	t := c.rec.t
	if m := t.metrics; m != nil {
		k := c.openKey
		if !c.opened {
			k = c.key()
		}
		s := m.tcp(&k)
		if !c.opened {
			s.opened.Inc()
		}
		s.closed.Inc()
		s.received.Add(float64(c.received))
		s.sent.Add(float64(c.sent))
	}
	// A connection has no trace id to sample by; draw one.
	if l := t.log; l != nil && inSample(newTraceID(), l.sampleBelow) {
		l.write(c)
	}
}

func (c *Conn) appendLine(b []byte) []byte {
	b = appendStart(b, c.start)
	b = appendStringField(b, "reporter", c.reporter.String())
	b = appendStringField(b, "protocol", "tcp")
	flags := c.flag
	if flags == "" {
		flags = noFlags
	}
	b = appendStringField(b, "response_flags", flags)
	b = appendMillisField(b, "duration_ms", c.dur)
	if c.upAddr != "" {
		b = appendStringField(b, "upstream_host", c.upAddr)
	}
	b = appendIntField(b, "bytes_received", c.received)
	b = appendIntField(b, "bytes_sent", c.sent)
	k := c.key()
	b = appendLabels(b, &k.labelKey)
	if c.conn != nil {
		if a := c.conn.RemoteAddr(); a != nil {
			b = appendStringField(b, "downstream_address", a.String())
		}
	}
	return append(b, '}', '\n')
}
