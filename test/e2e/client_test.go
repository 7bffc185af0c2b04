package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop/grpc_testing"
)

// proxyClient is an HTTP/1.1 client that sends every request through the
// proxy's outbound listener, as an app with HTTP_PROXY set does. It does not
// follow redirects, so tests see them.
func proxyClient(t testing.TB, p *Proxy) *http.Client {
	t.Helper()
	u, _ := url.Parse("http://" + p.Outbound)
	tr := &http.Transport{
		Proxy:               http.ProxyURL(u),
		MaxIdleConnsPerHost: 64,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// directClient talks plain HTTP/1.1 to whatever address the URL names (an
// --upstream port).
func directClient(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// h2cClient speaks HTTP/2 with prior knowledge over connections from dial
// (nil: plain TCP to the URL's address).
func h2cClient(t testing.TB, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	t.Helper()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p, DialContext: dial}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// Result is a response read whole.
type Result struct {
	Status int
	Header http.Header
	Body   []byte
	Echo   Echo // decoded when the body is the echo backend's JSON
	Proto  string
}

// Backend is the x-backend header: which endpoint answered.
func (r Result) Backend() string { return r.Header.Get("x-backend") }

// WeftError is the x-weft-error header the proxy sets on its own answers.
func (r Result) WeftError() string { return r.Header.Get("x-weft-error") }

func (r Result) String() string {
	b := r.Body
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Sprintf("%d x-backend=%q x-weft-error=%q body=%q", r.Status, r.Backend(), r.WeftError(), b)
}

// send does one request and reads the whole answer. hdr is name, value
// pairs.
func send(c *http.Client, method, u string, body io.Reader, hdr ...string) (Result, error) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return Result{}, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return doReq(c, req)
}

func doReq(c *http.Client, req *http.Request) (Result, error) {
	resp, err := c.Do(req)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Result{}, fmt.Errorf("read body: %w", err)
	}
	r := Result{Status: resp.StatusCode, Header: resp.Header, Body: b, Proto: resp.Proto}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		json.Unmarshal(b, &r.Echo)
	}
	return r, nil
}

// get is send for GET that fails the test on a transport error.
func get(t testing.TB, c *http.Client, u string, hdr ...string) Result {
	t.Helper()
	r, err := send(c, http.MethodGet, u, nil, hdr...)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return r
}

// mustOK is get that also requires status 200.
func mustOK(t testing.TB, c *http.Client, u string, hdr ...string) Result {
	t.Helper()
	r := get(t, c, u, hdr...)
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s: want 200, got %s", u, r)
	}
	return r
}

// countBackends sends n GETs and counts answers by x-backend; non-200
// answers are counted under "status <code>".
func countBackends(t testing.TB, c *http.Client, u string, n int, hdr ...string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		r := get(t, c, u, hdr...)
		if r.Status != http.StatusOK {
			counts[fmt.Sprintf("status %d %s", r.Status, r.WeftError())]++
			continue
		}
		counts[r.Backend()]++
	}
	return counts
}

// countBackendsParallel is countBackends over `workers` concurrent clients.
func countBackendsParallel(t testing.TB, c *http.Client, u string, n, workers int, hdr ...string) map[string]int {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				r, err := send(c, http.MethodGet, u, nil, hdr...)
				mu.Lock()
				switch {
				case err != nil:
					if firstErr == nil {
						firstErr = err
					}
					counts["error"]++
				case r.Status != http.StatusOK:
					counts[fmt.Sprintf("status %d %s", r.Status, r.WeftError())]++
				default:
					counts[r.Backend()]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Logf("first transport error: %v", firstErr)
	}
	return counts
}

// connectDialer returns a dial function that opens a CONNECT tunnel through
// the proxy's outbound listener to target (service:port), whatever address
// the caller asks for.
func connectDialer(proxyAddr, target string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		return dialConnect(ctx, proxyAddr, target)
	}
}

// dialConnect opens a CONNECT tunnel to target through the proxy.
func dialConnect(ctx context.Context, proxyAddr, target string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: status %s (x-weft-error %q)", target, resp.Status, resp.Header.Get("x-weft-error"))
	}
	c.SetDeadline(time.Time{})
	return &bufferedConn{Conn: c, r: br}, nil
}

// bufferedConn keeps bytes read past the CONNECT answer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// grpcClient dials target with insecure credentials; dial, if non-nil,
// makes the connection (e.g. a CONNECT tunnel).
func grpcClient(t testing.TB, target string, dial func(ctx context.Context, addr string) (net.Conn, error)) grpc_testing.TestServiceClient {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if dial != nil {
		opts = append(opts, grpc.WithContextDialer(dial))
	}
	cc, err := grpc.NewClient("passthrough:///"+target, opts...)
	if err != nil {
		t.Fatalf("grpc.NewClient %s: %v", target, err)
	}
	t.Cleanup(func() { cc.Close() })
	return grpc_testing.NewTestServiceClient(cc)
}

// rawRequest writes raw bytes to addr and returns the status line and the
// rest of what the server sent before closing or going quiet.
func rawRequest(t testing.TB, addr, raw string) (status int, resp string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	// A server may answer and close before reading everything (a header
	// too large): still read what it said.
	io.WriteString(c, raw)
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	return r.StatusCode, r.Status + " " + string(b)
}
