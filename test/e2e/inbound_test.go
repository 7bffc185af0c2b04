package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/interop/grpc_testing"
)

// sidecarPair starts a server-side sidecar whose inbound delivers to the
// given app ports, and returns the Workload YAML callers use to reach it
// (address = the apps' host, ports = the apps' ports, inbound = the sidecar).
func sidecarPair(t *testing.T, name, labels string, apps map[string]string) (*Proxy, string) {
	t.Helper()
	inbound := freeAddr(t)
	args := []string{"--inbound", inbound}
	var ports []string
	for pname, addr := range apps {
		args = append(args, "--app", pname+"="+addr)
		_, port, _ := net.SplitHostPort(addr)
		ports = append(ports, fmt.Sprintf("{name: %s, port: %s}", pname, port))
	}
	server := StartProxy(t, "", ProxyOptions{Args: args})
	wl := fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata:
  name: %s
  labels: {%s}
spec:
  address: 127.0.0.1
  ports: [%s]
  inbound: %s
`, name, labels, strings.Join(ports, ", "), inbound)
	return server, wl
}

// TestInboundSidecarToSidecar sends HTTP, gRPC and opaque TCP from a client
// sidecar to a server sidecar's inbound, which delivers to its app.
func TestInboundSidecarToSidecar(t *testing.T) {
	t.Parallel()
	web := NewHTTPBackend(t, "web-1")
	g := NewGRPCBackend(t, "g-1")
	tcp := NewTCPBackend(t, "t-1", false)
	server, wl := sidecarPair(t, "server-1", "app: multi", map[string]string{"main": web.Addr, "grpc": g.Addr, "tcp": tcp.Addr})
	client := StartProxy(t, docs(
		`apiVersion: v1
kind: Service
metadata: {name: multi}
spec:
  selector: {app: multi}
  ports:
  - {name: http, port: 80, targetPort: main, appProtocol: http}
  - {name: grpc, port: 50051, targetPort: grpc, appProtocol: grpc}
  - {name: tcp, port: 9000, targetPort: tcp, appProtocol: tcp}
`, wl), ProxyOptions{Upstreams: []string{"multi:50051"}})

	t.Run("http", func(t *testing.T) {
		c := proxyClient(t, client)
		for i := 0; i < 5; i++ {
			r := mustOK(t, c, "http://multi/hello")
			if r.Backend() != "web-1" {
				t.Fatalf("answered by %q, want web-1", r.Backend())
			}
		}
	})
	t.Run("grpc", func(t *testing.T) {
		gc := grpcClient(t, client.Upstream["multi:50051"], nil)
		resp, err := gc.UnaryCall(testContext(t, 5*time.Second), &grpc_testing.SimpleRequest{ResponseSize: 10})
		if err != nil || resp.GetServerId() != "g-1" {
			t.Fatalf("UnaryCall: %v, server %q", err, resp.GetServerId())
		}
	})
	t.Run("tcp", func(t *testing.T) {
		c, err := dialConnect(testContext(t, 5*time.Second), client.Outbound, "multi:9000")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		msg := []byte{0x00, 0x01, 'r', 'a', 'w', '\n'}
		c.Write(msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo: %x, %v", got, err)
		}
	})
	t.Run("server sidecar carries the traffic", func(t *testing.T) {
		server.Stop()
		r := get(t, proxyClient(t, client), "http://multi/hello")
		if r.Status != http.StatusBadGateway && r.Status != http.StatusServiceUnavailable {
			t.Fatalf("with the server sidecar stopped: %s; want 502/503 (traffic must go through it)", r)
		}
	})
}

// TestInboundRefusesStrangers: the inbound is not an open relay. A
// connection without the PROXY header, or for a port the app did not
// declare, is closed without reaching anything.
func TestInboundRefusesStrangers(t *testing.T) {
	t.Parallel()
	web := NewHTTPBackend(t, "web-1")
	other := NewHTTPBackend(t, "not-declared")
	inbound := freeAddr(t)
	StartProxy(t, "", ProxyOptions{Args: []string{"--inbound", inbound, "--app", "main=" + web.Addr}})

	expectClosed := func(t *testing.T, first []byte) {
		t.Helper()
		c, err := net.DialTimeout("tcp", inbound, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(8 * time.Second))
		c.Write(first)
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		b, err := io.ReadAll(c)
		if len(b) > 0 {
			t.Fatalf("got an answer %q; want the connection closed", b)
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection left open")
		}
	}
	t.Run("plain HTTP without header", func(t *testing.T) { expectClosed(t, nil) })
	t.Run("undeclared port", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(other.Addr)
		expectClosed(t, []byte(fmt.Sprintf("PROXY TCP4 127.0.0.1 127.0.0.1 40000 %s\r\n", port)))
	})
	if n := len(other.Log()); n != 0 {
		t.Fatalf("undeclared app received %d requests", n)
	}
}
