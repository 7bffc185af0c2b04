package controlclient

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
)

// The gateway side (Options.Gateway): the stream carries one
// "gateway/<ns>/<name>" resource, the compiled Gateway without clusters,
// and the clusters its routes reach as "cluster/..." resources. Assembled,
// they are the compile.Gateway a file would have compiled to.

// handleGatewayLocked applies an update to a gateway and returns the ACK
// or NACK.
func (c *Client) handleGatewayLocked(u *meshv1.ConfigUpdate, changed bool) *meshv1.ProxyMessage {
	if !changed && c.gwApplied == u.Version {
		return ack(u.Version)
	}
	gw, err := c.assembleGatewayLocked(u.Version)
	if err == nil {
		err = c.opts.ApplyGateway(gw)
	}
	if err != nil {
		c.lastErr = fmt.Sprintf("version %s refused: %v", u.Version, err)
		c.log.Warn("gateway config refused; keeping the last good one", "version", u.Version, "error", err)
		return &meshv1.ProxyMessage{Kind: &meshv1.ProxyMessage_Nack{Nack: &meshv1.Nack{Version: u.Version, Error: err.Error()}}}
	}
	c.appliedGW, c.gwApplied = gw, u.Version
	if gw != nil {
		c.log.Debug("gateway config applied", "version", u.Version, "listeners", len(gw.Listeners), "clusters", len(gw.Clusters))
	}
	return ack(u.Version)
}

// assembleGatewayLocked builds the gateway's config from the received
// resources: nil when the control plane has no such Gateway.
func (c *Client) assembleGatewayLocked(version string) (*compile.Gateway, error) {
	if len(c.bad) > 0 {
		var errs []string
		for _, err := range c.bad {
			errs = append(errs, err.Error())
		}
		sort.Strings(errs)
		return nil, errors.New(strings.Join(errs, "; "))
	}
	want := meshv1.GatewayResource(c.opts.Namespace, c.opts.Gateway)
	v, ok := c.decoded[want].(*compile.Gateway)
	if !ok {
		return nil, nil
	}
	gw := *v // the decoded resource is shared between versions
	gw.Version = version
	gw.Clusters = map[string]*compile.Cluster{}
	for name, d := range c.decoded {
		if cl, ok := d.(*compile.Cluster); ok {
			gw.Clusters[strings.TrimPrefix(name, meshv1.ClusterPrefix)] = cl
		}
	}
	return &gw, nil
}

// Gateway is the last good gateway config, or nil.
func (c *Client) Gateway() *compile.Gateway {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.appliedGW
}
