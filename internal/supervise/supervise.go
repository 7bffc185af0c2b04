// Package supervise runs the application beside its sidecar on VMs and bare
// hosts: `weft proxy ... -- CMD ARGS`. The app starts only once the proxy is
// ready, with HTTP_PROXY pointing at the proxy; signals reach it; and on
// shutdown the proxy drains before the app is stopped, so no request is cut
// off. The proxy then exits with the app's exit code.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// App is the supervised process.
type App struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *slog.Logger
}

// Env returns the environment the app runs with: the proxy's own, plus
// HTTP_PROXY/http_proxy set to the outbound listener and NO_PROXY covering
// loopback, unless the user already set them.
func Env(base []string, outbound string) []string {
	env := append([]string(nil), base...)
	has := func(k string) bool {
		for _, kv := range env {
			if strings.HasPrefix(kv, k+"=") {
				return true
			}
		}
		return false
	}
	if outbound != "" {
		for _, k := range []string{"HTTP_PROXY", "http_proxy"} {
			if !has(k) {
				env = append(env, k+"=http://"+outbound)
			}
		}
	}
	for _, k := range []string{"NO_PROXY", "no_proxy"} {
		if !has(k) {
			env = append(env, k+"=localhost,127.0.0.1,::1")
		}
	}
	return env
}

// Start runs argv with env, its output going to ours.
func Start(argv, env []string, log *slog.Logger) (*App, error) {
	if len(argv) == 0 {
		return nil, errors.New("no command given after --")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Its own process group, so a terminal's Ctrl-C reaches the proxy first
	// and the proxy decides when the app stops (after draining).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	a := &App{cmd: cmd, done: make(chan struct{}), log: log}
	go func() {
		a.err = cmd.Wait()
		close(a.done)
	}()
	log.Info("app started", "pid", cmd.Process.Pid, "cmd", strings.Join(argv, " "))
	return a, nil
}

// Done is closed when the app has exited.
func (a *App) Done() <-chan struct{} { return a.done }

// Signal forwards a signal to the app (SIGHUP, SIGUSR1, ...).
func (a *App) Signal(sig os.Signal) {
	select {
	case <-a.done:
	default:
		_ = a.cmd.Process.Signal(sig)
	}
}

// Stop asks the app to exit with SIGTERM and kills it after grace.
func (a *App) Stop(grace time.Duration) {
	a.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-a.done:
	case <-t.C:
		a.log.Warn("app did not exit after SIGTERM; killing it", "grace", grace)
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

// ExitCode is the app's exit status once it has exited (128+signal when a
// signal ended it, as shells report).
func (a *App) ExitCode() int {
	<-a.done
	if a.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(a.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 1
}

// WaitReady polls ready until it is true or ctx ends.
func WaitReady(ctx context.Context, ready func() bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("proxy not ready: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
