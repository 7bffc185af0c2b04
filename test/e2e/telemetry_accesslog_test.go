package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTelemetryAccessLog(t *testing.T) {
	t.Parallel()
	p, web := telemetryMesh(t)
	c := proxyClient(t, p)
	for i := 0; i < 3; i++ {
		mustOK(t, c, fmt.Sprintf("http://web/log/%d?q=%d", i, i), "User-Agent", "tester/1.0")
	}
	if _, err := send(c, "POST", "http://web/upload", strings.NewReader(strings.Repeat("x", 1234))); err != nil {
		t.Fatal(err)
	}
	lines := p.WaitAccessLog(4, nil)
	seen := web.Log()
	for i, l := range lines[:3] {
		want := map[string]any{
			"reporter": "client", "method": "GET", "authority": "web", "path": fmt.Sprintf("/log/%d?q=%d", i, i),
			"protocol": "HTTP/1.1", "status": 200.0, "response_flags": "-", "route": "default/web/1",
			"upstream_cluster": "web.default:80", "upstream_host": web.Addr, "attempts": 1.0, "user_agent": "tester/1.0",
			"source_workload": "frontend-1", "source_namespace": "default", "destination_service": "web.default",
			"destination_workload": "web-a", "destination_namespace": "default", "connection_security_policy": "none",
			"bytes_received": 0.0,
		}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("line %d: %s = %#v; want %#v", i, k, l[k], v)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, l["start_time"].(string)); err != nil {
			t.Errorf("line %d: start_time: %v", i, err)
		}
		d, u := l["duration_ms"].(float64), l["upstream_ms"].(float64)
		if d <= 0 || u <= 0 || u > d {
			t.Errorf("line %d: duration_ms %v, upstream_ms %v", i, d, u)
		}
		if l["bytes_sent"].(float64) <= 0 {
			t.Errorf("line %d: bytes_sent %v", i, l["bytes_sent"])
		}
		// The ids in the log are the ones the backend received.
		tp := seen[i].Header.Get("Traceparent")
		traceID, spanID, _ := traceparentParts(t, tp)
		if l["trace_id"] != traceID || l["span_id"] != spanID || l["request_id"] != seen[i].Header.Get("X-Request-Id") {
			t.Errorf("line %d: trace %v span %v request %v; backend got traceparent %q x-request-id %q", i,
				l["trace_id"], l["span_id"], l["request_id"], tp, seen[i].Header.Get("X-Request-Id"))
		}
	}
	if up := lines[3]; up["method"] != "POST" || up["bytes_received"] != 1234.0 {
		t.Errorf("upload line: method %v bytes_received %v", up["method"], up["bytes_received"])
	}
}

// TestTelemetryAccessLogEscaping: what a client puts in the request line
// and headers cannot break a line's JSON. (net/http refuses control
// characters in both; the unit tests cover those.)
func TestTelemetryAccessLogEscaping(t *testing.T) {
	t.Parallel()
	p, _ := telemetryMesh(t)
	conn, err := net.DialTimeout("tcp", p.Outbound, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET http://web/q\"uote\\back?x=\"y\" HTTP/1.1\r\nHost: web\r\nUser-Agent: evil\"agent\\\xff\r\nX-Request-Id: id\"}{\r\n\r\n")
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, " 200 ") {
		t.Fatalf("status line %q: %v", line, err)
	}
	l := p.WaitAccessLog(1, nil)[0]
	for k, want := range map[string]string{
		"path":       `/q%22uote%5Cback?x="y"`,
		"user_agent": "evil\"agent\\\ufffd", // invalid UTF-8 becomes U+FFFD
		"request_id": `id"}{`,
	} {
		if l[k] != want {
			t.Errorf("%s = %q; want %q", k, l[k], want)
		}
	}
}

func TestTelemetryAccessLogFlags(t *testing.T) {
	t.Parallel()
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "access.log")
		p, _ := telemetryMesh(t, "--access-log", path)
		mustOK(t, proxyClient(t, p), "http://web/to-file")
		var lines []map[string]any
		eventually(t, 10*time.Second, func() string {
			b, _ := os.ReadFile(path)
			lines = accessLines(t, string(b))
			if len(lines) != 1 {
				return fmt.Sprintf("%d lines in %s", len(lines), path)
			}
			return ""
		})
		if lines[0]["path"] != "/to-file" {
			t.Errorf("line: %v", lines[0])
		}
		if n := len(p.AccessLog()); n != 0 {
			t.Errorf("%d lines on stdout with --access-log FILE", n)
		}
	})
	for _, args := range [][]string{{"--access-log", "off"}, {"--access-log-sampling", "0"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			p, _ := telemetryMesh(t, args...)
			c := proxyClient(t, p)
			for i := 0; i < 5; i++ {
				mustOK(t, c, "http://web/quiet")
			}
			// Metrics still count what the log leaves out.
			p.WaitValue("weft_requests_total", clientLabels("route", "default/web/1", "response_code", "200"), 5)
			time.Sleep(500 * time.Millisecond) // past the log's flush interval
			if n := len(p.AccessLog()); n != 0 {
				t.Errorf("%d access log lines with %v", n, args)
			}
		})
	}
	t.Run("sampling half", func(t *testing.T) {
		t.Parallel()
		p, _ := telemetryMesh(t, "--access-log-sampling", "0.5")
		c := proxyClient(t, p)
		const n = 400
		for i := 0; i < n; i++ {
			mustOK(t, c, "http://web/half")
		}
		p.WaitValue("weft_requests_total", clientLabels("route", "default/web/1", "response_code", "200"), n)
		time.Sleep(500 * time.Millisecond)
		if got := len(p.AccessLog()); got < n*35/100 || got > n*65/100 {
			t.Errorf("%d of %d requests logged at sampling 0.5", got, n)
		}
	})
	t.Run("bad sampling refused", func(t *testing.T) {
		t.Parallel()
		out, err := runWeft(t, "proxy", "--config", "/dev/null", "--access-log-sampling", "2")
		if err == nil || !strings.Contains(out, "--access-log-sampling") {
			t.Errorf("sampling 2: err %v, output %q", err, out)
		}
	})
}

// runWeft runs the weft binary to completion (it must exit by itself).
func runWeft(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	out, err := exec.CommandContext(ctx, weftBin, args...).CombinedOutput()
	return string(out), err
}
