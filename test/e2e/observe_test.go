package e2e

// Observability end to end, with the real binaries: two proxies in control
// mode carry traffic; the control plane's graph and `weft top --once` show
// the edge with its exact count and rate; `weft tap` shows requests sent
// while it runs; a real Prometheus (Debian's) scrapes the proxies' admin
// /metrics and PromQL returns the request rate sent; the dashboard in real
// headless Chromium (Debian's, driven by playwright-core) draws the edge
// with a non-zero rate, and its screenshot is kept.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/control/api"
)

const observeServices = `apiVersion: v1
kind: Service
metadata: {name: frontend}
spec:
  selector: {app: frontend}
  ports: [{name: http, port: 8080, targetPort: http, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: backend}
spec:
  selector: {app: backend}
  ports: [{name: http, port: 9080, targetPort: http, appProtocol: http}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: backend}
spec:
  parentRefs: [{group: "", kind: Service, name: backend, port: 9080}]
  rules:
  - backendRefs: [{name: backend, port: 9080}]
`

// observeMesh is a control plane, a backend app behind its sidecar and a
// frontend sidecar that calls it; sent counts every request sent through
// the frontend to the backend.
type observeMesh struct {
	cp       *ControlPlane
	fe, be   *Proxy
	client   *http.Client
	sent     atomic.Int64
	adminTok string
}

func startObserveMesh(t *testing.T) *observeMesh {
	t.Helper()
	m := &observeMesh{cp: StartControl(t, ControlOptions{})}
	m.adminTok = m.cp.ClientConfig().Token
	m.cp.MustCLI("apply", "-f", writeControlFile(t, "mesh.yaml", observeServices))
	app := NewHTTPBackend(t, "backend")
	fast := []string{"--stats-interval", "300ms", "--access-log", "off"}
	m.be = StartMeshProxy(t, []*ControlPlane{m.cp}, MeshProxyOptions{Name: "backend-1", Labels: "app=backend", Apps: map[string]string{"http": app.Addr}, Args: fast})
	m.fe = StartMeshProxy(t, []*ControlPlane{m.cp}, MeshProxyOptions{Name: "frontend-1", Labels: "app=frontend", DependsOn: "backend", Args: fast})
	waitAll(t, 15*time.Second, "the backend's endpoint", []*Proxy{m.fe}, func(cfg *compile.Config) bool {
		return len(endpointAddrs(cfg, "backend.default:9080")) == 1
	})
	m.client = proxyClient(t, m.fe)
	return m
}

