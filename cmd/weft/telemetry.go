package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"weft.dev/weft/internal/proxy/reporter"
	"weft.dev/weft/internal/telemetry"
)

// telemetryFlags are weft proxy's access log and tracing flags; metrics are
// always on, on the admin listener's /metrics.
type telemetryFlags struct {
	accessLog     string
	logSampling   float64
	otlpEndpoint  string
	traceSampling float64
	statsInterval time.Duration
}

func addTelemetryFlags(fl *pflag.FlagSet, f *telemetryFlags) {
	fl.StringVar(&f.accessLog, "access-log", "stdout", "where JSON access log lines go: stdout, stderr, off or a file path (appended to)")
	fl.Float64Var(&f.logSampling, "access-log-sampling", 1, "share of requests logged, 0 to 1 (chosen by trace id, so all hops agree)")
	fl.StringVar(&f.otlpEndpoint, "otlp-endpoint", "", "export spans over OTLP: grpc://HOST:PORT (grpcs:// for TLS) or http://HOST:PORT[/PATH] (https://); empty propagates trace headers only")
	fl.Float64Var(&f.traceSampling, "trace-sampling", 1, "share of new traces sampled, 0 to 1; requests that carry a decision keep it")
	fl.DurationVar(&f.statsInterval, "stats-interval", reporter.DefaultInterval, "with --control: how often the golden numbers are reported to the control plane (weft top, the dashboard)")
}

// newTelemetry builds the proxy's telemetry, its metrics registered on reg.
// The returned func flushes and closes it.
func newTelemetry(f telemetryFlags, reg prometheus.Registerer, service string, log *slog.Logger) (*telemetry.Telemetry, func(), error) {
	var w io.Writer
	var file *os.File
	switch f.accessLog {
	case "stdout":
		w = os.Stdout
	case "stderr":
		w = os.Stderr
	case "off", "":
	default:
		var err error
		file, err = os.OpenFile(f.accessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("--access-log: %w", err)
		}
		w = file
	}
	if f.logSampling < 0 || f.logSampling > 1 {
		return nil, nil, fmt.Errorf("--access-log-sampling %v: want 0 to 1", f.logSampling)
	}
	if f.traceSampling < 0 || f.traceSampling > 1 {
		return nil, nil, fmt.Errorf("--trace-sampling %v: want 0 to 1", f.traceSampling)
	}
	t, err := telemetry.New(telemetry.Options{
		Registerer:        reg,
		AccessLog:         w,
		AccessLogSampling: f.logSampling,
		OTLPEndpoint:      f.otlpEndpoint,
		TraceSampling:     f.traceSampling,
		ServiceName:       service,
		Logger:            log,
	})
	if err != nil {
		if file != nil {
			file.Close()
		}
		return nil, nil, fmt.Errorf("telemetry: %w", err)
	}
	closeFn := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := t.Close(ctx); err != nil {
			log.Warn("telemetry: flushing on exit", "err", err)
		}
		if file != nil {
			file.Close()
		}
	}
	return t, closeFn, nil
}

// namespaceOf is the namespace telemetry reports for this proxy: --namespace
// defaults to "default" for policy matching, but a proxy that was not told
// which workload it is (no --name) reports none.
func namespaceOf(f proxyFlags) string {
	if f.name == "" {
		return ""
	}
	return f.namespace
}
