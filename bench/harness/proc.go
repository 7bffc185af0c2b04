package harness

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go runs on.
const clockTicks = 100

// Proc is a process the harness started (a proxy, the server), in its own
// process group so that Stop ends it and its children (nginx's worker).
type Proc struct {
	Name string
	Argv []string
	Log  string // file with its stdout and stderr

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProc starts argv with extra environment variables, logging to
// dir/name.log. The process dies with the harness (Pdeathsig).
func StartProc(dir, name string, argv, env []string) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Argv: argv, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the process's own id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop ends the process group: SIGTERM, then SIGKILL after a grace period.
func (p *Proc) Stop() {
	if done, _ := p.Exited(); done {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// Tail returns the end of the process's log, for error messages.
func (p *Proc) Tail() string {
	b, _ := os.ReadFile(p.Log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// PIDs returns the process and all its descendants.
func (p *Proc) PIDs() []int { return descendants(p.PID()) }

// CPU is the user+system CPU time of the process and its descendants
// (utime+stime of /proc/PID/stat, all threads).
func (p *Proc) CPU() time.Duration {
	var total time.Duration
	for _, pid := range p.PIDs() {
		if st, err := readStat(pid); err == nil {
			total += st.cpu
		}
	}
	return total
}

// Memory is a process tree's resident set: the largest VmHWM and VmRSS of
// any one process in it (for nginx: the worker, not master+worker summed,
// which would count shared pages twice), and the sum of VmRSS. Split is
// what the resident set of the process with the largest VmRSS is made of
// (nil when the kernel does not say).
type Memory struct {
	PeakRSS, RSS, SumRSS uint64 // bytes
	Split                *MemSplit
}

// MemSplit divides one process's resident set as /proc/PID/status does:
// RssAnon (private: heap, stacks), RssFile (pages of files it maps: its
// program and libraries, shared with every process mapping the same file
// and reclaimable while clean) and RssShmem (shared memory). The three add
// up to RSS, VmRSS at the same moment. Bytes.
type MemSplit struct {
	RSS   uint64 `json:"rss"`
	Anon  uint64 `json:"anon"`
	File  uint64 `json:"file"`
	Shmem uint64 `json:"shmem"`
}

// Memory reads VmHWM, VmRSS and the RssAnon/RssFile/RssShmem split of
// every process of the tree.
func (p *Proc) Memory() Memory {
	var m Memory
	for _, pid := range p.PIDs() {
		st, err := readStatusMem(pid)
		if err != nil {
			continue
		}
		if st.split != nil && (m.Split == nil || st.rss > m.RSS) {
			m.Split = st.split
		}
		m.PeakRSS = max(m.PeakRSS, st.hwm)
		m.RSS = max(m.RSS, st.rss)
		m.SumRSS += st.rss
	}
	return m
}

type procStat struct {
	ppid int
	cpu  time.Duration
}

// readStat parses /proc/PID/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted from the last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, errors.New("stat: short")
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseUint(f[11], 10, 64)
	st, err3 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return procStat{}, fmt.Errorf("stat: %w", err)
	}
	return procStat{ppid: ppid, cpu: time.Duration(ut+st) * time.Second / clockTicks}, nil
}

// statusMem is the memory of /proc/PID/status, in bytes: VmHWM, VmRSS and,
// when the kernel reports them (Linux 4.5 and later), RssAnon, RssFile and
// RssShmem.
type statusMem struct {
	hwm, rss uint64
	split    *MemSplit
}

// readStatusMem reads the memory figures of /proc/PID/status.
func readStatusMem(pid int) (statusMem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return statusMem{}, err
	}
	defer f.Close()
	return parseStatusMem(f)
}

func parseStatusMem(r io.Reader) (statusMem, error) {
	var st statusMem
	var split MemSplit
	hasSplit := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *uint64
		switch k {
		case "VmHWM":
			dst = &st.hwm
		case "VmRSS":
			dst = &st.rss
		case "RssAnon":
			dst, hasSplit = &split.Anon, true
		case "RssFile":
			dst = &split.File
		case "RssShmem":
			dst = &split.Shmem
		default:
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, perr := strconv.ParseUint(f[0], 10, 64)
		if perr != nil {
			continue
		}
		*dst = n * 1024
	}
	if st.hwm == 0 && st.rss == 0 {
		return statusMem{}, errors.New("status: no VmHWM/VmRSS (kernel thread or zombie)")
	}
	if hasSplit {
		split.RSS = st.rss
		st.split = &split
	}
	return st, sc.Err()
}

// descendants returns root and every process whose parent chain leads to it.
func descendants(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		children[st.ppid] = append(children[st.ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// WaitTCP waits until every address accepts a TCP connection, or the
// process exits, or the timeout passes.
func WaitTCP(p *Proc, timeout time.Duration, addrs ...string) error {
	deadline := time.Now().Add(timeout)
	for _, a := range addrs {
		for {
			if done, err := p.Exited(); done {
				return fmt.Errorf("%s exited (%v) before listening on %s:\n%s", p.Name, err, a, p.Tail())
			}
			c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: nothing listening on %s after %s:\n%s", p.Name, a, timeout, p.Tail())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// Ports hands out loopback ports that were free when asked. Each is held
// open until Release, so two calls never return the same port.
type Ports struct {
	held []net.Listener
}

// Addr returns a fresh 127.0.0.1:PORT.
func (ps *Ports) Addr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	ps.held = append(ps.held, ln)
	return ln.Addr().String(), nil
}

// Release frees the ports handed out so far so that processes can bind
// them.
func (ps *Ports) Release() {
	for _, ln := range ps.held {
		ln.Close()
	}
	ps.held = nil
}

// Port returns the port number of a host:port.
func Port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}
