package main

import (
	"context"
	"log/slog"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	telemetryv1 "weft.dev/weft/api/telemetry/v1"
	"weft.dev/weft/internal/control"
	"weft.dev/weft/internal/control/ca"
	"weft.dev/weft/internal/control/stats"
	"weft.dev/weft/internal/dashboard"
)

// mountTelemetry is weft control's OnStart: the proxies' telemetry
// streams on the push server's gRPC port, the graph, metrics, proxies and
// tap calls on the API, and the dashboard at /.
func mountTelemetry(p *control.Plane, log *slog.Logger) error {
	opts := stats.Options{Store: p.Store, Authorize: authorizeReport, Logger: log}
	if p.Push != nil {
		opts.Proxies, opts.Replica = p.Push, p.Push.Replica
	}
	s, err := stats.New(opts)
	if err != nil {
		return err
	}
	if p.Push != nil {
		s.Register(p.Push)
	}
	s.Mount(p.API)
	dashboard.Mount(p.API)
	return nil
}

// authorizeReport admits a proxy's Report stream as the Mesh stream is
// admitted: mutual TLS with an SVID, of the namespace the proxy reports
// for.
func authorizeReport(ctx context.Context, h *telemetryv1.Hello) error {
	id, ok := ca.PeerID(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "the telemetry stream needs mutual TLS with this proxy's SVID")
	}
	if ns := h.GetNamespace(); !strings.HasPrefix(id.Path(), "/ns/"+ns+"/") {
		return status.Errorf(codes.PermissionDenied, "this proxy's certificate is %s: it may not report for namespace %s", id, ns)
	}
	return nil
}
