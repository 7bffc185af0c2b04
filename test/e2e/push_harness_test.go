package e2e

// Helpers for end-to-end tests of config push: `weft proxy --control`
// processes registered with a running `weft control`, and readers of what
// each proxy runs.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/control/api"
)

// MeshProxyOptions are the flags of one `weft proxy --control`.
type MeshProxyOptions struct {
	Name   string
	Labels string // k=v,k=v
	// Apps maps the app's port names to where the app listens; the proxy
	// then runs an inbound and registers those ports.
	Apps      map[string]string
	DependsOn string
	Upstreams []string
	Args      []string
}

// StartMeshProxy starts a proxy against the control planes (any of them
// will do), waits until it applied its first config and stops it when the
// test ends.
func StartMeshProxy(t testing.TB, cps []*ControlPlane, opts MeshProxyOptions) *Proxy {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "join.token")
	if err := os.WriteFile(tokenFile, []byte(cps[0].JoinToken()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, c := range cps {
		addrs = append(addrs, c.GRPC)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := startMeshProxy(t, strings.Join(addrs, ","), tokenFile, opts)
		if err == nil {
			return p
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("weft proxy --control did not become ready: %v", lastErr)
	return nil
}

func startMeshProxy(t testing.TB, control, tokenFile string, opts MeshProxyOptions) (*Proxy, error) {
	p := &Proxy{t: t, Outbound: freeAddr(t), Admin: freeAddr(t), Upstream: map[string]string{}, Stderr: &syncBuffer{}, exited: make(chan struct{})}
	args := []string{"proxy", "--control", control, "--token-file", tokenFile, "--name", opts.Name,
		"--outbound", p.Outbound, "--admin", p.Admin, "--log-level", "debug"}
	if opts.Labels != "" {
		args = append(args, "--labels", opts.Labels)
	}
	if opts.DependsOn != "" {
		args = append(args, "--depends-on", opts.DependsOn)
	}
	if len(opts.Apps) > 0 {
		args = append(args, "--inbound", freeAddr(t))
		names := make([]string, 0, len(opts.Apps))
		for n := range opts.Apps {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			args = append(args, "--app", n+"="+opts.Apps[n])
		}
	}
	for _, u := range opts.Upstreams {
		addr := freeAddr(t)
		p.Upstream[u] = addr
		args = append(args, "--upstream", u+"="+addr)
	}
	args = append(args, opts.Args...)
	if err := p.launch(args, nil, "proxy "+opts.Name, 20*time.Second); err != nil {
		return nil, err
	}
	return p, nil
}

// RunningConfig is the config the proxy runs (GET /config).
func (p *Proxy) RunningConfig() *compile.Config {
	p.t.Helper()
	var cfg compile.Config
	if err := json.Unmarshal([]byte(p.ConfigDump()), &cfg); err != nil {
		p.t.Fatalf("GET /config: %v", err)
	}
	return &cfg
}

// routeWeights returns "cluster=weight,..." of the first rule of a
// service's first port, or "" when the proxy does not have it.
func routeWeights(cfg *compile.Config, ns, name string) string {
	for _, s := range cfg.Services {
		if s.Namespace != ns || s.Name != name || len(s.Ports) == 0 || s.Ports[0].HTTP == nil || len(s.Ports[0].HTTP.Rules) == 0 {
			continue
		}
		var parts []string
		for _, b := range s.Ports[0].HTTP.Rules[0].Backends {
			parts = append(parts, fmt.Sprintf("%s=%d", b.Cluster, b.Weight))
		}
		return strings.Join(parts, ",")
	}
	return ""
}

// endpointAddrs lists a cluster's endpoint addresses, sorted.
func endpointAddrs(cfg *compile.Config, cluster string) []string {
	c := cfg.Clusters[cluster]
	if c == nil {
		return nil
	}
	var out []string
	for _, e := range c.Endpoints {
		out = append(out, e.Address)
	}
	sort.Strings(out)
	return out
}

// waitAll polls every proxy's running config until cond holds on each,
// and returns how long the slowest took.
func waitAll(t testing.TB, timeout time.Duration, what string, ps []*Proxy, cond func(*compile.Config) bool) time.Duration {
	t.Helper()
	start := time.Now()
	done := make([]bool, len(ps))
	var slowest time.Duration
	for {
		all := true
		for i, p := range ps {
			if done[i] {
				continue
			}
			if cond(p.RunningConfig()) {
				done[i] = true
				slowest = time.Since(start)
			} else {
				all = false
			}
		}
		if all {
			return slowest
		}
		if time.Since(start) > timeout {
			t.Fatalf("not every proxy has %s after %v (done: %v)", what, timeout, done)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// proxyStatus reads `weft status -o json`.
func (c *ControlPlane) proxyStatus() []api.ProxyStatus {
	c.t.Helper()
	var st api.StatusResponse
	out := c.MustCLI("status", "-o", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("weft status -o json: %v\n%s", err, out)
	}
	return st.Proxies
}

// traffic sends requests through a proxy until stopped and counts the
// ones that failed (transport error or a status other than 200).
type traffic struct {
	stop     chan struct{}
	done     chan struct{}
	ok, fail atomic.Int64
	mu       sync.Mutex
	errs     []string
	backends map[string]int
}

func startTraffic(t testing.TB, c *http.Client, url string, workers int) *traffic {
	tr := &traffic{stop: make(chan struct{}), done: make(chan struct{}), backends: map[string]int{}}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-tr.stop:
					return
				default:
				}
				r, err := send(c, http.MethodGet, url, nil)
				tr.mu.Lock()
				if err != nil || r.Status != http.StatusOK {
					tr.fail.Add(1)
					if len(tr.errs) < 20 {
						msg := fmt.Sprint(err)
						if err == nil {
							msg = r.String()
						}
						tr.errs = append(tr.errs, time.Now().Format("15:04:05.000")+" "+msg)
					}
				} else {
					tr.ok.Add(1)
					tr.backends[r.Backend()]++
				}
				tr.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	go func() {
		wg.Wait()
		close(tr.done)
	}()
	return tr
}

// finish stops the traffic and fails the test if any request failed.
func (tr *traffic) finish(t testing.TB, what string) {
	t.Helper()
	close(tr.stop)
	<-tr.done
	if tr.ok.Load() == 0 {
		t.Errorf("%s: no request succeeded", what)
	}
	if n := tr.fail.Load(); n > 0 {
		t.Errorf("%s: %d of %d requests failed; first: %s", what, n, n+tr.ok.Load(), strings.Join(tr.errs, "\n"))
	}
	t.Logf("%s: %d requests, none failed; backends %v", what, tr.ok.Load(), tr.backends)
}

// hostOf is the host of a host:port.
func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}
