package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"weft.dev/weft/internal/control/api"
)

// TestDemo runs `weft demo` as a user would: it starts, serves the
// storefront through the gateway with >99% success (faults off), the
// control plane knows every demo service and its graph shows traffic, and
// after SIGINT no process of the demo is left.
func TestDemo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gw, dash := freePort(t), freePort(t)
	out := &syncBuffer{}
	cmd := exec.Command(weftBin, "demo", "--dir", dir, "--gateway-port", strconv.Itoa(gw), "--dashboard-port", strconv.Itoa(dash), "--rate", "20")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("weft demo output:\n%s", out.String())
			logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				if len(b) > 3000 {
					b = b[len(b)-3000:]
				}
				t.Logf("--- %s (tail) ---\n%s", filepath.Base(l), b)
			}
		}
	})
	eventually(t, 90*time.Second, func() string {
		if !strings.Contains(out.String(), "weft demo is running") {
			return "demo not up yet:\n" + out.String()
		}
		return ""
	})

	url := fmt.Sprintf("http://127.0.0.1:%d/", gw)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	ok, versions := 0, map[string]int{}
	const n = 200
	for i := 0; i < n; i++ {
		resp, err := c.Get(url)
		if err != nil {
			continue
		}
		var page struct {
			Products []struct {
				Review *struct{ Version string } `json:"review"`
			} `json:"products"`
			Cart *struct{ Items int } `json:"cart"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err == nil && resp.StatusCode == 200 && len(page.Products) == 3 && page.Cart != nil {
			ok++
			for _, p := range page.Products {
				if p.Review != nil {
					versions[p.Review.Version]++
				}
			}
		}
	}
	if ok*100 < n*99 {
		t.Fatalf("%d of %d storefront pages complete through the gateway; want > 99%%", ok, n)
	}
	if versions["v1"] == 0 || versions["v2"] == 0 {
		t.Errorf("reviews versions seen %v; want both v1 and v2 (90/10 canary)", versions)
	}

	// The control plane holds every demo service, and its graph (what the
	// dashboard draws) shows the gateway's traffic reaching web.
	cfg, err := api.ReadClientConfig(filepath.Join(dir, "home", "config"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) string {
		req, _ := http.NewRequest("GET", cfg.Server+path, nil)
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
		resp, err := c.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	services := get("/api/v1/resources/services")
	for _, s := range []string{"web", "catalog", "cart", "reviews", "reviews-v1", "reviews-v2", "ratings"} {
		if !strings.Contains(services, `"`+s+`"`) {
			t.Errorf("control plane lacks service %s: %s", s, services)
		}
	}
	eventually(t, 30*time.Second, func() string {
		g := get("/api/v1/graph")
		for _, s := range []string{"web", "catalog", "cart", "reviews", "ratings"} {
			if !strings.Contains(g, `"`+s) {
				return "graph lacks " + s + ": " + g
			}
		}
		return ""
	})

	// Ctrl-C stops everything: no process started from the demo's folder
	// is left.
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("weft demo did not exit within 30 s of SIGINT")
	}
	if left := processesMentioning(dir); len(left) > 0 {
		t.Fatalf("processes left after SIGINT: %v", left)
	}
}

// processesMentioning lists live processes whose command line contains s.
func processesMentioning(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cl := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cl, s) {
			out = append(out, e.Name()+": "+cl)
		}
	}
	return out
}
