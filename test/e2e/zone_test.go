package e2e

import (
	"fmt"
	"testing"
	"time"
)

func TestZoneAware(t *testing.T) {
	t.Parallel()
	local := NewHTTPBackend(t, "local", backendOptions{Zone: "zone-a"})
	remote := NewHTTPBackend(t, "remote", backendOptions{Zone: "zone-b"})
	p := StartProxy(t, docs(
		serviceWith(t, "web", 80, "http", local, remote),
		trafficPolicy("web", `
zoneAware: {enabled: true}
healthCheck: {path: /healthz, interval: 100ms, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 1}
retry: {attempts: 2, retryOn: [connect-failure, reset]}
`)), ProxyOptions{Zone: "zone-a"})
	c := proxyClient(t, p)

	if counts := countBackends(t, c, "http://web:80/zone", 50); counts["local"] != 50 {
		t.Errorf("proxy in zone-a, both zones healthy: %v; want all 50 to the zone-a endpoint", counts)
	}
	local.Kill()
	eventually(t, 5*time.Second, func() string {
		counts := countBackends(t, c, "http://web:80/zone", 20)
		if counts["remote"] != 20 {
			return fmt.Sprintf("zone-a endpoint down: %v; want all traffic to zone-b", counts)
		}
		return ""
	})
}
