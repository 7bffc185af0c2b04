package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// GRPCBackend serves grpc.testing.TestService on loopback (h2c). Every call
// sends the header x-backend and the trailer x-trailer; a request's
// response_status makes the call end with that status code and message.
type GRPCBackend struct {
	Name  string
	Addr  string
	Calls atomic.Int64
	srv   *grpc.Server
}

func (b *GRPCBackend) name() string { return b.Name }
func (b *GRPCBackend) addr() string { return b.Addr }
func (b *GRPCBackend) zone() string { return "" }

func NewGRPCBackend(t testing.TB, name string) *GRPCBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &GRPCBackend{Name: name, Addr: ln.Addr().String(), srv: grpc.NewServer()}
	grpc_testing.RegisterTestServiceServer(b.srv, &testService{b: b})
	go b.srv.Serve(ln)
	t.Cleanup(b.srv.Stop)
	return b
}

type testService struct {
	grpc_testing.UnimplementedTestServiceServer
	b *GRPCBackend
}

func (s *testService) UnaryCall(ctx context.Context, req *grpc_testing.SimpleRequest) (*grpc_testing.SimpleResponse, error) {
	s.b.Calls.Add(1)
	grpc.SetHeader(ctx, metadata.Pairs("x-backend", s.b.Name))
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "unary-"+s.b.Name))
	if st := req.GetResponseStatus(); st.GetCode() != 0 {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return &grpc_testing.SimpleResponse{
		Payload:  &grpc_testing.Payload{Body: make([]byte, req.GetResponseSize())},
		ServerId: s.b.Name,
	}, nil
}

func (s *testService) FullDuplexCall(stream grpc.BidiStreamingServer[grpc_testing.StreamingOutputCallRequest, grpc_testing.StreamingOutputCallResponse]) error {
	s.b.Calls.Add(1)
	stream.SetHeader(metadata.Pairs("x-backend", s.b.Name))
	stream.SetTrailer(metadata.Pairs("x-trailer", "stream-"+s.b.Name))
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if st := req.GetResponseStatus(); st.GetCode() != 0 {
			return status.Error(codes.Code(st.GetCode()), st.GetMessage())
		}
		for _, p := range req.GetResponseParameters() {
			if err := stream.Send(&grpc_testing.StreamingOutputCallResponse{
				Payload: &grpc_testing.Payload{Body: make([]byte, p.GetSize())},
			}); err != nil {
				return err
			}
		}
	}
}

// WSBackend is a WebSocket echo server at /ws; the handshake answer carries
// x-backend.
type WSBackend struct {
	Name string
	Addr string
	srv  *http.Server
}

func (b *WSBackend) name() string { return b.Name }
func (b *WSBackend) addr() string { return b.Addr }
func (b *WSBackend) zone() string { return "" }

func NewWSBackend(t testing.TB, name string) *WSBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &WSBackend{Name: name, Addr: ln.Addr().String()}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			http.NotFound(w, r)
			return
		}
		c, err := up.Upgrade(w, r, http.Header{"X-Backend": {name}})
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	})}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// TCPBackend echoes every byte it reads. With a banner it first writes
// "banner <name>\n", as server-first protocols (SMTP, MySQL) do.
type TCPBackend struct {
	Name  string
	Addr  string
	Conns atomic.Int64
	ln    net.Listener

	mu    sync.Mutex
	conns map[net.Conn]bool
}

func (b *TCPBackend) name() string { return b.Name }
func (b *TCPBackend) addr() string { return b.Addr }
func (b *TCPBackend) zone() string { return "" }

func NewTCPBackend(t testing.TB, name string, banner bool) *TCPBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &TCPBackend{Name: name, Addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.Conns.Add(1)
			b.mu.Lock()
			b.conns[c] = true
			b.mu.Unlock()
			go func() {
				defer func() {
					b.mu.Lock()
					delete(b.conns, c)
					b.mu.Unlock()
					c.Close()
				}()
				if banner {
					io.WriteString(c, "banner "+name+"\n")
				}
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(b.Close)
	return b
}

// Close stops the listener and every connection.
func (b *TCPBackend) Close() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		c.Close()
	}
}

// readLine reads one line with a deadline.
func readLine(t testing.TB, c net.Conn, r *bufio.Reader) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	s, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read line: %v (got %q)", err, s)
	}
	return s
}
