package upstream

// Zone-aware routing: keep traffic in the proxy's own zone while that zone
// is healthy enough, and spill to every zone when it is not. The choice is
// made when a picker is built, so Pick pays nothing for it.

// zoneFilter splits the eligible endpoints (in config order) into the
// candidates a picker chooses among and the spare eligible endpoints
// outside them. c.mu must be held.
//
// With cfg.ZoneAware set and the proxy's zone known, the candidates are the
// local zone's eligible endpoints as long as they are at least
// MinHealthyPercent of the local zone's endpoints (and there is at least
// one); otherwise every eligible endpoint, in any zone.
func (c *Cluster) zoneFilter(eligible []*Endpoint) (cands, spare []*Endpoint, local bool) {
	cfg := c.Config()
	if cfg == nil || cfg.ZoneAware == nil || c.zone == "" {
		return eligible, nil, false
	}
	total := 0
	for _, e := range c.eps {
		if e.Zone == c.zone {
			total++
		}
	}
	healthy := 0
	for _, e := range eligible {
		if e.Zone == c.zone {
			healthy++
		}
	}
	if healthy == 0 || healthy*100 < cfg.ZoneAware.MinHealthyPercent*total {
		return eligible, nil, false
	}
	if healthy == len(eligible) {
		return eligible, nil, true
	}
	cands = make([]*Endpoint, 0, healthy)
	spare = make([]*Endpoint, 0, len(eligible)-healthy)
	for _, e := range eligible {
		if e.Zone == c.zone {
			cands = append(cands, e)
		} else {
			spare = append(spare, e)
		}
	}
	return cands, spare, true
}
