package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func (cfg *Config) baselineDuration() time.Duration {
	if cfg.BaselineDuration > 0 {
		return min(cfg.BaselineDuration, cfg.Duration)
	}
	return cfg.Duration
}

// Config is one benchmark run's settings.
type Config struct {
	Smoke    bool
	Rate     int           // fixed-rate requests/s
	Conns    int           // fixed-rate connections
	Duration time.Duration // fixed-rate run length
	// BaselineDuration is the fixed-rate run length of the references
	// (direct, l4-floor), whose figures vary least; 0: Duration. It keeps
	// a full run of seven systems within its time budget.
	BaselineDuration time.Duration
	MaxConns         int           // max-throughput connections
	MaxDuration      time.Duration // max-throughput run length
	Warmup           time.Duration // per protocol, before measuring, not counted
	Payload          int
	// QuietWait: before each measured run, wait up to this long for the
	// rest of the machine to use less than QuietBelow cores.
	QuietWait  time.Duration
	QuietBelow float64
	// QuietBudget caps the waiting over the whole run, so that a machine
	// that never goes quiet costs minutes, not hours.
	QuietBudget time.Duration
	quietSpent  time.Duration
	// RetryNoisy: how many fixed-rate runs, in all, may be measured again
	// because other programs used the machine during them.
	RetryNoisy int
	retried    int
	Services   int      // idle-RSS check: services in the config
	Systems    []string // only these (empty: all)
	Out        string   // where results.md, latency.svg, results.json go
	WorkDir    string   // scratch; removed unless Keep
	Keep       bool
	Bins       Bins
	Command    string // the exact command, for the report
	Repo       string // the weft tree the binary was built from
	Log        io.Writer
}

// SystemResult is everything measured for one system.
type SystemResult struct {
	Name        string                 `json:"name"`
	Kind        string                 `json:"kind"`
	About       string                 `json:"about"`
	MTLS        bool                   `json:"mtls"`
	Unavailable string                 `json:"unavailable,omitempty"`
	Notes       []string               `json:"notes,omitempty"`
	Proxies     []string               `json:"proxies,omitempty"`
	Helpers     []string               `json:"helpers,omitempty"` // processes beside the proxies (weft control), not counted as proxies
	Proofs      []Proof                `json:"proofs,omitempty"`
	Fixed       map[string]*LoadResult `json:"fixed,omitempty"`
	Max         map[string]*LoadResult `json:"max,omitempty"`
	StartRSS    []uint64               `json:"startRSS,omitempty"` // per proxy, right after start (bytes)
	PeakRSS     []uint64               `json:"peakRSS,omitempty"`  // per proxy, VmHWM at the end (bytes)
	// StartMem and EndMem divide each proxy's resident set into private
	// (RssAnon), file-backed (RssFile) and shared-memory (RssShmem) pages,
	// right after start and when PeakRSS is read. /proc keeps no peak of
	// them, so the end of the runs is the one to compare. Missing from
	// results of older harnesses; an entry is null where the kernel does
	// not report them.
	StartMem []*MemSplit `json:"startMem,omitempty"`
	EndMem   []*MemSplit `json:"endMem,omitempty"`
	Err      string      `json:"error,omitempty"`
}

// Measured reports whether the system ran.
func (s *SystemResult) Measured() bool { return s.Unavailable == "" && s.Err == "" && s.Fixed != nil }

// IdleRSS is the idle weft proxy holding a big config.
type IdleRSS struct {
	Services int    `json:"services"`
	RSS      uint64 `json:"rss"`
	PeakRSS  uint64 `json:"peakRSS"`
	// Mem divides RSS into private, file-backed and shared-memory pages,
	// read with it (absent from older results).
	Mem *MemSplit `json:"mem,omitempty"`
	Err string    `json:"error,omitempty"`
}

// Results is a whole run.
type Results struct {
	Started  time.Time         `json:"started"`
	Seconds  float64           `json:"seconds"`
	Smoke    bool              `json:"smoke"`
	Command  string            `json:"command"`
	Machine  Machine           `json:"machine"`
	Versions map[string]string `json:"versions"`
	Settings map[string]string `json:"settings"`
	Systems  []*SystemResult   `json:"systems"`
	Idle     *IdleRSS          `json:"idle"`
	Failures []string          `json:"failures,omitempty"`
}

func (c *Config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}

