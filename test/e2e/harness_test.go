// Package e2e runs the built `weft proxy` binary against real servers
// started in this process on loopback: HTTP/1, h2c, gRPC, WebSocket and TCP
// backends, and real clients (net/http, grpc-go, gorilla/websocket, curl,
// h2spec). Each test starts its own proxy with its own config file, so tests
// share nothing but the binary, which TestMain builds once.
//
// Set WEFT_BIN to test a binary built elsewhere instead of building
// ./cmd/weft.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// weftBin is the path of the binary under test, set by TestMain.
var weftBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if bin := os.Getenv("WEFT_BIN"); bin != "" {
		weftBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "weft-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	weftBin = filepath.Join(dir, "weft")
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	build := exec.Command("go", "build", "-o", weftBin, "./cmd/weft")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/weft failed: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// freeAddr returns a loopback address with a port that was free a moment
// ago. Start retries if the proxy loses the race for it.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// syncBuffer collects a process's output while tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// ProxyOptions are the flags of one `weft proxy` beyond config and ports.
type ProxyOptions struct {
	// Upstreams are NAME[.NAMESPACE][:PORT] services to give a local port.
	Upstreams []string
	Zone      string
	Env       []string
	// Args are extra flags, e.g. --inbound and --app.
	Args []string
}

// Proxy is one running `weft proxy`.
type Proxy struct {
	t          testing.TB
	ConfigPath string
	Outbound   string            // host:port of the forward proxy
	Admin      string            // host:port of the admin listener
	Upstream   map[string]string // service spec -> host:port
	Stderr     *syncBuffer

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // exit status, valid once exited is closed
}

// StartProxy writes config to a fresh file, starts `weft proxy` on free
// loopback ports, waits for /ready and stops the process when the test ends.
// The proxy's output is shown in the test log if the test fails.
func StartProxy(t testing.TB, config string, opts ProxyOptions) *Proxy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "weft.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := startProxy(t, path, opts)
		if err == nil {
			return p
		}
		lastErr = err
		// Another process may have taken a port between freeAddr and bind.
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("weft proxy did not become ready: %v", lastErr)
	return nil
}

func startProxy(t testing.TB, path string, opts ProxyOptions) (*Proxy, error) {
	p := &Proxy{
		t:          t,
		ConfigPath: path,
		Outbound:   freeAddr(t),
		Admin:      freeAddr(t),
		Upstream:   map[string]string{},
		Stderr:     &syncBuffer{},
		exited:     make(chan struct{}),
	}
	args := []string{"proxy", "--config", path, "--outbound", p.Outbound, "--admin", p.Admin}
	for _, u := range opts.Upstreams {
		addr := freeAddr(t)
		p.Upstream[u] = addr
		args = append(args, "--upstream", u+"="+addr)
	}
	if opts.Zone != "" {
		args = append(args, "--zone", opts.Zone)
	}
	args = append(args, opts.Args...)
	if err := p.launch(args, opts.Env, "proxy", 15*time.Second); err != nil {
		return nil, err
	}
	return p, nil
}

// launch starts `weft args...` as p, stops it when the test ends (showing
// its output if the test failed), and waits up to timeout for /ready.
func (p *Proxy) launch(args, env []string, label string, timeout time.Duration) error {
	t := p.t
	p.cmd = exec.Command(weftBin, args...)
	p.cmd.Stdout = p.Stderr
	p.cmd.Stderr = p.Stderr
	p.cmd.Env = append(os.Environ(), env...)
	// If the test binary dies (panic, -timeout), take the proxy with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", weftBin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("weft %s\n--- %s output ---\n%s--- end of proxy output ---", strings.Join(args, " "), label, p.Stderr.String())
		}
	})
	if err := p.waitReady(timeout); err != nil {
		p.Stop()
		return fmt.Errorf("%w\n--- proxy output ---\n%s", err, p.Stderr.String())
	}
	return nil
}

func (p *Proxy) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("weft proxy exited before ready: %v", p.err)
		default:
		}
		resp, err := c.Get("http://" + p.Admin + "/ready")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET /ready not 200 after %v (last error %v)", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends SIGTERM, then SIGKILL if the proxy has not exited in 5 s.
func (p *Proxy) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.t.Logf("weft proxy ignored SIGTERM for 5s; killing it")
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// Exited reports whether the proxy process has ended.
func (p *Proxy) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// PID is the proxy's process id.
func (p *Proxy) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the proxy.
func (p *Proxy) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// ConfigDump returns the body of GET /config.
func (p *Proxy) ConfigDump() string {
	p.t.Helper()
	status, body := p.adminGet("/config")
	if status != http.StatusOK {
		p.t.Fatalf("GET /config: status %d: %s", status, body)
	}
	return body
}

func (p *Proxy) adminGet(path string) (int, string) {
	p.t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.Admin + path)
	if err != nil {
		p.t.Fatalf("GET admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// WriteConfig replaces the config file atomically (write and rename, as
// config management tools do), without signalling the proxy.
func (p *Proxy) WriteConfig(config string) {
	p.t.Helper()
	tmp := p.ConfigPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(config), 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, p.ConfigPath); err != nil {
		p.t.Fatal(err)
	}
}

// Reload writes a new config, sends SIGHUP and waits until /config shows a
// change: the next request is served by the new config.
func (p *Proxy) Reload(config string) {
	p.t.Helper()
	before := p.ConfigDump()
	p.WriteConfig(config)
	p.Signal(syscall.SIGHUP)
	p.WaitConfigChange(before, 10*time.Second)
}

// WaitConfigChange polls /config until it differs from before.
func (p *Proxy) WaitConfigChange(before string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for p.ConfigDump() == before {
		if p.Exited() {
			p.t.Fatalf("weft proxy exited during reload: %v", p.err)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("/config did not change within %v of rewriting %s", timeout, p.ConfigPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitOutput polls the proxy's output until it contains every one of subs.
func (p *Proxy) WaitOutput(timeout time.Duration, subs ...string) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := p.Stderr.String()
		missing := ""
		for _, s := range subs {
			if !strings.Contains(out, s) {
				missing = s
				break
			}
		}
		if missing == "" {
			return out
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("proxy output lacks %q after %v; output:\n%s", missing, timeout, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PeakRSS is the proxy's peak resident set (VmHWM) in bytes.
func (p *Proxy) PeakRSS() int64 {
	p.t.Helper()
	return procStatusBytes(p.t, p.PID(), "VmHWM:")
}

func procStatusBytes(t testing.TB, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read proc status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, field) {
			continue
		}
		fs := strings.Fields(strings.TrimPrefix(line, field))
		n, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		return n * 1024 // kB
	}
	t.Fatalf("%s not in /proc/%d/status", field, pid)
	return 0
}

// eventually polls cond every 20 ms until it returns "" (done) or the
// timeout passes; it then fails with cond's last message.
func eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testContext is a context cancelled at the end of the test or after d.
func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
