// Package demo runs `weft demo`: a whole mesh on one machine. A control
// plane, the storefront sample app (internal/demo/app) with a sidecar
// beside each service, a gateway in front, and a steady load, all as child
// processes of the weft binary itself, stopped together on Ctrl-C.
package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Options of a demo run.
type Options struct {
	Bin           string  // the weft binary
	Dir           string  // working directory; a temporary one when empty
	GatewayPort   int     // where the storefront is served
	DashboardPort int     // the control plane's HTTP API and dashboard
	Rate          float64 // requests per second of the built-in load; 0 for none
	Out           io.Writer
}

// Run starts the demo and blocks until ctx ends, then stops everything.
func Run(ctx context.Context, o Options) (err error) {
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "weft-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	for _, d := range []string{"logs", "home", "try"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	ps := &procs{logDir: filepath.Join(dir, "logs")}
	defer ps.stopAll(15 * time.Second)
	home := "WEFT_HOME=" + filepath.Join(dir, "home")

	grpcAddr, err := freeAddr()
	if err != nil {
		return err
	}
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.DashboardPort))
	if _, err := ps.start("control", []string{home}, o.Bin, "control",
		"--data-dir", filepath.Join(dir, "control"), "--http", httpAddr, "--grpc", grpcAddr); err != nil {
		return err
	}
	tokenFile := filepath.Join(dir, "control", "join.token")
	if err := waitFor(ctx, 20*time.Second, "the control plane", ps, func() bool {
		_, err := os.Stat(tokenFile)
		return err == nil && httpOK("http://"+httpAddr+"/healthz")
	}); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "control plane up: %s (logs in %s)\n", httpAddr, filepath.Join(dir, "logs"))

	if err := apply(ctx, o.Bin, home, meshResources(o.GatewayPort)); err != nil {
		return fmt.Errorf("applying the storefront's resources: %w", err)
	}
	for name, content := range tryFiles() {
		if err := os.WriteFile(filepath.Join(dir, "try", name), []byte(content), 0o644); err != nil {
			return err
		}
	}

	for _, in := range instances {
		if err := startSidecar(ps, o.Bin, home, grpcAddr, tokenFile, in); err != nil {
			return err
		}
	}
	if _, err := ps.start("gateway", []string{home}, o.Bin, "gateway", "--control", grpcAddr,
		"--token-file", tokenFile, "--name", "storefront", "--admin", "127.0.0.1:0", "--access-log", "off"); err != nil {
		return err
	}
	gatewayURL := fmt.Sprintf("http://127.0.0.1:%d/", o.GatewayPort)
	if err := waitFor(ctx, 60*time.Second, "the storefront behind the gateway", ps, func() bool {
		return httpOK(gatewayURL)
	}); err != nil {
		return err
	}
	printBanner(o.Out, dir, gatewayURL, "http://"+httpAddr+"/")

	var ld *load
	if o.Rate > 0 {
		ld = startLoad(ctx, gatewayURL, o.Rate)
	}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(o.Out, "\nstopping the demo...")
			if ld != nil {
				ld.stop()
			}
			return nil
		case <-tick.C:
			if p := ps.exited(); p != nil {
				return fmt.Errorf("%s exited; see %s", p.name, filepath.Join(dir, "logs", p.name+".log"))
			}
			if ld != nil {
				fmt.Fprintln(o.Out, ld.summary())
			}
		}
	}
}

// startSidecar runs one instance: its sidecar, registered with the control
// plane, supervising the app.
func startSidecar(ps *procs, bin, home, control, tokenFile string, in instance) error {
	addrs := make([]string, 5)
	for i := range addrs {
		var err error
		if addrs[i], err = freeAddr(); err != nil {
			return err
		}
	}
	appAddr, inbound, outbound, adminAddr, ratings := addrs[0], addrs[1], addrs[2], addrs[3], addrs[4]
	labels := "app=" + in.app + ",version=" + in.version
	args := []string{"proxy", "--control", control, "--token-file", tokenFile,
		"--name", in.name, "--labels", labels, "--service-account", in.app,
		"--inbound", inbound, "--app", in.proto + "=" + appAddr,
		"--outbound", outbound, "--admin", adminAddr, "--access-log", "off"}
	env := []string{home}
	if in.role == "reviews-v2" {
		// gRPC clients do not use HTTP_PROXY: reviews-v2 reaches ratings
		// through a local port of its sidecar.
		args = append(args, "--upstream", "ratings="+ratings)
		env = append(env, "RATINGS_ADDR="+ratings)
	}
	args = append(args, "--", bin, "demo-app", in.role, "--listen", appAddr)
	_, err := ps.start(in.name, env, bin, args...)
	return err
}

func apply(ctx context.Context, bin, home, yaml string) error {
	cmd := exec.CommandContext(ctx, bin, "apply", "-f", "-")
	cmd.Env = append(os.Environ(), home)
	cmd.Stdin = strings.NewReader(yaml)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

func waitFor(ctx context.Context, timeout time.Duration, what string, ps *procs, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if p := ps.exited(); p != nil {
			return fmt.Errorf("%s exited while waiting for %s; see its log in %s", p.name, what, ps.logDir)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s; logs are in %s", what, timeout, ps.logDir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func httpOK(url string) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func printBanner(out io.Writer, dir, gateway, dashboard string) {
	try := filepath.Join(dir, "try")
	env := "WEFT_HOME=" + filepath.Join(dir, "home")
	fmt.Fprintf(out, `
weft demo is running: a control plane, 6 sidecars with the storefront app
(web, catalog, cart, reviews v1/v2, ratings), a gateway, and steady load.

  storefront (through the gateway):  %s
  dashboard:                         %s   (sign in: %s weft dashboard)

Things to try, in another terminal:
  export %s
  curl %s                                 # the page; reviews come from v1 or v2
  weft get services                       # what the control plane holds
  weft status                             # every proxy and its config version
  weft top                                # live golden metrics per service
  weft tap reviews                        # watch requests go by
  weft apply -f %s/canary-50.yaml          # shift half of reviews to v2
  weft apply -f %s/fault.yaml              # make catalog slow and flaky (retries absorb some)
  weft delete -f %s/fault.yaml
  weft apply -f %s/deny-web-to-cart.yaml   # web may no longer call cart: its page shows the error

Ctrl-C stops everything.
`, gateway, dashboard, env, env, gateway, try, try, try, try)
}
