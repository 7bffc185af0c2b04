package main

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"

	"weft.dev/weft/internal/proxy/reporter"
	"weft.dev/weft/internal/telemetry"
)

// reportSessions is the control client's OnSession of `weft proxy
// --control`: for each session with a replica it holds the telemetry
// Report stream on the same connection (stats every --stats-interval, live
// taps).
func reportSessions(tel *telemetry.Telemetry, f proxyFlags, labels map[string]string, log *slog.Logger) func(context.Context, grpc.ClientConnInterface) {
	rep := reporter.New(reporter.Options{
		Telemetry: tel, Name: f.name, Namespace: f.namespace, Labels: labels,
		Interval: f.tel.statsInterval, Logger: log,
	})
	return func(ctx context.Context, cc grpc.ClientConnInterface) {
		if err := rep.Run(ctx, cc); err != nil {
			// The config stream decides about reconnecting; stats wait for
			// the next session.
			log.Warn("telemetry report stream ended", "error", err)
		}
	}
}
