package main

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	"weft.dev/weft/internal/proxy/reporter"
	"weft.dev/weft/internal/telemetry"
)

// reportSessions is the control client's OnSession of `weft proxy
// --control` and `weft gateway --control`: for each session with a replica it holds the telemetry
// Report stream on the same connection (stats every --stats-interval, live
// taps).
func reportSessions(tel *telemetry.Telemetry, name, namespace string, labels map[string]string, interval time.Duration, log *slog.Logger) func(context.Context, grpc.ClientConnInterface) {
	rep := reporter.New(reporter.Options{
		Telemetry: tel, Name: name, Namespace: namespace, Labels: labels,
		Interval: interval, Logger: log,
	})
	return func(ctx context.Context, cc grpc.ClientConnInterface) {
		if err := rep.Run(ctx, cc); err != nil {
			// The config stream decides about reconnecting; stats wait for
			// the next session.
			log.Warn("telemetry report stream ended", "error", err)
		}
	}
}
