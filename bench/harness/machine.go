package harness

import (
	"bufio"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes where the run happened.
type Machine struct {
	CPU     string `json:"cpu"`
	Cores   int    `json:"cores"`
	Kernel  string `json:"kernel"`
	OS      string `json:"os"`
	Memory  string `json:"memory"`
	LoadAvg string `json:"loadavg"` // at the start of the run
	Nice    int    `json:"nice"`    // the scheduling priority of the benchmark
}

// ReadMachine reads the machine's description from /proc and /etc.
func ReadMachine() Machine {
	m := Machine{Cores: runtime.NumCPU()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	m.Kernel = readTrim("/proc/sys/kernel/osrelease")
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					kb, _ := strconv.ParseFloat(f[0], 64)
					m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	m.LoadAvg = readTrim("/proc/loadavg")
	if st, err := os.ReadFile("/proc/self/stat"); err == nil {
		if i := strings.LastIndexByte(string(st), ')'); i >= 0 {
			if f := strings.Fields(string(st[i+1:])); len(f) > 16 {
				m.Nice, _ = strconv.Atoi(f[16]) // field 19
			}
		}
	}
	return m
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// Versions asks every program its version; repo is the weft tree the
// binary was built from, for its commit.
func Versions(b Bins, repo string) map[string]string {
	v := map[string]string{"go (harness)": runtime.Version()}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		v["go"] = strings.TrimSpace(string(out))
	}
	if bi, err := buildinfo.ReadFile(b.Weft); err == nil {
		rev, modified := "", ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev == "" && repo != "" {
			// Built without VCS stamping: ask the tree.
			if out, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output(); err == nil {
				rev = strings.TrimSpace(string(out))[:12]
			}
			if out, err := exec.Command("git", "-C", repo, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
				modified = "true"
			}
		}
		w := "commit " + orDash(rev)
		if modified == "true" {
			w += " with uncommitted changes in the tree"
		}
		v["weft"] = w + ", built with " + bi.GoVersion
	}
	first := func(args ...string) string {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil && len(out) == 0 {
			return "unknown (" + err.Error() + ")"
		}
		l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return l
	}
	v["nginx"] = first(b.Nginx, "-v")
	v["haproxy"] = first(b.HAProxy, "-v")
	v["caddy"] = first(b.Caddy, "version")
	v["fortio"] = first(b.Fortio, "version")
	if bi, err := buildinfo.ReadFile(b.Caddy); err == nil {
		v["caddy"] += " (" + bi.GoVersion + ")"
	}
	if bi, err := buildinfo.ReadFile(b.Fortio); err == nil {
		v["fortio"] += " (" + bi.GoVersion + ")"
	}
	return v
}
