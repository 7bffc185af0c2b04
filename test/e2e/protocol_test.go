package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Protocols the proxy carries: HTTP/1.1 details, h2c, gRPC, WebSocket and
// opaque TCP, over the forward proxy, CONNECT tunnels and --upstream ports.

func TestHTTP1KeepAlive(t *testing.T) {
	t.Parallel()
	b := NewHTTPBackend(t, "a")
	p := StartProxy(t, serviceWith(t, "web", 80, "http", b), ProxyOptions{})
	c := proxyClient(t, p)

	const n = 20
	reused := 0
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest(http.MethodGet, "http://web:80/keepalive", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) {
				if info.Reused {
					reused++
				}
			},
		}))
		r, err := doReq(c, req)
		if err != nil || r.Status != http.StatusOK {
			t.Fatalf("request %d: %v %s", i, err, r)
		}
	}
	if reused < n-1 {
		t.Errorf("client to proxy: %d of %d requests reused a connection; want %d (the proxy closes keep-alive connections)", reused, n, n-1)
	}
	if got := b.Conns.Load(); got > 2 {
		t.Errorf("backend accepted %d connections for %d sequential requests; want 1 (the proxy does not reuse upstream connections)", got, n)
	}
}

func TestHTTP1Chunked(t *testing.T) {
	t.Parallel()
	b := NewHTTPBackend(t, "a")
	p := StartProxy(t, serviceWith(t, "web", 80, "http", b), ProxyOptions{})
	c := proxyClient(t, p)

	t.Run("request", func(t *testing.T) {
		// A body of unknown length goes out chunked.
		const size = 300_000
		body := io.MultiReader(io.LimitReader(newPayload(), size))
		req, _ := http.NewRequest(http.MethodPost, "http://web:80/upload", body)
		req.ContentLength = -1
		r, err := doReq(c, req)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusOK || r.Echo.BodyLen != size || r.Echo.BodySHA256 != payloadSHA256(size) {
			t.Fatalf("chunked upload: backend got %d bytes (sha %s), want %d (sha %s); %s", r.Echo.BodyLen, r.Echo.BodySHA256, size, payloadSHA256(size), r)
		}
	})

	t.Run("response streamed", func(t *testing.T) {
		// The backend writes one chunk and waits for the test to see it before
		// it writes the next: a proxy that buffers responses stalls here.
		ctx := testContext(t, 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://web:80/chunked", nil)
		t.Cleanup(b.Release)
		got := make(chan error, 1)
		go func() {
			resp, err := c.Do(req)
			if err != nil {
				got <- err
				return
			}
			defer resp.Body.Close()
			if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
				got <- errors.New("response not chunked: Transfer-Encoding " + strings.Join(resp.TransferEncoding, ",") + ", Content-Length " + resp.Header.Get("Content-Length"))
				return
			}
			br := bufio.NewReader(resp.Body)
			line, err := br.ReadString('\n')
			if err != nil || line != "first\n" {
				got <- errors.New("first chunk: " + line + " " + errString(err))
				return
			}
			b.Release()
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "second\n" {
				got <- errors.New("second chunk: " + string(rest) + " " + errString(err))
				return
			}
			got <- nil
		}()
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("first chunk not delivered within 5s while the backend waits: the proxy buffers streamed responses")
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestLargeBodyStreaming(t *testing.T) {
	t.Parallel()
	const size = 50 << 20
	const maxGrowth = 20 << 20
	b := NewHTTPBackend(t, "a")
	p := StartProxy(t, serviceWith(t, "web", 80, "http", b), ProxyOptions{})
	c := proxyClient(t, p)
	mustOK(t, c, "http://web:80/warmup")
	base := p.PeakRSS()
	want := payloadSHA256(size)

	req, _ := http.NewRequest(http.MethodPost, "http://web:80/sink", io.LimitReader(newPayload(), size))
	req.ContentLength = size
	r, err := doReq(c, req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if r.Status != http.StatusOK || r.Echo.BodyLen != size || r.Echo.BodySHA256 != want {
		t.Fatalf("upload: backend got %d bytes, sha %s; want %d, %s (%s)", r.Echo.BodyLen, r.Echo.BodySHA256, size, want, r)
	}
	afterUp := p.PeakRSS()

	resp, err := c.Get("http://web:80/source?n=52428800")
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != want {
		t.Fatalf("download: got %d bytes (err %v), sha match %v; want %d", n, err, hex.EncodeToString(h.Sum(nil)) == want, size)
	}
	peak := p.PeakRSS()
	t.Logf("proxy peak RSS: %d MiB at start, %d MiB after upload, %d MiB after download", base>>20, afterUp>>20, peak>>20)
	if peak-base > maxGrowth {
		t.Errorf("proxy peak RSS grew by %d MiB moving 50 MiB each way; want < %d MiB (bodies are buffered, not streamed)", (peak-base)>>20, maxGrowth>>20)
	}
}

func TestH2C(t *testing.T) {
	t.Parallel()
	b := NewHTTPBackend(t, "a", backendOptions{H2C: true})
	p := StartProxy(t, serviceWith(t, "web", 80, "h2c", b), ProxyOptions{Upstreams: []string{"web"}})

	check := func(t *testing.T, c *http.Client, u string) {
		// Concurrent streams, to exercise multiplexing both ways.
		var wg sync.WaitGroup
		errs := make(chan error, 10)
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := send(c, http.MethodPost, u, strings.NewReader("hello h2"))
				switch {
				case err != nil:
					errs <- err
				case r.Status != http.StatusOK:
					errs <- errors.New("status " + r.String())
				case r.Proto != "HTTP/2.0":
					errs <- errors.New("client side spoke " + r.Proto)
				case r.Echo.Proto != "HTTP/2.0":
					errs <- errors.New("backend got " + r.Echo.Proto + ", want HTTP/2.0 (appProtocol h2c)")
				case r.Echo.BodyLen != 8:
					errs <- errors.New("body lost: " + r.String())
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	t.Run("upstream port", func(t *testing.T) {
		check(t, h2cClient(t, nil), "http://"+p.Upstream["web"]+"/h2c")
	})
	t.Run("CONNECT", func(t *testing.T) {
		check(t, h2cClient(t, connectDialer(p.Outbound, "web:80")), "http://web:80/h2c")
	})
}

func TestGRPC(t *testing.T) {
	t.Parallel()
	b := NewGRPCBackend(t, "g1")
	p := StartProxy(t, serviceWith(t, "grpc", 50051, "grpc", b), ProxyOptions{Upstreams: []string{"grpc"}})

	clients := map[string]grpc_testing.TestServiceClient{
		"upstream port": grpcClient(t, p.Upstream["grpc"], nil),
		"CONNECT": grpcClient(t, "grpc:50051", func(ctx context.Context, _ string) (net.Conn, error) {
			return dialConnect(ctx, p.Outbound, "grpc:50051")
		}),
	}
	for name, client := range clients {
		t.Run(name, func(t *testing.T) {
			t.Run("unary", func(t *testing.T) {
				ctx := testContext(t, 10*time.Second)
				var hdr, trl metadata.MD
				resp, err := client.UnaryCall(ctx, &grpc_testing.SimpleRequest{ResponseSize: 1000}, grpc.Header(&hdr), grpc.Trailer(&trl))
				if err != nil {
					t.Fatalf("UnaryCall: %v", err)
				}
				if resp.GetServerId() != "g1" || len(resp.GetPayload().GetBody()) != 1000 {
					t.Errorf("response: server %q, %d bytes", resp.GetServerId(), len(resp.GetPayload().GetBody()))
				}
				if got := hdr.Get("x-backend"); len(got) != 1 || got[0] != "g1" {
					t.Errorf("header x-backend = %v", got)
				}
				if got := trl.Get("x-trailer"); len(got) != 1 || got[0] != "unary-g1" {
					t.Errorf("trailer x-trailer = %v, want [unary-g1] (trailers lost)", got)
				}
			})
			t.Run("unary error status", func(t *testing.T) {
				ctx := testContext(t, 10*time.Second)
				var trl metadata.MD
				_, err := client.UnaryCall(ctx, &grpc_testing.SimpleRequest{
					ResponseStatus: &grpc_testing.EchoStatus{Code: int32(codes.NotFound), Message: "no such thing"},
				}, grpc.Trailer(&trl))
				st := status.Convert(err)
				if st.Code() != codes.NotFound || st.Message() != "no such thing" {
					t.Errorf("status = %v %q, want NotFound %q", st.Code(), st.Message(), "no such thing")
				}
				if got := trl.Get("x-trailer"); len(got) != 1 {
					t.Errorf("trailer x-trailer = %v on an error status", got)
				}
			})
			t.Run("bidi stream", func(t *testing.T) {
				ctx := testContext(t, 10*time.Second)
				stream, err := client.FullDuplexCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				// Ping-pong: each answer must arrive before the next request
				// is sent, so nothing may be buffered in either direction.
				for i := 1; i <= 5; i++ {
					err := stream.Send(&grpc_testing.StreamingOutputCallRequest{
						ResponseParameters: []*grpc_testing.ResponseParameters{{Size: int32(100 * i)}, {Size: int32(7 * i)}},
					})
					if err != nil {
						t.Fatalf("send %d: %v", i, err)
					}
					for _, want := range []int{100 * i, 7 * i} {
						resp, err := stream.Recv()
						if err != nil {
							t.Fatalf("recv %d: %v", i, err)
						}
						if len(resp.GetPayload().GetBody()) != want {
							t.Fatalf("recv %d: %d bytes, want %d", i, len(resp.GetPayload().GetBody()), want)
						}
					}
				}
				stream.CloseSend()
				if _, err := stream.Recv(); err != io.EOF {
					t.Fatalf("end of stream: %v, want EOF", err)
				}
				if got := stream.Trailer().Get("x-trailer"); len(got) != 1 || got[0] != "stream-g1" {
					t.Errorf("stream trailer x-trailer = %v, want [stream-g1]", got)
				}
			})
			t.Run("bidi stream error status", func(t *testing.T) {
				ctx := testContext(t, 3*time.Second)
				stream, err := client.FullDuplexCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				stream.Send(&grpc_testing.StreamingOutputCallRequest{ResponseParameters: []*grpc_testing.ResponseParameters{{Size: 10}}})
				if _, err := stream.Recv(); err != nil {
					t.Fatal(err)
				}
				stream.Send(&grpc_testing.StreamingOutputCallRequest{
					ResponseStatus: &grpc_testing.EchoStatus{Code: int32(codes.FailedPrecondition), Message: "stop here"},
				})
				_, err = stream.Recv()
				if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != "stop here" {
					t.Errorf("status = %v %q, want FailedPrecondition %q", st.Code(), st.Message(), "stop here")
				}
			})
		})
	}
}

func TestWebSocket(t *testing.T) {
	t.Parallel()
	b := NewWSBackend(t, "w1")
	p := StartProxy(t, serviceWith(t, "ws", 80, "", b), ProxyOptions{Upstreams: []string{"ws"}})

	echo := func(t *testing.T, d *websocket.Dialer, u string) {
		ctx := testContext(t, 10*time.Second)
		conn, resp, err := d.DialContext(ctx, u, nil)
		if err != nil {
			st := ""
			if resp != nil {
				st = resp.Status + " x-weft-error=" + resp.Header.Get("x-weft-error")
			}
			t.Fatalf("dial %s: %v %s", u, err, st)
		}
		defer conn.Close()
		if got := resp.Header.Get("x-backend"); got != "w1" {
			t.Errorf("handshake x-backend = %q", got)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for i, m := range []struct {
			typ  int
			data []byte
		}{
			{websocket.TextMessage, []byte("hello")},
			{websocket.BinaryMessage, []byte{0, 1, 2, 0xff}},
			{websocket.TextMessage, bytes.Repeat([]byte("x"), 100_000)},
		} {
			if err := conn.WriteMessage(m.typ, m.data); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			typ, data, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
			if typ != m.typ || !bytes.Equal(data, m.data) {
				t.Fatalf("message %d: got type %d, %d bytes; want type %d, %d bytes", i, typ, len(data), m.typ, len(m.data))
			}
		}
		conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
		if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
			t.Errorf("close handshake: %v", err)
		}
	}
	t.Run("CONNECT", func(t *testing.T) {
		u, _ := url.Parse("http://" + p.Outbound)
		d := &websocket.Dialer{Proxy: http.ProxyURL(u)}
		echo(t, d, "ws://ws:80/ws")
	})
	t.Run("upstream port", func(t *testing.T) {
		echo(t, &websocket.Dialer{}, "ws://"+p.Upstream["ws"]+"/ws")
	})
}

func TestTCPOpaque(t *testing.T) {
	t.Parallel()
	b := NewTCPBackend(t, "t1", false)
	banner := NewTCPBackend(t, "t2", true)
	p := StartProxy(t, docs(
		serviceWith(t, "echo", 9000, "", b),
		serviceWith(t, "banner", 9001, "tcp", banner),
	), ProxyOptions{Upstreams: []string{"echo", "banner"}})

	roundTrip := func(t *testing.T, c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		// Binary, not HTTP: the sniffer must fall back to a relay.
		for i := 0; i < 3; i++ {
			msg := []byte{0x16, 0x00, byte(i), 0xfe, 'o', 'p', 'a', 'q', 'u', 'e', '\n'}
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read echo %d: %v", i, err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("echo %d: got %x, want %x", i, got, msg)
			}
		}
		// Half-close travels through: the backend sees EOF, closes, and so
		// the client sees EOF too.
		if cw, ok := underlying(c).(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
			if n, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("after CloseWrite: read %d bytes, %v; want EOF", n, err)
			}
		}
	}
	t.Run("CONNECT", func(t *testing.T) {
		c, err := dialConnect(testContext(t, 5*time.Second), p.Outbound, "echo:9000")
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c)
	})
	t.Run("upstream port", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", p.Upstream["echo"], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c)
	})
	t.Run("server speaks first, appProtocol tcp", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", p.Upstream["banner"], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if got := readLine(t, c, bufio.NewReader(c)); got != "banner t2\n" {
			t.Fatalf("banner = %q", got)
		}
		// Sniffing would also get there, once it gives up waiting for the
		// client's first bytes; appProtocol tcp must not wait at all.
		if d := time.Since(start); d > 150*time.Millisecond {
			t.Errorf("banner took %v: the proxy waited to sniff a port declared appProtocol tcp", d)
		}
	})
}

func underlying(c net.Conn) net.Conn {
	if bc, ok := c.(*bufferedConn); ok {
		return bc.Conn
	}
	return c
}
