package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"weft.dev/weft/internal/identity"
)

// TestAuthorizationPolicy: a ratings workload allows GET /ratings/* from
// the reviews service account only, and denies DELETE to anyone; HTTP gets
// 403, gRPC PERMISSION_DENIED, TCP a closed connection.
func TestAuthorizationPolicy(t *testing.T) {
	t.Parallel()
	ca, err := identity.NewCA(spiffeid.RequireTrustDomainFromString("mesh.test"))
	if err != nil {
		t.Fatal(err)
	}
	web := NewHTTPBackend(t, "ratings-1")
	g := NewGRPCBackend(t, "ratings-grpc")
	tcp := NewTCPBackend(t, "ratings-tcp", false)
	inbound := freeAddr(t)
	_, httpPort, _ := net.SplitHostPort(web.Addr)
	_, grpcPort, _ := net.SplitHostPort(g.Addr)
	_, tcpPort, _ := net.SplitHostPort(tcp.Addr)
	ratingsSvc := `apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports:
  - {name: http, port: 80, targetPort: http, appProtocol: http}
  - {name: grpc, port: 50051, targetPort: grpc, appProtocol: grpc}
  - {name: tcp, port: 9000, targetPort: tcp, appProtocol: tcp}
`
	policies := fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: ratings-readers}
spec:
  targetRef: {kind: Service, name: ratings}
  action: ALLOW
  rules:
  - from: [{serviceAccounts: [reviews], namespaces: [default]}]
    to: [{methods: [GET, POST], paths: ["/ratings/*", "/grpc.testing.TestService/*"]}]
  - from: [{principals: ["spiffe://mesh.test/ns/default/sa/reviews"]}]
    to: [{ports: [%s]}]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: no-deletes}
spec:
  action: DENY
  # Scoped to the HTTP port: for opaque TCP a DENY rule whose HTTP-only
  # fields cannot be checked matches (fail closed), so an unscoped method
  # rule would refuse every TCP connection.
  rules: [{to: [{methods: [DELETE], ports: [%s]}]}]
`, tcpPort, httpPort)
	args := append([]string{"--inbound", inbound, "--labels", "app=ratings",
		"--app", "http=" + web.Addr, "--app", "grpc=" + g.Addr, "--app", "tcp=" + tcp.Addr}, writeSVID(t, ca, "default", "ratings")...)
	StartProxy(t, docs(ratingsSvc, policies), ProxyOptions{Args: args})

	workload := fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: ratings-1, labels: {app: ratings}}
spec:
  address: 127.0.0.1
  ports: [{name: http, port: %s}, {name: grpc, port: %s}, {name: tcp, port: %s}]
  serviceAccount: ratings
  inbound: %s
`, httpPort, grpcPort, tcpPort, inbound)
	callerCfg := docs(ratingsSvc, workload)
	reviews := StartProxy(t, callerCfg, ProxyOptions{Upstreams: []string{"ratings:50051"}, Args: writeSVID(t, ca, "default", "reviews")})
	other := StartProxy(t, callerCfg, ProxyOptions{Upstreams: []string{"ratings:50051"}, Args: writeSVID(t, ca, "default", "web")})

	t.Run("http", func(t *testing.T) {
		if r := get(t, proxyClient(t, reviews), "http://ratings/ratings/7"); r.Status != http.StatusOK {
			t.Errorf("reviews GET /ratings/7: %s, want 200", r)
		}
		if r := get(t, proxyClient(t, reviews), "http://ratings/admin"); r.Status != http.StatusForbidden || r.WeftError() != "denied" {
			t.Errorf("reviews GET /admin: %s, want 403 denied", r)
		}
		r, err := send(proxyClient(t, reviews), http.MethodDelete, "http://ratings/ratings/7", nil)
		if err != nil || r.Status != http.StatusForbidden {
			t.Errorf("reviews DELETE: %v %v, want 403 (DENY wins)", r, err)
		}
		if r := get(t, proxyClient(t, other), "http://ratings/ratings/7"); r.Status != http.StatusForbidden {
			t.Errorf("web GET /ratings/7: %s, want 403", r)
		}
	})
	t.Run("grpc", func(t *testing.T) {
		ok := grpcClient(t, reviews.Upstream["ratings:50051"], nil)
		if _, err := ok.UnaryCall(testContext(t, 5*time.Second), &grpc_testing.SimpleRequest{}); err != nil {
			t.Errorf("reviews UnaryCall: %v", err)
		}
		denied := grpcClient(t, other.Upstream["ratings:50051"], nil)
		_, err := denied.UnaryCall(testContext(t, 5*time.Second), &grpc_testing.SimpleRequest{})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("web UnaryCall: %v, want PERMISSION_DENIED", err)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		echo := func(p *Proxy) error {
			c, err := dialConnect(testContext(t, 5*time.Second), p.Outbound, "ratings:9000")
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("ping\n"))
			b := make([]byte, 5)
			_, err = io.ReadFull(c, b)
			return err
		}
		if err := echo(reviews); err != nil {
			t.Errorf("reviews TCP: %v", err)
		}
		if err := echo(other); err == nil {
			t.Errorf("web TCP: echoed; want the connection closed")
		}
	})
}
