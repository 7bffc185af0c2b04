package e2e

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

func TestAdmin(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a")
	p := StartProxy(t, serviceWith(t, "web", 80, "http", a), ProxyOptions{})
	mustOK(t, proxyClient(t, p), "http://web:80/counted")

	if status, body := p.adminGet("/ready"); status != http.StatusOK {
		t.Errorf("/ready: %d %s", status, body)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(p.ConfigDump()), &cfg); err != nil {
		t.Errorf("/config is not JSON: %v", err)
	} else if !strings.Contains(p.ConfigDump(), `"web"`) {
		t.Errorf("/config does not mention service web: %s", p.ConfigDump())
	}
	status, body := p.adminGet("/metrics")
	if status != http.StatusOK || !strings.Contains(body, "# TYPE") {
		t.Errorf("/metrics: %d, not Prometheus text:\n%.500s", status, body)
	}
}

// TestCurl drives the proxy with curl, a client that is not Go's.
func TestCurl(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not on PATH; scripts/test.sh installs it")
	}
	a := NewHTTPBackend(t, "a")
	p := StartProxy(t, serviceWith(t, "web", 80, "http", a), ProxyOptions{})
	for name, args := range map[string][]string{
		"forward proxy": {"-x", "http://" + p.Outbound},
		"CONNECT":       {"-p", "-x", "http://" + p.Outbound},
	} {
		cmd := exec.Command(curl, append([]string{"-sS", "--max-time", "10", "-D", "-", "-o", "/dev/null",
			"-H", "x-from: curl", "http://web:80/curl?x=1"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: curl: %v\n%s", name, err, out)
			continue
		}
		head := strings.ToLower(string(out))
		if !strings.Contains(head, " 200") || !strings.Contains(head, "x-backend: a") {
			t.Errorf("%s: want 200 from backend a, curl printed:\n%s", name, out)
		}
	}
	var seen int
	for _, e := range a.Log() {
		if e.Path == "/curl" && e.RawQuery == "x=1" && e.Header.Get("x-from") == "curl" {
			seen++
		}
	}
	if seen != 2 {
		t.Errorf("backend saw %d of 2 curl requests intact", seen)
	}
}
