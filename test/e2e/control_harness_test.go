package e2e

// Helpers for end-to-end tests of the control plane: start `weft control`
// on free loopback ports with its own WEFT_HOME and data dir, and run the
// CLI against it the way a person would (the CLI context file, no flags).

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"weft.dev/weft/internal/control/api"
)

// ControlOptions are the flags of one `weft control`.
type ControlOptions struct {
	// Home is WEFT_HOME (the CLI context goes there); empty: a new temp
	// dir. Pass a previous plane's Home (and DataDir) to restart it.
	Home    string
	DataDir string // empty: <Home>/data
	// Store is "bolt" (default) or "etcd", with EtcdEndpoints.
	Store         string
	EtcdEndpoints string
	// HTTP and GRPC listen addresses; empty: free loopback ports.
	HTTP, GRPC string
	Args       []string // more flags
}

// ControlPlane is one running `weft control`.
type ControlPlane struct {
	t       testing.TB
	Home    string
	DataDir string
	HTTP    string // host:port of the API
	GRPC    string // host:port for proxies
	Stderr  *syncBuffer

	opts   ControlOptions
	args   []string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// StartControl starts `weft control`, waits until its API answers and
// stops it when the test ends; its output is logged if the test fails.
func StartControl(t testing.TB, opts ControlOptions) *ControlPlane {
	t.Helper()
	if opts.Home == "" {
		opts.Home = t.TempDir()
	}
	if opts.DataDir == "" {
		opts.DataDir = filepath.Join(opts.Home, "data")
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		c, err := startControl(t, opts)
		if err == nil {
			return c
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") || (opts.HTTP != "" && opts.GRPC != "") {
			break
		}
	}
	t.Fatalf("weft control did not start: %v", lastErr)
	return nil
}

func startControl(t testing.TB, opts ControlOptions) (*ControlPlane, error) {
	c := &ControlPlane{t: t, Home: opts.Home, DataDir: opts.DataDir, HTTP: opts.HTTP, GRPC: opts.GRPC,
		Stderr: &syncBuffer{}, exited: make(chan struct{}), opts: opts}
	if c.HTTP == "" {
		c.HTTP = freeAddr(t)
	}
	if c.GRPC == "" {
		c.GRPC = freeAddr(t)
	}
	c.args = []string{"control", "--data-dir", c.DataDir, "--http", c.HTTP, "--grpc", c.GRPC}
	if opts.Store != "" {
		c.args = append(c.args, "--store", opts.Store)
	}
	if opts.EtcdEndpoints != "" {
		c.args = append(c.args, "--etcd-endpoints", opts.EtcdEndpoints)
	}
	c.args = append(c.args, opts.Args...)
	c.cmd = exec.Command(weftBin, c.args...)
	c.cmd.Stdout = c.Stderr
	c.cmd.Stderr = c.Stderr
	c.cmd.Env = append(os.Environ(), "WEFT_HOME="+c.Home)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", weftBin, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("weft %s\n--- control output ---\n%s--- end of control output ---", strings.Join(c.args, " "), c.Stderr.String())
		}
	})
	if err := c.waitReady(20 * time.Second); err != nil {
		c.Stop()
		return nil, fmt.Errorf("%w\n--- control output ---\n%s", err, c.Stderr.String())
	}
	return c, nil
}

func (c *ControlPlane) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("weft control exited before ready: %v", c.err)
		default:
		}
		resp, err := hc.Get("http://" + c.HTTP + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET /healthz not 200 after %v (last error %v)", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends SIGTERM, then SIGKILL after 5 s.
func (c *ControlPlane) Stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		c.t.Logf("weft control ignored SIGTERM for 5s; killing it")
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// Kill ends the control plane at once, as a crash would.
func (c *ControlPlane) Kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Kill()
	<-c.exited
}

// Restart stops the plane and starts it again on the same home, data dir,
// ports and flags.
func (c *ControlPlane) Restart() *ControlPlane {
	c.t.Helper()
	c.Stop()
	o := c.opts
	o.HTTP, o.GRPC = c.HTTP, c.GRPC
	return StartControl(c.t, o)
}

// ClientConfig is the CLI context the plane wrote.
func (c *ControlPlane) ClientConfig() *api.ClientConfig {
	c.t.Helper()
	cfg, err := api.ReadClientConfig(filepath.Join(c.Home, "config"))
	if err != nil {
		c.t.Fatalf("CLI context: %v", err)
	}
	return cfg
}

// JoinToken is what proxies present.
func (c *ControlPlane) JoinToken() string {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.DataDir, "join.token"))
	if err != nil {
		c.t.Fatalf("join token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// CLIResult is the outcome of one CLI run.
type CLIResult struct {
	Stdout, Stderr string
	Code           int
}

func (r CLIResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%sstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// CLI runs `weft ARGS` with this plane's WEFT_HOME, as a person on the
// same machine would.
func (c *ControlPlane) CLI(args ...string) CLIResult {
	c.t.Helper()
	return runCLI(c.t, []string{"WEFT_HOME=" + c.Home}, "", args...)
}

// CLIStdin is CLI with stdin.
func (c *ControlPlane) CLIStdin(stdin string, args ...string) CLIResult {
	c.t.Helper()
	return runCLI(c.t, []string{"WEFT_HOME=" + c.Home}, stdin, args...)
}

// MustCLI runs the CLI and fails the test unless it exits 0; it returns
// stdout.
func (c *ControlPlane) MustCLI(args ...string) string {
	c.t.Helper()
	r := c.CLI(args...)
	if r.Code != 0 {
		c.t.Fatalf("weft %s: %s", strings.Join(args, " "), r)
	}
	return r.Stdout
}

func runCLI(t testing.TB, env []string, stdin string, args ...string) CLIResult {
	t.Helper()
	cmd := exec.Command(weftBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("weft %v: %v", args, err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("weft %s did not finish in 60s", strings.Join(args, " "))
	}
	return CLIResult{Stdout: out.String(), Stderr: errb.String(), Code: cmd.ProcessState.ExitCode()}
}

// APICall sends one request to the API with the given token ("" for
// none) and returns the status and body.
func (c *ControlPlane) APICall(method, path, token, body string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://"+c.HTTP+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// writeControlFile writes content to name in a new temp dir and returns its path.
func writeControlFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
