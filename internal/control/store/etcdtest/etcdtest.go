// Package etcdtest starts a real, single-member etcd (the `etcd` binary,
// Debian package etcd-server) for tests of the etcd store backend and of
// control plane replicas. Tests skip when the binary is absent;
// scripts/test.sh installs it.
package etcdtest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary finds the etcd binary: $ETCD_BIN, then PATH, then /usr/bin/etcd.
func Binary() (string, bool) {
	if b := os.Getenv("ETCD_BIN"); b != "" {
		return b, true
	}
	if b, err := exec.LookPath("etcd"); err == nil {
		return b, true
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd", true
	}
	return "", false
}

// Etcd is one running etcd.
type Etcd struct {
	Endpoint string // http://127.0.0.1:PORT

	t      testing.TB
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
}

// Start runs etcd on free loopback ports with a temporary data dir, waits
// until it is healthy and stops it when the test ends. Short heartbeat and
// election timeouts make etcd's minimum lease TTL one second, so lease
// expiry tests run fast.
func Start(t testing.TB) *Etcd {
	t.Helper()
	bin, ok := Binary()
	if !ok {
		t.Skip("etcd binary not found: install the Debian package etcd-server (scripts/test.sh does when run as root) or set ETCD_BIN")
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		e, err := start(t, bin)
		if err == nil {
			return e
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("etcd did not start: %v", lastErr)
	return nil
}

func start(t testing.TB, bin string) (*Etcd, error) {
	client, peer := freeAddr(t), freeAddr(t)
	e := &Etcd{Endpoint: "http://" + client, t: t, out: &lockedBuffer{}, exited: make(chan struct{})}
	args := []string{
		"--name", "weft-test",
		"--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls", e.Endpoint,
		"--advertise-client-urls", e.Endpoint,
		"--listen-peer-urls", "http://" + peer,
		"--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "weft-test=http://" + peer,
		"--heartbeat-interval", "50",
		"--election-timeout", "500",
		"--max-txn-ops", "1024",
		"--logger", "zap",
		"--log-level", "warn",
	}
	e.cmd = exec.Command(bin, args...)
	e.cmd.Stdout = e.out
	e.cmd.Stderr = e.out
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		e.cmd.Wait()
		close(e.exited)
	}()
	t.Cleanup(func() {
		e.Stop()
		if t.Failed() {
			t.Logf("--- etcd output ---\n%s--- end of etcd output ---", e.out.String())
		}
	})
	if err := e.waitHealthy(20 * time.Second); err != nil {
		e.Stop()
		return nil, fmt.Errorf("%w\n%s", err, e.out.String())
	}
	return e, nil
}

func (e *Etcd) waitHealthy(timeout time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-e.exited:
			return fmt.Errorf("etcd exited")
		default:
		}
		resp, err := c.Get(e.Endpoint + "/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"true"`)) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd not healthy after %v (last error %v)", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills etcd and waits for it.
func (e *Etcd) Stop() {
	select {
	case <-e.exited:
		return
	default:
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(5 * time.Second):
		e.cmd.Process.Kill()
		<-e.exited
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
