package e2e

import (
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestGatewayGRPC: a GRPCRoute on a plaintext listener (h2c) reaches a gRPC
// service; a RequestAuthentication on the route answers a call without a
// token with UNAUTHENTICATED, in gRPC terms.
func TestGatewayGRPC(t *testing.T) {
	t.Parallel()
	shop := newIssuer(t, "https://issuer.shop.test", "shop-1")
	b := NewGRPCBackend(t, "grpc-1")
	port := freePort(t)
	StartGateway(t, docs(httpGateway(port), serviceWith(t, "testsvc", 9000, "grpc", b), `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: testsvc}
spec:
  parentRefs: [{name: edge}]
  rules:
  - matches: [{method: {service: grpc.testing.TestService}}]
    backendRefs: [{name: testsvc, port: 9000}]
`, fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: grpc}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: GRPCRoute, name: testsvc}
  jwtRules: [{issuer: "https://issuer.shop.test", jwks: '%s'}]
`, shop.jwks(t))))
	c := grpcClient(t, fmt.Sprintf("127.0.0.1:%d", port), nil)
	_, err := c.UnaryCall(testContext(t, 5*time.Second), &grpc_testing.SimpleRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("call without a token: %v, want UNAUTHENTICATED", err)
	}
	ctx := metadata.AppendToOutgoingContext(testContext(t, 5*time.Second), "authorization", "Bearer "+shop.token(t, shop.name, "any", time.Now().Add(time.Hour), nil))
	var hdr metadata.MD
	if _, err := c.UnaryCall(ctx, &grpc_testing.SimpleRequest{}, grpc.Header(&hdr)); err != nil {
		t.Fatalf("call with a token: %v", err)
	}
	if got := hdr.Get("x-backend"); len(got) != 1 || got[0] != "grpc-1" {
		t.Errorf("x-backend %q", got)
	}
}

// TestGatewayReload: a changed file is applied without a restart: routes
// change, a new listener port opens and a dropped one closes.
func TestGatewayReload(t *testing.T) {
	t.Parallel()
	a, b := NewHTTPBackend(t, "a-1"), NewHTTPBackend(t, "b-1")
	p1, p2 := freePort(t), freePort(t)
	base := docs(serviceWith(t, "svc-a", 80, "http", a), serviceWith(t, "svc-b", 80, "http", b))
	g := StartGateway(t, docs(httpGateway(p1), base, gatewayRoute("r", "edge", "", "", "- backendRefs: [{name: svc-a, port: 80}]")))
	if r := mustOK(t, gatewayClient(fmt.Sprintf("127.0.0.1:%d", p1), nil), "http://x.test/"); r.Backend() != "a-1" {
		t.Fatalf("before reload: %s", r)
	}
	g.Reload(docs(httpGateway(p2), base, gatewayRoute("r", "edge", "", "", "- backendRefs: [{name: svc-b, port: 80}]")))
	if r := mustOK(t, gatewayClient(fmt.Sprintf("127.0.0.1:%d", p2), nil), "http://x.test/"); r.Backend() != "b-1" {
		t.Errorf("after reload: %s", r)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p1), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still open after its listener was removed", p1)
	}
	// A file that does not validate is refused; the gateway keeps serving.
	g.WriteConfig("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: edge}\nspec: {listeners: []}\n")
	g.WaitOutput(10*time.Second, "config refused")
	if r := mustOK(t, gatewayClient(fmt.Sprintf("127.0.0.1:%d", p2), nil), "http://x.test/"); r.Backend() != "b-1" {
		t.Errorf("after a refused file: %s", r)
	}
}
