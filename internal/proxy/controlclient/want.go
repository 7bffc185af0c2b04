package controlclient

import (
	"context"

	meshv1 "weft.dev/weft/api/mesh/v1"
)

// Learning on demand. A proxy that declared its dependencies gets only
// those services; when its app calls a host the config does not know, the
// data plane asks for it with Want (or WaitFor) and the control plane adds
// the service to this proxy's scope for the rest of its life (also across
// reconnects: the next Hello lists it).

// Want asks the control plane to add the service host names ("name",
// "name.namespace", "name.namespace.svc.cluster.local", with or without a
// port) to this proxy's config. It does not wait. It returns false when host
// cannot name a mesh service. A proxy that declared no dependencies already
// gets every service, so Want is then a no-op.
func (c *Client) Want(host string) bool {
	ns, name, ok := meshv1.ParseServiceRef(host, c.opts.Namespace)
	if !ok {
		return false
	}
	if len(c.opts.Dependencies) == 0 {
		return true
	}
	key := ns + "/" + name
	if c.declared[key] {
		return true
	}
	c.mu.Lock()
	if c.wants[key] {
		c.mu.Unlock()
		return true
	}
	c.wants[key] = true
	ch, done := c.send, c.sendDone
	c.mu.Unlock()
	if ch == nil {
		return true // not connected: the next Hello carries it
	}
	m := &meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Want{Want: &meshv1.Want{Service: key}}}
	select {
	case ch <- m:
	default:
		// The send queue is full: deliver from a goroutine rather than
		// block the data plane. If the stream ends first, the next Hello
		// carries the want.
		go func() {
			select {
			case ch <- m:
			case <-done:
			}
		}()
	}
	return true
}

// WaitFor asks for host's service (as Want) and waits until the applied
// config has it (true), or the control plane says it does not exist, the
// proxy is not connected, or ctx ends (false). The data plane calls it when
// a request names an unknown host, with a short deadline (say a second),
// and answers "unknown service" on false.
func (c *Client) WaitFor(ctx context.Context, host string) bool {
	ns, name, ok := meshv1.ParseServiceRef(host, c.opts.Namespace)
	if !ok {
		return false
	}
	key := ns + "/" + name
	res := meshv1.ServiceResource(ns, name)
	// A proxy that declared no dependencies already gets every service:
	// there is nothing to ask for.
	everything := len(c.opts.Dependencies) == 0
	for asked := false; ; asked = true {
		c.mu.Lock()
		_, has := c.decoded[res]
		has = has && c.applied != nil && c.applied.Version == c.version
		unknown, connected, ch := c.unknown[key], c.connected, c.changed
		c.mu.Unlock()
		switch {
		case has:
			return true
		case everything:
			return false
		case !asked:
			c.Want(host)
			continue
		case unknown, !connected:
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}
