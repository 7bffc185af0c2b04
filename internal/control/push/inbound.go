package push

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	meshv1 "weft.dev/weft/api/mesh/v1"
	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/resource"
)

// Each proxy's own inbound policy (mTLS mode, authorization) depends on its
// workload's namespace and labels, not on what it calls: it travels as the
// proxy's "inbound" resource beside the shared services and clusters.

// inboundCache holds the inbound policy of each distinct workload (its
// namespace and labels), computed on first use.
type inboundCache struct {
	set *resource.Set // only what inbound policy depends on

	mu sync.Mutex
	m  map[string]*blob // selfKey -> blob
}

func newInboundCache(full *resource.Set) *inboundCache {
	return &inboundCache{
		set: &resource.Set{
			Services:              full.Services,
			AuthorizationPolicies: full.AuthorizationPolicies,
			PeerAuthentications:   full.PeerAuthentications,
		},
		m: map[string]*blob{},
	}
}

// selfKey identifies a workload for inbound policy: namespace and labels.
func selfKey(ns string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(ns)
	for _, k := range keys {
		b.WriteString("\x00")
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(labels[k])
	}
	return b.String()
}

// inbound returns the inbound policy of the workload ns/labels.
func (v *view) inbound(key, ns string, labels map[string]string) (*blob, error) {
	c := v.inbounds
	c.mu.Lock()
	b := c.m[key]
	c.mu.Unlock()
	if b != nil {
		return b, nil
	}
	cfg, err := compile.Compile(c.set, compile.Options{Namespace: ns, Services: []string{}, Self: &compile.Self{Namespace: ns, Labels: labels}})
	if err != nil {
		return nil, fmt.Errorf("inbound policy: %w", err)
	}
	body, err := json.Marshal(cfg.Inbound)
	if err != nil {
		return nil, fmt.Errorf("inbound policy: %w", err)
	}
	b = newBlob(meshv1.InboundResource, body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev := c.m[key]; prev != nil {
		return prev, nil
	}
	c.m[key] = b
	return b, nil
}

// proxyVersion is the version of a proxy's whole config: its scoped view
// and its inbound policy. Equal content gives equal versions on every
// replica.
func proxyVersion(sc *scoped, in *blob) string {
	h := sha256.New()
	h.Write([]byte(sc.version))
	if in != nil { // a gateway has none
		h.Write(in.sum[:])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
