package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startControlledProxy runs `weft proxy --control` for a workload with one
// app port, and stops it when the test ends.
func startControlledProxy(t *testing.T, c *ControlPlane, name, labels string) *exec.Cmd {
	t.Helper()
	admin := freeAddr(t)
	args := []string{"proxy", "--control", c.GRPC, "--token-file", c.DataDir + "/join.token",
		"--name", name, "--labels", labels, "--app", "http=" + freeAddr(t), "--inbound", freeAddr(t),
		"--outbound", freeAddr(t), "--admin", admin}
	cmd := exec.Command(weftBin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("weft %s\n--- proxy output ---\n%s--- end ---", strings.Join(args, " "), out.String())
		}
	})
	return cmd
}

// weft status and weft get workloads show a proxy connected through the
// push server, and stop showing it after it leaves and its grace passes.
func TestControlStatusShowsProxy(t *testing.T) {
	c := StartControl(t, ControlOptions{Args: []string{"--grace", "1s"}})
	c.MustCLI("apply", "-f", writeControlFile(t, "svc.yaml", service("web", 80, "http", "")))
	px := startControlledProxy(t, c, "web-1", "app=web")

	row := regexp.MustCompile(`(?m)^web-1\s+default\s+\S+@` + regexp.QuoteMeta(c.GRPC) + `\s+(\S+)\s+(\S+)\s+-$`)
	eventually(t, 10*time.Second, func() string {
		out := c.MustCLI("status")
		m := row.FindStringSubmatch(out)
		if m == nil || m[1] == "-" || m[1] != m[2] {
			return "status does not show web-1 with its version acked:\n" + out
		}
		return ""
	})
	if out := c.MustCLI("get", "workloads", "-o", "wide"); !regexp.MustCompile(`(?m)^default\s+web-1\s+\d+\s+\S+\s+registered\s+127\.0\.0\.1\s+app=web$`).MatchString(out) {
		t.Errorf("get workloads -o wide:\n%s", out)
	}
	if r := c.CLI("delete", "workload", "web-1"); r.Code == 0 || !strings.Contains(r.Stderr, "registered by a connected proxy") {
		t.Errorf("delete of a registered workload: %s", r)
	}

	px.Process.Kill()
	eventually(t, 10*time.Second, func() string {
		if out := c.MustCLI("get", "workloads"); !strings.Contains(out, "No resources found") {
			return "workload still registered after its proxy died and grace passed:\n" + out
		}
		if out := c.MustCLI("status"); !strings.Contains(out, "No proxies connected") {
			return "status still shows the proxy:\n" + out
		}
		return ""
	})
}
