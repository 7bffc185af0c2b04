package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the supervised app: `weft proxy ... -- <test
// binary>` with WEFT_E2E_APP set runs testApp instead of the tests.
func init() {
	if os.Getenv("WEFT_E2E_APP") == "" {
		return
	}
	os.Exit(testApp())
}

// testApp serves /slow (1.5 s) and / on APP_ADDR. At start it calls
// APP_PROBE_URL through HTTP_PROXY and writes the status to APP_PROBE_FILE,
// proving the proxy was ready and the app was pointed at it. On SIGTERM it
// finishes requests in flight and exits 3.
func testApp() int {
	status := "error"
	if resp, err := http.Get(os.Getenv("APP_PROBE_URL")); err == nil {
		status = resp.Status
		resp.Body.Close()
	} else {
		status = err.Error()
	}
	os.WriteFile(os.Getenv("APP_PROBE_FILE"), []byte(status+"\nHTTP_PROXY="+os.Getenv("HTTP_PROXY")), 0o644)
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(1500 * time.Millisecond)
		w.Write([]byte("slow done"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	srv := &http.Server{Addr: os.Getenv("APP_ADDR"), Handler: mux}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return 1
	}
	return 3
}

// superviseSetup starts a sidecar that supervises the test app, and a
// client sidecar whose Workload for "app" points at it.
func superviseSetup(t *testing.T) (server, client *Proxy, probe string) {
	t.Helper()
	probeBackend := NewHTTPBackend(t, "probe")
	appAddr := freeAddr(t)
	inbound := freeAddr(t)
	probe = filepath.Join(t.TempDir(), "probe")
	_, appPort, _ := net.SplitHostPort(appAddr)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	server = StartProxy(t, serviceWith(t, "probe", 80, "http", probeBackend), ProxyOptions{
		Env:  []string{"WEFT_E2E_APP=1", "APP_ADDR=" + appAddr, "APP_PROBE_URL=http://probe/", "APP_PROBE_FILE=" + probe},
		Args: []string{"--inbound", inbound, "--app", "main=" + appAddr, "--drain-timeout", "5s", "--", self},
	})
	client = StartProxy(t, docs(service("app", 80, "http", ""), fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: app-1, labels: {app: app}}
spec:
  address: 127.0.0.1
  ports: [{name: main, port: %s}]
  inbound: %s
`, appPort, inbound)), ProxyOptions{})
	// The app is up once its port answers through the client sidecar.
	c := proxyClient(t, client)
	eventually(t, 10*time.Second, func() string {
		if r, err := send(c, "GET", "http://app/", nil); err != nil || r.Status != 200 {
			return fmt.Sprintf("app not serving yet: %v %v", r, err)
		}
		return ""
	})
	return server, client, probe
}

// TestSuperviseStartsAfterReadyAndDrains: the app's first outbound call
// (made at start) succeeds through the proxy; SIGTERM lets a long request
// finish before the app is stopped; the proxy exits with the app's code.
func TestSuperviseStartsAfterReadyAndDrains(t *testing.T) {
	t.Parallel()
	server, client, probe := superviseSetup(t)
	got, _ := os.ReadFile(probe)
	if !strings.HasPrefix(string(got), "200 OK") || !strings.Contains(string(got), "HTTP_PROXY=http://"+server.Outbound) {
		t.Fatalf("app's first call at start: %q; want 200 OK through HTTP_PROXY=http://%s", got, server.Outbound)
	}

	c := proxyClient(t, client)
	done := make(chan Result, 1)
	go func() {
		r, err := send(c, "GET", "http://app/slow", nil)
		if err != nil {
			r.Status = -1
			r.Body = []byte(err.Error())
		}
		done <- r
	}()
	time.Sleep(300 * time.Millisecond) // the request is in flight at the app
	server.Signal(syscall.SIGTERM)
	r := <-done
	if r.Status != 200 || string(r.Body) != "slow done" {
		t.Fatalf("long request during shutdown: %s; want 200 slow done", r)
	}
	select {
	case <-server.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("proxy did not exit after SIGTERM")
	}
	var ee *exec.ExitError
	if !errors.As(server.err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("proxy exit: %v; want the app's exit code 3", server.err)
	}
}

// TestSuperviseAppExitEndsProxy: when the app dies on its own, the proxy
// drains and exits with its code.
func TestSuperviseAppExitEndsProxy(t *testing.T) {
	t.Parallel()
	p := StartProxy(t, "", ProxyOptions{Args: []string{"--", "sh", "-c", "sleep 0.2; exit 42"}})
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("proxy outlived its app")
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.ExitCode() != 42 {
		t.Fatalf("proxy exit: %v; want 42", p.err)
	}
}

// TestRollingRestart: under steady load, a new instance starts, joins the
// client's endpoints, the old one leaves and is stopped (draining): no
// request fails.
func TestRollingRestart(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "v1")
	b := NewHTTPBackend(t, "v2")
	inA, inB := freeAddr(t), freeAddr(t)
	pa := StartProxy(t, "", ProxyOptions{Args: []string{"--inbound", inA, "--app", "main=" + a.Addr, "--drain-timeout", "5s"}})
	StartProxy(t, "", ProxyOptions{Args: []string{"--inbound", inB, "--app", "main=" + b.Addr}})
	wl := func(name, addr, inbound string) string {
		_, port, _ := net.SplitHostPort(addr)
		return fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: %s, labels: {app: web}}
spec:
  address: 127.0.0.1
  ports: [{name: main, port: %s}]
  inbound: %s
`, name, port, inbound)
	}
	retry := trafficPolicy("web", `retry: {attempts: 3, perTryTimeout: 2s, retryOn: [connect-failure, reset, gateway-error]}`)
	cfgOld := docs(service("web", 80, "http", ""), retry, wl("web-v1", a.Addr, inA))
	client := StartProxy(t, cfgOld, ProxyOptions{})
	c := proxyClient(t, client)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := send(c, "GET", "http://web/", nil)
				if err != nil || r.Status != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%v %v", r, err))
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	before := client.ConfigDump()
	client.Reload(docs(service("web", 80, "http", ""), retry, wl("web-v1", a.Addr, inA), wl("web-v2", b.Addr, inB)))
	client.WaitConfigChange(before, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	before = client.ConfigDump()
	client.Reload(docs(service("web", 80, "http", ""), retry, wl("web-v2", b.Addr, inB)))
	client.WaitConfigChange(before, 5*time.Second)
	pa.Stop()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 50 {
		t.Fatalf("%d ok, %d failed (first: %v); want no failures", ok.Load(), failed.Load(), firstErr.Load())
	}
	if len(b.Log()) == 0 {
		t.Fatal("the new instance got no traffic")
	}
}
