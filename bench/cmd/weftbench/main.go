// Command weftbench runs weft's benchmark: the same HTTP/1.1 and gRPC work
// sent directly, through two TCP relays (the floor), through a pair of weft
// sidecars and through pairs of nginx, HAProxy and Caddy with mutual TLS
// between them, all in one run on one machine. It writes a Markdown table,
// a JSON file and an SVG chart. scripts/bench.sh installs the peers, builds
// weft and this command, and runs it; see docs/bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"weft.dev/weft/bench/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "weftbench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfg      harness.Config
		systems  string
		profile  string
		command  string
		profSys  string
		render   string
		repo     string
		fortio   string
		lookPath = func(name string) string {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
			return name
		}
	)
	fl := flag.NewFlagSet("weftbench", flag.ContinueOnError)
	fl.BoolVar(&cfg.Smoke, "smoke", false, "a few seconds per system at a low rate: checks that every system carries traffic with zero errors and that the mTLS and reuse proofs hold; timings mean nothing")
	fl.IntVar(&cfg.Rate, "rate", 1000, "fixed-rate requests per second")
	fl.IntVar(&cfg.Conns, "conns", 16, "fixed-rate connections")
	fl.DurationVar(&cfg.Duration, "duration", 60*time.Second, "fixed-rate run length, per system and protocol")
	fl.IntVar(&cfg.MaxConns, "max-conns", 64, "max-throughput connections")
	fl.DurationVar(&cfg.BaselineDuration, "baseline-duration", 30*time.Second, "fixed-rate run length of the references (direct, l4-floor); 0: --duration")
	fl.DurationVar(&cfg.MaxDuration, "max-duration", 2*time.Second, "max-throughput run length, per system and protocol")
	fl.DurationVar(&cfg.Warmup, "warmup", 500*time.Millisecond, "fixed-rate warm-up per protocol before measuring (not counted)")
	fl.IntVar(&cfg.Payload, "payload", 1024, "request payload in bytes; the server echoes it")
	fl.DurationVar(&cfg.QuietWait, "quiet-wait", 60*time.Second, "before each measured run, wait up to this long for other programs on the machine to go quiet (0: don't wait)")
	fl.DurationVar(&cfg.QuietBudget, "quiet-budget", 4*time.Minute, "the most --quiet-wait may add to the whole run")
	fl.Float64Var(&cfg.QuietBelow, "quiet-below", 0.1, "what counts as quiet: cores busy outside the benchmark")
	fl.IntVar(&cfg.RetryNoisy, "retry-noisy", 0, "measure a fixed-rate run again when other programs used the machine during it, up to this many times in the whole run")
	fl.IntVar(&cfg.Services, "services", 1000, "services in the idle-RSS check's config")
	fl.StringVar(&systems, "systems", "", "comma-separated systems to run (direct, l4-floor, weft, weft-plaintext, nginx, haproxy, caddy, idle; also weft-mtls, the mTLS pair run from files, which only runs when named); empty: all but weft-mtls")
	fl.StringVar(&cfg.Out, "out", "", "where to write results.md, latency.svg and results.json (default docs/bench, or the work dir with --smoke)")
	fl.StringVar(&cfg.WorkDir, "work", "", "scratch directory (default: a new temporary one)")
	fl.BoolVar(&cfg.Keep, "keep", false, "keep the scratch directory (configs, logs, fortio JSON)")
	fl.StringVar(&cfg.Bins.Weft, "weft", "bin/weft", "weft binary")
	fl.StringVar(&fortio, "fortio", "", "fortio binary (default: fortio in PATH or $(go env GOPATH)/bin)")
	fl.StringVar(&cfg.Bins.Nginx, "nginx", lookPath("nginx"), "nginx binary")
	fl.StringVar(&cfg.Bins.HAProxy, "haproxy", lookPath("haproxy"), "haproxy binary")
	fl.StringVar(&cfg.Bins.Caddy, "caddy", lookPath("caddy"), "caddy binary")
	fl.StringVar(&profile, "profile", "", "instead of the benchmark: profile a weft pair under the fixed-rate load with pprof and write the profiles and their top entries into this directory")
	fl.StringVar(&profSys, "profile-system", "weft", "with --profile: weft (set up through weft control), weft-mtls or weft-plaintext")
	fl.StringVar(&repo, "repo", ".", "the weft module the binary comes from (its commit goes in the report; --profile builds from it)")
	fl.StringVar(&render, "render", "", "instead of running: rewrite results.md and latency.svg from this results.json (into --out, default its directory)")
	fl.StringVar(&command, "command", "", "the command line to print in the report (default: this one)")
	if err := fl.Parse(os.Args[1:]); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	if render != "" {
		res, err := harness.ReadResults(render)
		if err != nil {
			return err
		}
		if cfg.Out == "" {
			cfg.Out = filepath.Dir(render)
		}
		return harness.WriteResults(cfg.Out, res)
	}
	set := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.Smoke {
		// Defaults for smoke; flags given explicitly win.
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("rate", func() { cfg.Rate = 200 })
		def("duration", func() { cfg.Duration = 2 * time.Second })
		def("baseline-duration", func() { cfg.BaselineDuration = 0 })
		def("max-duration", func() { cfg.MaxDuration = time.Second })
		def("warmup", func() { cfg.Warmup = 300 * time.Millisecond })
		def("quiet-wait", func() { cfg.QuietWait = 0 })
	}
	if systems != "" {
		cfg.Systems = strings.Split(systems, ",")
	}
	if fortio == "" {
		fortio = lookPath("fortio")
		if fortio == "fortio" {
			if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
				fortio = filepath.Join(strings.TrimSpace(string(out)), "bin", "fortio")
			}
		}
	}
	cfg.Bins.Fortio = fortio
	for name, p := range map[string]*string{"weft": &cfg.Bins.Weft, "fortio": &cfg.Bins.Fortio} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("%s binary: %w", name, err)
		}
		*p = abs
	}
	if command == "" {
		command = strings.Join(os.Args, " ")
	}
	cfg.Command = command
	cfg.Repo = repo
	cfg.Log = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if profile != "" {
		return harness.Profile(ctx, &cfg, harness.ProfileOptions{Dir: profile, System: profSys, Repo: repo})
	}
	if cfg.Out == "" && !cfg.Smoke {
		cfg.Out = "docs/bench"
	}
	if cfg.Smoke && cfg.Out == "" {
		// Keep the smoke run's report where it can be read.
		cfg.Keep = true
		if cfg.WorkDir == "" {
			d, err := os.MkdirTemp("", "weftbench-smoke-")
			if err != nil {
				return err
			}
			cfg.WorkDir = d
		}
		cfg.Out = cfg.WorkDir
	}
	res, err := harness.Run(ctx, &cfg)
	if res != nil {
		if werr := harness.WriteResults(cfg.Out, res); werr != nil {
			return werr
		}
		fmt.Fprintf(os.Stderr, "wrote %s/results.md, latency.svg, results.json (%.0f s)\n", cfg.Out, res.Seconds)
		if len(res.Failures) > 0 {
			for _, f := range res.Failures {
				fmt.Fprintln(os.Stderr, "FAIL:", f)
			}
			return fmt.Errorf("%w: %d", harness.ErrChecks, len(res.Failures))
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return err
}