// call sends one request through the frontend's proxy to the backend.
func (m *observeMesh) call(t *testing.T, path string) {
	t.Helper()
	resp, err := m.client.Get("http://backend:9080" + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	m.sent.Add(1)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
}

func (m *observeMesh) graph(t *testing.T) (api.GraphResponse, *api.GraphEdge) {
	t.Helper()
	code, body := m.cp.APICall("GET", "/api/v1/graph?window=5m", m.adminTok, "")
	if code != 200 {
		t.Fatalf("GET /api/v1/graph: %d %s", code, body)
	}
	var g api.GraphResponse
	if err := json.Unmarshal([]byte(body), &g); err != nil {
		t.Fatal(err)
	}
	for i, e := range g.Edges {
		if e.Source == "default/frontend" && e.Target == "default/backend" {
			return g, &g.Edges[i]
		}
	}
	return g, nil
}

func TestObservability(t *testing.T) {
	t.Parallel()
	m := startObserveMesh(t)
	// Prometheus starts now, so that it is up when the load runs.
	prom := startPrometheus(t, m.fe.Admin, m.be.Admin)

	t.Run("graph and top", func(t *testing.T) {
		const n = 25
		for i := 0; i < n; i++ {
			m.call(t, "/items/"+strconv.Itoa(i))
		}
		var edge *api.GraphEdge
		var g api.GraphResponse
		deadline := time.Now().Add(10 * time.Second)
		for {
			g, edge = m.graph(t)
			if edge != nil && edge.Requests == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no frontend -> backend edge with %d requests in 10s: %+v", n, g.Edges)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if edge.Errors != 0 || edge.SuccessRate == nil || *edge.SuccessRate != 1 || edge.P99 == nil {
			t.Errorf("edge = %+v; want no errors, success 1 and a p99", edge)
		}
		if want := float64(n) / g.WindowSeconds; edge.RPS <= 0 || abs(edge.RPS-want) > 1e-9 {
			t.Errorf("edge rate %v; want %d requests over the %vs window = %v", edge.RPS, n, g.WindowSeconds, want)
		}
		nodes := map[string]api.GraphNode{}
		for _, nd := range g.Nodes {
			nodes[nd.ID] = nd
		}
		if be := nodes["default/backend"]; be.Workloads != 1 || be.Inbound.Requests != n {
			t.Errorf("backend node %+v; want 1 workload and %d requests in", be, n)
		}
		if _, ok := nodes["default/frontend"]; !ok {
			t.Errorf("no frontend node: %v", g.Nodes)
		}

		out := m.cp.MustCLI("top", "--once", "--window", "5m")
		var row []string
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 9 && f[0] == "backend" {
				row = f
			}
		}
		if row == nil {
			t.Fatalf("weft top --once has no backend row:\n%s", out)
		}
		// SERVICE NAMESPACE WORKLOADS RPS SUCCESS P50 P95 P99 REQUESTS
		if row[1] != "default" || row[2] != "1" || row[4] != "100.00%" || row[8] != strconv.Itoa(n) {
			t.Errorf("weft top backend row %q; want default, 1 workload, 100.00%%, %d requests:\n%s", row, n, out)
		}
		if rps, err := strconv.ParseFloat(row[3], 64); err != nil || rps <= 0 {
			t.Errorf("weft top rate %q; want a positive number", row[3])
		}
		if !strings.Contains(out, "SERVICE") || !strings.Contains(out, "frontend") {
			t.Errorf("weft top --once:\n%s", out)
		}
		t.Logf("weft top --once:\n%s", out)
	})

	t.Run("tap", func(t *testing.T) {
		cmd := exec.Command(weftBin, "tap", "backend", "--path", "/tapped/", "--limit", "2")
		cmd.Env = append(os.Environ(), "WEFT_HOME="+m.cp.Home)
		var stderr syncBuffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 16)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		exited := make(chan error, 1)
		var got []string
		// The taps reach the proxies a moment after the CLI connects: send
		// until two tapped requests came back, plus untapped ones between.
		stop := time.After(15 * time.Second)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		i := 0
	loop:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					go func() { exited <- cmd.Wait() }()
					break loop
				}
				got = append(got, l)
			case <-tick.C:
				i++
				m.call(t, "/untapped/"+strconv.Itoa(i))
				m.call(t, "/tapped/"+strconv.Itoa(i))
			case <-stop:
				cmd.Process.Kill()
				t.Fatalf("weft tap showed %d requests in 15s: %q\nstderr: %s", len(got), got, stderr.String())
			}
		}
		if err := <-exited; err != nil {
			t.Fatalf("weft tap: %v\nstderr: %s", err, stderr.String())
		}
		if len(got) != 2 {
			t.Fatalf("weft tap --limit 2 printed %d lines: %q", len(got), got)
		}
		for _, l := range got {
			for _, want := range []string{"default/frontend-1 -> backend.default", "GET backend:9080/tapped/", "  200  ", "ms"} {
				if !strings.Contains(l, want) {
					t.Errorf("tap line %q lacks %q", l, want)
				}
			}
		}
		if !strings.Contains(stderr.String(), "tapping 2 proxies") {
			t.Errorf("weft tap stderr: %q", stderr.String())
		}
		t.Logf("weft tap:\n%s\n%s", stderr.String(), strings.Join(got, "\n"))
		// The CLI left: the proxies are told to stop.
		waitFor(t, 5*time.Second, "the frontend's proxy to close the tap", func() bool {
			return strings.Contains(m.fe.Stderr.String(), "tap closed")
		})
	})

	t.Run("prometheus", func(t *testing.T) {
		if prom == nil {
			t.Skip("prometheus is not installed: scripts/test.sh installs it (Debian's prometheus) when run as root")
		}
		prom.waitUp(t, 2)
		// A steady load of rate rps through the frontend for a few seconds,
		// scraped every second.
		const rate, secs = 25, 6
		start := time.Now()
		tick := time.NewTicker(time.Second / rate)
		for i := 0; i < rate*secs; i++ {
			<-tick.C
			m.call(t, "/load")
		}
		tick.Stop()
		end := time.Now()
		t.Logf("sent %d requests in %v (%.1f rps)", rate*secs, end.Sub(start).Round(time.Millisecond), float64(rate*secs)/end.Sub(start).Seconds())
		at := end.Add(-500 * time.Millisecond)
		for _, rep := range []string{"client", "server"} {
			q := fmt.Sprintf(`sum(rate(weft_requests_total{reporter=%q,destination_workload="backend-1",response_code="200"}[4s]))`, rep)
			got := prom.query(t, q, at)
			if got < rate*0.75 || got > rate*1.25 {
				t.Errorf("%s = %.2f; want %d rps within 25%%", q, got, rate)
			} else {
				t.Logf("%s = %.2f (sent %d rps)", q, got, rate)
			}
		}
		// Exact counts once the last scrape has seen every request.
		q := `sum(weft_requests_total{reporter="client",source_workload="frontend-1",destination_service="backend.default",destination_workload="backend-1"})`
		want := float64(m.sent.Load())
		waitFor(t, 5*time.Second, "Prometheus to hold every request", func() bool { return prom.query(t, q, time.Now()) == want })
	})

	t.Run("dashboard", func(t *testing.T) {
		node, script := browserTooling(t)
		// Traffic in the last minute, so the edge has a rate.
		for i := 0; i < 10; i++ {
			m.call(t, "/dashboard")
		}
		waitFor(t, 5*time.Second, "the graph to count the latest requests", func() bool {
			_, e := m.graph(t)
			return e != nil && e.Requests == uint64(m.sent.Load())
		})
		artifacts, err := filepath.Abs("artifacts")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(artifacts, 0o755); err != nil {
			t.Fatal(err)
		}
		shot := filepath.Join(artifacts, "dashboard.png")
		link := m.cp.MustCLI("dashboard")
		link = strings.TrimSpace(link)
		if !strings.HasPrefix(link, "http://"+m.cp.HTTP+"/#token=") {
			t.Fatalf("weft dashboard printed %q", link)
		}
		cmd := exec.Command(node, script, link, "default/frontend", "default/backend", shot)
		cmd.Dir = filepath.Dir(script)
		var stdout, stderr syncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Run(); err != nil {
			t.Fatalf("the dashboard in Chromium: %v\n%s", err, stderr.String())
		}
		var found struct {
			RPS            float64  `json:"rps"`
			Requests       int      `json:"requests"`
			EdgeClass      string   `json:"edgeClass"`
			EdgeLabel      string   `json:"edgeLabel"`
			Nodes          []string `json:"nodes"`
			Address        string   `json:"address"`
			TokenInStorage bool     `json:"tokenInStorage"`
			RequestsSeen   []string `json:"requests_seen"`
			ServiceHeading string   `json:"serviceHeading"`
			Proxies        []string `json:"proxies"`
			Resources      []string `json:"resources"`
			Problems       []string `json:"problems"`
		}
		if err := json.Unmarshal([]byte(stdout.String()), &found); err != nil {
			t.Fatalf("dashboard script output %q: %v", stdout.String(), err)
		}
		t.Logf("dashboard: edge %q (%s), %v rps, nodes %v", found.EdgeLabel, found.EdgeClass, found.RPS, found.Nodes)
		if found.RPS <= 0 || found.Requests <= 0 || !strings.Contains(found.EdgeClass, "ok") || !strings.Contains(found.EdgeLabel, "rps") {
			t.Errorf("edge as drawn: %+v", found)
		}
		if !contains(found.Nodes, "default/frontend") || !contains(found.Nodes, "default/backend") {
			t.Errorf("nodes drawn %v; want frontend and backend", found.Nodes)
		}
		if found.ServiceHeading != "default/backend" {
			t.Errorf("clicking the backend node shows %q", found.ServiceHeading)
		}
		if len(found.Proxies) != 2 || !strings.Contains(strings.Join(found.Proxies, "\n"), "default/frontend-1") {
			t.Errorf("proxies view rows %q; want both proxies", found.Proxies)
		}
		for _, p := range found.Proxies {
			if !strings.Contains(p, "reports") {
				t.Errorf("proxies view row %q shows no telemetry", p)
			}
		}
		if !contains(found.Resources, "Service backend") || !contains(found.Resources, "HTTPRoute backend") {
			t.Errorf("resources view rows %q", found.Resources)
		}
		if len(found.Problems) > 0 {
			t.Errorf("the page reported problems: %q", found.Problems)
		}
		// The token arrived in the fragment, left the address bar, and never
		// reached the server's logs or a request line.
		tok := m.adminTok
		if strings.Contains(found.Address, tok) || !found.TokenInStorage {
			t.Errorf("address after load %q, token kept %v", found.Address, found.TokenInStorage)
		}
		for _, u := range found.RequestsSeen {
			if strings.Contains(u, tok) {
				t.Errorf("a request carried the token in its URL: %s", u)
			}
			if !strings.HasPrefix(u, "http://"+m.cp.HTTP+"/") {
				t.Errorf("the page fetched from elsewhere: %s", u)
			}
		}
		if strings.Contains(m.cp.Stderr.String(), tok) {
			t.Error("the admin token is in the control plane's log")
		}
		if fi, err := os.Stat(shot); err != nil || fi.Size() < 5000 {
			t.Fatalf("screenshot %s: %v", shot, err)
		}
		if os.Getenv("WEFT_UPDATE_SCREENSHOT") != "" {
			b, _ := os.ReadFile(shot)
			if err := os.WriteFile(filepath.Join("..", "..", "docs", "dashboard.png"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// browserTooling finds node, Chromium and the test's playwright-core
// (scripts/test.sh installs all three); without them the test skips.
func browserTooling(t *testing.T) (node, script string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil && os.Getenv("CHROMIUM") == "" {
		t.Skip("chromium is not installed: scripts/test.sh installs Debian's chromium when run as root")
	}
	dir, err := filepath.Abs("browser")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Skip("playwright-core is not installed: run npm ci in test/e2e/browser (scripts/test.sh does)")
	}
	return node, filepath.Join(dir, "dashboard.mjs")
}

// prometheus is a real Prometheus server scraping the given targets every
// second.
type prometheus struct {
	addr string
}

func startPrometheus(t *testing.T, targets ...string) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return nil
	}
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}
scrape_configs:
- job_name: weft
  static_configs: [{targets: [%s]}]
`, strings.Join(quoted, ", "))
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{addr: freeAddr(t)}
	var out syncBuffer
	cmd := exec.Command(bin, "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("--- prometheus output ---\n%s", out.String())
		}
	})
	return p
}

// waitUp waits until Prometheus is ready and n targets are up.
func (p *prometheus) waitUp(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 20*time.Second, "Prometheus to scrape every proxy", func() bool {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return false
		}
		return p.query(t, `sum(up{job="weft"})`, time.Now()) == float64(n)
	})
}

// query runs an instant PromQL query at time at and returns its single
// value (0 for an empty answer).
func (p *prometheus) query(t *testing.T, q string, at time.Time) float64 {
	t.Helper()
	v := url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(at.UnixNano())/1e9, 'f', 3, 64)}}
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?" + v.Encode())
	if err != nil {
		t.Fatalf("PromQL %s: %v", q, err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("PromQL %s: %v", q, err)
	}
	if r.Status != "success" {
		t.Fatalf("PromQL %s: %s", q, r.Error)
	}
	if len(r.Data.Result) == 0 {
		return 0
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("PromQL %s: value %q", q, s)
	}
	return f
}
