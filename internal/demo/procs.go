package demo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// procs runs the demo's processes and stops all of them, newest first, so
// that nothing outlives the demo.
type procs struct {
	logDir string
	mu     sync.Mutex
	list   []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func (ps *procs) start(name string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(ps.logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a terminal's Ctrl-C reaches only the demo, which
	// then stops everything in order. Pdeathsig: if the demo is killed
	// outright, its children go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// exited returns the first process that has exited, or nil.
func (ps *procs) exited() *proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.list {
		select {
		case <-p.done:
			return p
		default:
		}
	}
	return nil
}

// stopAll sends SIGTERM to every process, newest first (the gateway and
// proxies drain before the control plane goes), and kills what is still
// running after grace.
func (ps *procs) stopAll(grace time.Duration) {
	ps.mu.Lock()
	list := append([]*proc(nil), ps.list...)
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		p := list[i]
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			// Kill the whole group: a proxy's supervised app too.
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
}