// Prepare raises the file-descriptor limit and makes the scratch directory,
// certificates and Env. The returned cleanup stops nothing: callers stop
// what they start.
func Prepare(cfg *Config) (*Env, func(), error) {
	noFile := raiseNoFile()
	dir := cfg.WorkDir
	if dir == "" {
		d, err := os.MkdirTemp("", "weftbench-")
		if err != nil {
			return nil, nil, err
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	cleanup := func() {
		if !cfg.Keep {
			os.RemoveAll(dir)
		}
	}
	certs, err := MakeCerts(filepath.Join(dir, "certs"))
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	// Two descriptors per proxied connection, and some for the proxy itself.
	maxConn := min(4096, (noFile-256)/2)
	e := &Env{Dir: dir, Bins: cfg.Bins, Certs: certs, MaxConn: maxConn, NoFile: noFile, Root: os.Geteuid() == 0}
	return e, cleanup, nil
}

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit, for the
// harness and every process it starts, and returns it.
func raiseNoFile() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if rl.Cur > 1<<20 {
			rl.Cur = 1 << 20
		}
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	return int(rl.Cur)
}

// StartServer starts the upstream: fortio's server, HTTP echo (the 1 KiB
// request body comes back as the response) and gRPC ping (the payload comes
// back), with GOMAXPROCS=1.
func StartServer(e *Env) (*Proc, error) {
	var p *Proc
	_, err := retryBind(func() (*Deployment, error) {
		a, err := addrs(2)
		if err != nil {
			return nil, err
		}
		p, err = StartProc(e.Dir, "server", []string{e.Bins.Fortio, "server",
			"-http-port", a[0], "-grpc-port", a[1],
			"-redirect-port", "disabled", "-tcp-port", "disabled", "-udp-port", "disabled",
			"-loglevel", "Warning"}, []string{"GOMAXPROCS=1"})
		if err != nil {
			return nil, err
		}
		if err := WaitTCP(p, 10*time.Second, a...); err != nil {
			p.Stop()
			return nil, err
		}
		e.Server = map[string]string{HTTP: a[0], GRPC: a[1]}
		return nil, nil
	})
	return p, err
}

// Run runs the benchmark: every system, then the idle-RSS check. It
// returns the results even when some checks failed (listed in Failures).
func Run(ctx context.Context, cfg *Config) (*Results, error) {
	started := time.Now()
	e, cleanup, err := Prepare(cfg)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	cfg.logf("work dir %s; file-descriptor limit %d, proxies' maxconn %d", e.Dir, e.NoFile, e.MaxConn)

	caps, err := DetectWeft(cfg.Bins.Weft)
	if err != nil {
		return nil, err
	}
	res := &Results{
		Started:  started.UTC(),
		Smoke:    cfg.Smoke,
		Command:  cfg.Command,
		Machine:  ReadMachine(),
		Versions: Versions(cfg.Bins, cfg.Repo),
		Settings: map[string]string{
			"fixed":   fmt.Sprintf("%d req/s, %d connections, %s (direct and l4-floor: %s), %d B payload", cfg.Rate, cfg.Conns, cfg.Duration, cfg.baselineDuration(), cfg.Payload),
			"max":     fmt.Sprintf("closed loop (-qps 0), %d connections, %s", cfg.MaxConns, cfg.MaxDuration),
			"warmup":  cfg.Warmup.String(),
			"retries": fmt.Sprintf("up to %d noisy fixed-rate runs measured again", cfg.RetryNoisy),
			"quiet":   fmt.Sprintf("before each run, wait up to %s (%s in all) for the rest of the machine to use under %.2f cores", cfg.QuietWait, cfg.QuietBudget, cfg.QuietBelow),
			"maxconn": strconv.Itoa(e.MaxConn),
		},
	}
	server, err := StartServer(e)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	defer server.Stop()

	for _, sys := range AllSystems(WeftSystems(caps)) {
		if !wanted(cfg.Systems, sys) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		sr := &SystemResult{Name: sys.Name, Kind: sys.Kind, About: sys.About, MTLS: sys.MTLS, Unavailable: sys.Unavailable}
		res.Systems = append(res.Systems, sr)
		if sys.Unavailable != "" {
			cfg.logf("%-15s %s", sys.Name, sys.Unavailable)
			continue
		}
		if err := runSystem(ctx, cfg, e, server, sys, sr); err != nil {
			sr.Err = err.Error()
			cfg.logf("%-15s FAILED: %v", sys.Name, err)
		}
	}
	if selected(cfg.Systems, "idle") && ctx.Err() == nil {
		res.Idle = idleRSS(cfg, e)
	}
	res.Seconds = time.Since(started).Seconds()
	res.Failures = Check(cfg, res)
	return res, ctx.Err()
}

// wanted reports whether sys runs: named in list, or list empty and sys
// not Optional.
func wanted(list []string, sys System) bool {
	if len(list) == 0 {
		return !sys.Optional
	}
	return selected(list, sys.Name)
}

func selected(list []string, name string) bool {
	if len(list) == 0 {
		return true
	}
	for _, s := range list {
		if s == name {
			return true
		}
	}
	return false
}

// runSystem starts a system, proves its middle hop, and runs the
// workloads through it.
func runSystem(ctx context.Context, cfg *Config, e *Env, server *Proc, sys System, sr *SystemResult) error {
	cfg.logf("%-15s starting", sys.Name)
	d, err := sys.Start(e)
	if err != nil {
		return err
	}
	defer d.Stop()
	sr.Notes = d.Notes
	for i, p := range d.Proxies {
		sr.Proxies = append(sr.Proxies, []string{"A", "B"}[i])
		m := p.Memory()
		sr.StartRSS = append(sr.StartRSS, m.RSS)
		sr.StartMem = append(sr.StartMem, m.Split)
	}
	for _, p := range d.Helpers {
		sr.Helpers = append(sr.Helpers, p.Name)
	}
	if sys.MTLS {
		for _, proto := range Protocols {
			m, ok := d.Middle[proto]
			if !ok || !m.TLS {
				return fmt.Errorf("%s: no TLS middle hop to prove for %s", sys.Name, proto)
			}
			for _, p := range ProveMTLS(proto, m, e.Certs) {
				sr.Proofs = append(sr.Proofs, p)
				cfg.logf("%-15s proof %-5s %-45s want %-7s got %s", sys.Name, proto, p.Check, p.Want, p.Got)
			}
		}
		for _, p := range sr.Proofs {
			if !p.Passed {
				return fmt.Errorf("mTLS proof failed (%s, %s: %s); not measured", p.Proto, p.Check, p.Got)
			}
		}
	}
	run := func(kind, proto string, l Load) (*LoadResult, error) {
		name := fmt.Sprintf("%s-%s-%s", sys.Name, kind, proto)
		waited, busy := waitQuiet(ctx, cfg)
		cpu0 := procCPU(d.Proxies)
		help0 := procCPU(d.Helpers)
		srv0 := server.CPU()
		busy0 := machineBusy()
		var cc *ConnCounter
		if ports := d.MiddlePorts(); len(ports) > 0 {
			cc = CountConns(min(time.Second, max(100*time.Millisecond, l.Duration/5)), ports...)
		}
		r, err := RunFortio(ctx, e.Bins.Fortio, e.Dir, name, l)
		var conns ConnCount
		if cc != nil {
			conns = cc.Stop()
		}
		if err != nil {
			return nil, err
		}
		cpu1 := procCPU(d.Proxies)
		for i := range cpu1 {
			r.ProxyCPU = append(r.ProxyCPU, (cpu1[i] - cpu0[i]).Seconds())
		}
		for i, c := range procCPU(d.Helpers) {
			r.HelperCPU += (c - help0[i]).Seconds()
		}
		r.ServerCPU = (server.CPU() - srv0).Seconds()
		r.MachineBusy = machineBusy() - busy0
		r.MiddleOpened, r.MiddleOpen, r.MiddleUsed = conns.Opened, conns.Open, conns.Used
		r.QuietWait, r.BusyBefore = waited.Seconds(), busy
		for _, p := range append(append([]*Proc{}, d.Proxies...), d.Helpers...) {
			if done, perr := p.Exited(); done {
				return r, fmt.Errorf("%s exited during the run (%v):\n%s", p.Name, perr, p.Tail())
			}
		}
		cfg.logf("%-15s %-5s %-5s %7.0f req/s  p50 %6.3f ms  p99 %6.3f ms  p99.9 %6.3f ms  errors %d  proxy CPU %s  middle hop: %d used, %d opened",
			sys.Name, kind, proto, r.QPS, r.Latency["50"]*1e3, r.Latency["99"]*1e3, r.Latency["99.9"]*1e3, r.Errors, fmtSeconds(r.ProxyCPU), conns.Used, conns.Opened)
		return r, nil
	}
	load := func(proto string, qps, conns int, dur time.Duration) Load {
		return Load{Proto: proto, Addr: d.Entry[proto], QPS: qps, Conns: conns, Duration: dur, Payload: cfg.Payload}
	}
	if cfg.Warmup > 0 {
		for _, proto := range Protocols {
			if _, err := RunFortio(ctx, e.Bins.Fortio, e.Dir, sys.Name+"-warmup-"+proto, load(proto, cfg.Rate, cfg.Conns, cfg.Warmup)); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	sr.Fixed, sr.Max = map[string]*LoadResult{}, map[string]*LoadResult{}
	fixed := cfg.Duration
	if sys.Kind == KindDirect || sys.Kind == KindFloor {
		fixed = cfg.baselineDuration()
	}
	for _, proto := range Protocols {
		r, err := run("fixed", proto, load(proto, cfg.Rate, cfg.Conns, fixed))
		// A run during which other programs took CPU is measured again,
		// while the run's retry budget lasts; the quieter one is kept.
		for attempts := 1; err == nil && otherCores(r) > NoisyCores && cfg.RetryNoisy > cfg.retried; attempts++ {
			cfg.retried++
			cfg.logf("%-15s fixed %-5s other programs used %.2f cores during the run: measuring again (%d of %d retries)", sys.Name, proto, otherCores(r), cfg.retried, cfg.RetryNoisy)
			var again *LoadResult
			again, err = run("fixed", proto, load(proto, cfg.Rate, cfg.Conns, fixed))
			if again != nil && otherCores(again) < otherCores(r) {
				r = again
			}
			r.Attempts = attempts + 1
		}
		if r != nil {
			sr.Fixed[proto] = r
		}
		if err != nil {
			return err
		}
	}
	for _, proto := range Protocols {
		r, err := run("max", proto, load(proto, 0, cfg.MaxConns, cfg.MaxDuration))
		if r != nil {
			sr.Max[proto] = r
		}
		if err != nil {
			return err
		}
	}
	for _, p := range d.Proxies {
		m := p.Memory()
		sr.PeakRSS = append(sr.PeakRSS, m.PeakRSS)
		sr.EndMem = append(sr.EndMem, m.Split)
		cfg.logf("%-15s memory %s: RSS at start %.1f MB, peak %.1f MB; at the end private %s, file-backed %s", sys.Name, p.Name,
			mb(sr.StartRSS[len(sr.EndMem)-1]), mb(m.PeakRSS), withMB(mbOf(m.Split, anonOf)), withMB(mbOf(m.Split, fileOf)))
	}
	return nil
}

// waitQuiet waits, up to cfg.QuietWait, until the machine has been nearly
// idle for a quarter of a second: the benchmark's own processes are idle between runs,
// so what is busy is someone else. It returns how long it waited and the
// cores busy in the last quarter second.
func waitQuiet(ctx context.Context, cfg *Config) (time.Duration, float64) {
	if cfg.QuietWait <= 0 {
		return 0, 0
	}
	start := time.Now()
	defer func() { cfg.quietSpent += time.Since(start) }()
	limit := min(cfg.QuietWait, cfg.QuietBudget-cfg.quietSpent)
	logged := false
	for {
		const window = 250 * time.Millisecond
		b0 := machineBusy()
		select {
		case <-ctx.Done():
			return time.Since(start), 0
		case <-time.After(window):
		}
		busy := (machineBusy() - b0) / window.Seconds()
		if busy < cfg.QuietBelow || time.Since(start) >= limit {
			if logged {
				cfg.logf("%-15s waited %s for a quiet machine (now %.2f cores busy)", "", time.Since(start).Round(time.Second), busy)
			}
			return time.Since(start), busy
		}
		if !logged {
			cfg.logf("%-15s machine busy (%.2f cores used by others): waiting up to %s", "", busy, limit.Round(time.Second))
			logged = true
		}
	}
}

func procCPU(ps []*Proc) []time.Duration {
	out := make([]time.Duration, len(ps))
	for i, p := range ps {
		out[i] = p.CPU()
	}
	return out
}

func fmtSeconds(s []float64) string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprintf("%.2fs", v)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "+")
}

// machineBusy is the whole machine's non-idle CPU time so far, in seconds
// (the "cpu" line of /proc/stat, less idle and iowait).
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	var total, idle uint64
	for i, s := range f[1:] {
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		n, _ := strconv.ParseUint(s, 10, 64)
		total += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return float64(total-idle) / clockTicks
}

// idleRSS starts a weft proxy with a config of cfg.Services services and
// reads its resident set once it is ready and has settled.
func idleRSS(cfg *Config, e *Env) *IdleRSS {
	out := &IdleRSS{Services: cfg.Services}
	dir := filepath.Join(e.Dir, "idle")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		out.Err = err.Error()
		return out
	}
	file := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(file, []byte(ThousandServices(cfg.Services)), 0o644); err != nil {
		out.Err = err.Error()
		return out
	}
	_, err := retryBind(func() (*Deployment, error) {
		a, err := addrs(2)
		if err != nil {
			return nil, err
		}
		p, err := StartProc(dir, "weft-idle", []string{e.Bins.Weft, "proxy", "--config", file, "--outbound", a[0], "--admin", a[1], "--log-level", "warn"}, []string{"GOMAXPROCS=1"})
		if err != nil {
			return nil, err
		}
		defer p.Stop()
		if err := WaitTCP(p, 30*time.Second, a...); err != nil {
			return nil, err
		}
		if err := waitReady(p, a[1], 30*time.Second); err != nil {
			return nil, err
		}
		time.Sleep(3 * time.Second)
		m := p.Memory()
		out.RSS, out.PeakRSS, out.Mem = m.RSS, m.PeakRSS, m.Split
		cfg.logf("%-15s %d services: RSS %.1f MB (peak %.1f MB; private %s, file-backed %s)", "weft idle", cfg.Services, mb(m.RSS), mb(m.PeakRSS),
			withMB(mbOf(m.Split, anonOf)), withMB(mbOf(m.Split, fileOf)))
		return nil, nil
	})
	if err != nil {
		out.Err = err.Error()
	}
	return out
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// Check lists what makes a run invalid: a system that failed, errors in
// any workload, a system that carried nothing, a failed mTLS proof, a
// middle hop that did not reuse its connections.
func Check(cfg *Config, res *Results) []string {
	var out []string
	for _, s := range res.Systems {
		if s.Unavailable != "" {
			continue
		}
		if s.Err != "" {
			out = append(out, fmt.Sprintf("%s: %s", s.Name, firstLine(s.Err)))
			continue
		}
		for _, p := range s.Proofs {
			if !p.Passed {
				out = append(out, fmt.Sprintf("%s: mTLS proof %s/%s: got %s", s.Name, p.Proto, p.Check, p.Got))
			}
		}
		for _, kind := range []string{"fixed", "max"} {
			runs, conns := s.Fixed, cfg.Conns
			if kind == "max" {
				runs, conns = s.Max, cfg.MaxConns
			}
			for _, proto := range Protocols {
				r := runs[proto]
				switch {
				case r == nil:
					out = append(out, fmt.Sprintf("%s %s %s: no result", s.Name, kind, proto))
					continue
				case r.OK == 0:
					out = append(out, fmt.Sprintf("%s %s %s: carried no traffic", s.Name, kind, proto))
				case r.Errors > 0:
					out = append(out, fmt.Sprintf("%s %s %s: %d errors (%s)", s.Name, kind, proto, r.Errors, CodesString(r.Codes)))
				}
				if s.Kind == KindDirect {
					continue
				}
				// The traffic crossed the middle hop, and the hop reused its
				// connections: a pool opens at most about one per client
				// connection (and none when the warm-up's are still open),
				// never one per request.
				if r.MiddleOpen == 0 || r.MiddleUsed == 0 {
					out = append(out, fmt.Sprintf("%s %s %s: no connection on the middle hop carried data", s.Name, kind, proto))
				}
				if limit := 2*conns + 4; r.MiddleOpened > limit {
					out = append(out, fmt.Sprintf("%s %s %s: %d connections opened on the middle hop for %d requests (more than %d: not reused)", s.Name, kind, proto, r.MiddleOpened, r.Requests, limit))
				}
			}
		}
	}
	if res.Idle != nil && res.Idle.Err != "" {
		out = append(out, "idle RSS: "+firstLine(res.Idle.Err))
	}
	return out
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// ErrChecks is returned (wrapped) when a run's checks failed.
var ErrChecks = errors.New("benchmark checks failed")
