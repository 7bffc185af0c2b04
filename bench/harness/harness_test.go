package harness

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy/configfile"
)

func TestParseStat(t *testing.T) {
	// The command name holds a space and a parenthesis.
	line := "1234 (my (proc) x) S 77 1234 1234 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 3 0 100 0 0\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 77 || st.cpu != 4*time.Second {
		t.Fatalf("got ppid %d cpu %s, want 77 and 4s", st.ppid, st.cpu)
	}
	if _, err := parseStat([]byte("1 (x) S 1")); err == nil {
		t.Fatal("short stat parsed")
	}
}

func TestParseStatusMem(t *testing.T) {
	st, err := parseStatusMem(strings.NewReader("Name:\tnginx\nVmPeak:\t  999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n"))
	if err != nil || st.hwm != 2048*1024 || st.rss != 1024*1024 {
		t.Fatalf("got %+v %v", st, err)
	}
	if st.split != nil {
		t.Fatalf("split %+v from a status without RssAnon", st.split)
	}
	if _, err := parseStatusMem(strings.NewReader("Name:\tkthreadd\n")); err == nil {
		t.Fatal("kernel thread without VmRSS parsed")
	}
}

func TestParseStatusMemSplit(t *testing.T) {
	// An excerpt of a real /proc/PID/status of a weft proxy.
	status := `Name:	weft
Umask:	0022
State:	S (sleeping)
Tgid:	4321
Pid:	4321
VmPeak:	 1245184 kB
VmSize:	 1245184 kB
VmLck:	       0 kB
VmPin:	       0 kB
VmHWM:	   26112 kB
VmRSS:	   25088 kB
RssAnon:	    4096 kB
RssFile:	   20992 kB
RssShmem:	       0 kB
VmData:	   36864 kB
VmStk:	     132 kB
VmExe:	   19456 kB
Threads:	5
`
	st, err := parseStatusMem(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	if st.hwm != 26112<<10 || st.rss != 25088<<10 {
		t.Fatalf("hwm %d rss %d", st.hwm, st.rss)
	}
	want := MemSplit{RSS: 25088 << 10, Anon: 4096 << 10, File: 20992 << 10}
	if st.split == nil || *st.split != want {
		t.Fatalf("split %+v, want %+v", st.split, want)
	}
	// nginx's worker with shared memory zones.
	st, err = parseStatusMem(strings.NewReader("VmHWM:\t 9000 kB\nVmRSS:\t 8000 kB\nRssAnon:\t 1000 kB\nRssFile:\t 6000 kB\nRssShmem:\t 1000 kB\n"))
	if err != nil || st.split == nil || st.split.Shmem != 1000<<10 || st.split.Anon+st.split.File+st.split.Shmem != st.rss {
		t.Fatalf("got %+v %v", st.split, err)
	}
}

func TestOwnProcess(t *testing.T) {
	p, err := StartProc(t.TempDir(), "sleep", []string{"sleep", "30"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	m := p.Memory()
	if m.RSS == 0 || m.PeakRSS < m.RSS {
		t.Fatalf("memory %+v", m)
	}
	if m.Split != nil && (m.Split.RSS != m.RSS || m.Split.Anon+m.Split.File+m.Split.Shmem != m.RSS) {
		t.Fatalf("split %+v does not add up to RSS %d", m.Split, m.RSS)
	}
	if pids := p.PIDs(); len(pids) != 1 || pids[0] != p.PID() {
		t.Fatalf("pids %v", pids)
	}
	p.Stop()
	if done, _ := p.Exited(); !done {
		t.Fatal("still running after Stop")
	}
}

func TestParseProcNetTCP(t *testing.T) {
	// Port 0x1F90 = 8080. A listener, both ends of one established
	// connection, a TIME-WAIT from an older one, and an unrelated socket.
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:C351 0100007F:1F90 06 00000000:00000000 03:00001000 00000000     0        0 0 3 0000000000000000
   4: 0100007F:0016 0100007F:C352 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
`
	m, err := parseProcNetTCP(strings.NewReader(table), 8080)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || !m["0100007F:C350"] || m["0100007F:C351"] {
		t.Fatalf("got %v; want C350 established and C351 not", m)
	}
}

func TestParseSS(t *testing.T) {
	out := "0      0      127.0.0.1:18080 127.0.0.1:51724\n\t bbr wscale:10,10 rto:204 bytes_received:498 segs_out:7 segs_in:14 data_segs_out:6 data_segs_in:6 send 1bps\n" +
		"0      0      127.0.0.1:18080 127.0.0.1:51734\n\t bbr wscale:10,10 rto:204 segs_out:1 segs_in:1\n"
	m := parseSS([]byte(out))
	if len(m) != 2 || m["127.0.0.1:18080 127.0.0.1:51724"] != 6 || m["127.0.0.1:18080 127.0.0.1:51734"] != 0 {
		t.Fatalf("got %v", m)
	}
}

func TestConnCounterSeesNewConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { b := make([]byte, 10); c.Read(b); c.Close() }()
		}
	}()
	cc := CountConns(50*time.Millisecond, Port(ln.Addr().String()))
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		time.Sleep(100 * time.Millisecond)
		c.Close()
	}
	got := cc.Stop()
	if got.Opened != 3 {
		t.Fatalf("opened %d, want 3", got.Opened)
	}
}

const fortioHTTP = `{"RunType":"HTTP","ActualQPS":999.3,"ActualDuration":2994088893,
 "DurationHistogram":{"Count":2994,"Avg":0.00056,"Max":0.0031,
  "Percentiles":[{"Percentile":50,"Value":0.000525},{"Percentile":90,"Value":0.0009},{"Percentile":99,"Value":0.00198},{"Percentile":99.9,"Value":0.0025}]},
 "RetCodes":{"200":2992,"503":1}}`

func TestParseFortio(t *testing.T) {
	r, err := ParseFortio([]byte(fortioHTTP), HTTP)
	if err != nil {
		t.Fatal(err)
	}
	// 2992 OK, a 503, and one request that failed without a code.
	if r.Requests != 2994 || r.OK != 2992 || r.Errors != 2 {
		t.Fatalf("requests %d ok %d errors %d", r.Requests, r.OK, r.Errors)
	}
	if r.Latency["99.9"] != 0.0025 || r.Latency["50"] != 0.000525 {
		t.Fatalf("latency %v", r.Latency)
	}
	g, err := ParseFortio([]byte(`{"DurationHistogram":{"Count":5},"RetCodes":{"SERVING":5}}`), GRPC)
	if err != nil || g.OK != 5 || g.Errors != 0 {
		t.Fatalf("grpc: %+v %v", g, err)
	}
}

func TestLoadArgs(t *testing.T) {
	h := Load{Proto: HTTP, Addr: "127.0.0.1:1", QPS: 1000, Conns: 16, Duration: time.Minute, Payload: 1024}.Args("o.json")
	want := "load -qps 1000 -c 16 -t 1m0s -r 0.00001 -payload-size 1024 -p 50,90,99,99.9 -json o.json -quiet http://127.0.0.1:1/echo"
	if got := strings.Join(h, " "); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	g := Load{Proto: GRPC, Addr: "127.0.0.1:2", QPS: 0, Conns: 64, Duration: 5 * time.Second, Payload: 1024}.Args("o.json")
	if got := strings.Join(g, " "); !strings.HasSuffix(got, "-grpc -ping 127.0.0.1:2") || !strings.Contains(got, "-qps 0 -c 64") {
		t.Fatalf("grpc args: %s", got)
	}
}

func TestCerts(t *testing.T) {
	c, err := MakeCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{c.CA, c.ServerCert, c.ServerKey, c.ServerPEM, c.ClientCert, c.ClientKey, c.ClientPEM} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
	for name, pair := range map[string]tls.Certificate{ServerName: c.Server, ClientName: c.Client} {
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: c.Pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].Scheme != "spiffe" || leaf.URIs[0].Host != TrustDomain {
			t.Fatalf("%s: SPIFFE ID %v", name, leaf.URIs)
		}
	}
}

func TestProxyV2Header(t *testing.T) {
	h := proxyV2Header(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 0x1234}, 8080)
	want := append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x11, 0, 12, 127, 0, 0, 1, 127, 0, 0, 1, 0x12, 0x34, 0x1f, 0x90)
	if string(h) != string(want) {
		t.Fatalf("got %x\nwant %x", h, want)
	}
}

// TestTemplates renders every peer config and, where the peer is
// installed, has it check the result.
func TestTemplates(t *testing.T) {
	dir := t.TempDir()
	certs, err := MakeCerts(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := hopConfig{Dir: dir, MaxConn: 1000, NoFile: 4096, Certs: certs, ServerName: ServerName,
		HTTPListen: "127.0.0.1:10001", GRPCListen: "127.0.0.1:10002", HTTPNext: "127.0.0.1:10003", GRPCNext: "127.0.0.1:10004"}
	for _, c := range []struct{ tmpl, file string }{
		{"nginx-a.conf.tmpl", "nginx.conf"}, {"nginx-b.conf.tmpl", "nginx.conf"},
		{"haproxy-a.cfg.tmpl", "haproxy.cfg"}, {"haproxy-b.cfg.tmpl", "haproxy.cfg"}, {"haproxy-l4.cfg.tmpl", "haproxy.cfg"},
		{"Caddyfile-a.tmpl", "Caddyfile"}, {"Caddyfile-b.tmpl", "Caddyfile"},
	} {
		t.Run(c.tmpl, func(t *testing.T) {
			text, err := Render(c.tmpl, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(text, "<no value>") {
				t.Fatalf("unfilled field:\n%s", text)
			}
			for _, addr := range []string{cfg.HTTPNext, cfg.GRPCNext} {
				if !strings.Contains(text, addr) {
					t.Fatalf("%s missing:\n%s", addr, text)
				}
			}
			sub := filepath.Join(dir, strings.TrimSuffix(c.tmpl, ".tmpl"))
			os.MkdirAll(sub, 0o755)
			file := filepath.Join(sub, c.file)
			if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			var check []string
			switch {
			case strings.HasPrefix(c.tmpl, "nginx"):
				check = []string{"nginx", "-t", "-p", sub, "-e", filepath.Join(sub, "error.log"), "-c", file}
			case strings.HasPrefix(c.tmpl, "haproxy"):
				check = []string{"haproxy", "-c", "-f", file}
			default:
				check = []string{"caddy", "adapt", "--config", file, "--adapter", "caddyfile", "--validate"}
			}
			bin, err := exec.LookPath(check[0])
			if err != nil {
				bin = "/usr/sbin/" + check[0]
				if _, err := os.Stat(bin); err != nil {
					t.Skipf("%s not installed", check[0])
				}
			}
			cmd := exec.Command(bin, check[1:]...)
			cmd.Env = append(os.Environ(), "HOME="+sub, "XDG_DATA_HOME="+sub, "XDG_CONFIG_HOME="+sub)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s\n--- config ---\n%s", strings.Join(check, " "), err, out, text)
			}
		})
	}
}

// TestWeftConfigs loads every config the harness gives weft the way
// `weft proxy --config` does.
func TestWeftConfigs(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		yaml     string
		services int
	}{
		"inbound A": {weftServiceYAML(weftService) + "---\n" + weftWorkloadYAML("echo-1", weftService, "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"), 1},
		"chain A":   {weftServiceYAML(weftService) + "---\n" + weftWorkloadYAML("hop-b", weftService, "127.0.0.1:9004", "127.0.0.1:9005", ""), 1},
		"chain B":   {weftServiceYAML("echo2") + "---\n" + weftWorkloadYAML("server", "echo2", "127.0.0.1:9001", "127.0.0.1:9002", ""), 1},
		"1,000":     {ThousandServices(1000), 1000},
	}
	for name, c := range cases {
		f := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		if err := os.WriteFile(f, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := configfile.Load(f, compile.Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(cfg.Services) < c.services {
			t.Fatalf("%s: %d services, want %d", name, len(cfg.Services), c.services)
		}
	}
}

func sampleResults() *Results {
	lr := func(p50, p99 float64, cpu []float64) *LoadResult {
		return &LoadResult{Requests: 60000, OK: 60000, QPS: 1000, Seconds: 60, Codes: map[string]int64{"200": 60000},
			Latency: map[string]float64{"50": p50, "90": p50 * 1.3, "99": p99, "99.9": p99 * 1.2}, ProxyCPU: cpu, MiddleUsed: 16}
	}
	sys := func(name, kind string, p50, p99 float64, cpu []float64, rss []uint64) *SystemResult {
		return &SystemResult{Name: name, Kind: kind, About: name + " about",
			Fixed:   map[string]*LoadResult{HTTP: lr(p50, p99, cpu), GRPC: lr(p50*1.2, p99*1.2, cpu)},
			Max:     map[string]*LoadResult{HTTP: lr(p50*3, p99*3, []float64{2, 2}), GRPC: lr(p50*3, p99*3, []float64{2, 2})},
			PeakRSS: rss, StartRSS: rss}
	}
	return &Results{
		Started: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Seconds: 800, Command: "scripts/bench.sh",
		Machine:  Machine{CPU: "AMD EPYC", Cores: 2},
		Versions: map[string]string{"nginx": "nginx/1.22.1"},
		Settings: map[string]string{"fixed": "1000 req/s", "max": "64 connections"},
		Systems: []*SystemResult{
			sys("direct", KindDirect, 0.0005, 0.001, nil, nil),
			sys("l4-floor", KindFloor, 0.0010, 0.0018, []float64{1, 1}, []uint64{14 << 20, 14 << 20}),
			{Name: "weft", Kind: KindWeft, Unavailable: "not yet"},
			sys("weft-mtls", KindWeft, 0.0020, 0.004, []float64{6, 5}, []uint64{40 << 20, 38 << 20}),
			sys("nginx", KindPeer, 0.0011, 0.0019, []float64{1.5, 1.5}, []uint64{18 << 20, 18 << 20}),
			sys("haproxy", KindPeer, 0.0012, 0.0018, []float64{1.4, 1.4}, []uint64{20 << 20, 23 << 20}),
		},
		Idle: &IdleRSS{Services: 1000, RSS: 38 << 20},
	}
}

func TestMarkdown(t *testing.T) {
	res := sampleResults()
	for _, s := range res.Systems {
		if s.Name == "weft-mtls" {
			s.EndMem = []*MemSplit{{RSS: 40 << 20, Anon: 14 << 20, File: 26 << 20}, {RSS: 38 << 20, Anon: 13 << 20, File: 25 << 20}}
		}
		if s.Name == "nginx" {
			s.EndMem = []*MemSplit{{RSS: 18 << 20, Anon: 5 << 20, File: 12 << 20, Shmem: 1 << 20}, nil}
		}
	}
	res.Idle.Mem = &MemSplit{RSS: 38 << 20, Anon: 16 << 20, File: 22 << 20}
	md := Markdown(res)
	for _, want := range []string{
		"| weft-mtls | 2.000 (4.00×)",            // p50 and ÷ direct
		"1.500 · 3.00× l4 · 2.50× nginx",         // added p50: (2.0-0.5) / (1.0-0.5) and / (1.1-0.5)
		"0.1833 · 5.50× l4 · 3.93× haproxy",      // A+B CPU per 1k: 11 s/60k req vs 2 s and 2.8 s
		"**missed:** 40.0 MB vs 18.0 MB (nginx)", // peak RSS target
		"| weft |  | not yet |",                  // an unavailable system is listed, nothing invented
		"| private (RssAnon) at end A / B (MB) | file-backed (RssFile) at end A / B (MB) |",
		"2.22× nginx | 14.0 / 13.0 | 26.0 / 25.0 |\n", // weft-mtls: peak cell, then anon and file at the end
		"1.00× nginx | 5.0 / – | 12.0 / – |\n",        // a proxy without a split
		"1.28× nginx | – | – |\n",                     // haproxy: no splits (an older results.json)
		"Shared memory (RssShmem), the rest of the resident set at the end, A / B: nginx 1.0 / – MB.",
		"of which private (RssAnon) 16.0 MB and file-backed (RssFile) 22.0 MB.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in:\n%s", want, md)
		}
	}
	// Results without splits (an older results.json) render with "–".
	res.Idle.Mem = nil
	if md := Markdown(res); !strings.Contains(md, "of which private (RssAnon) – and file-backed (RssFile) –.") {
		t.Errorf("idle line without a split:\n%s", md)
	}
}

func TestLatencySVG(t *testing.T) {
	svg := LatencySVG(sampleResults())
	d := xml.NewDecoder(strings.NewReader(svg))
	rects := 0
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// Background, 4 legend swatches, and 4 bars for each of 5 measured
	// systems in 2 panels.
	if want := 1 + 4 + 5*4*2; rects != want {
		t.Fatalf("%d rects, want %d", rects, want)
	}
}

func TestShortErr(t *testing.T) {
	err := errors.New(`Post "http://127.0.0.1:1/echo": write tcp 127.0.0.1:48804->127.0.0.1:43575: write: broken pipe`)
	if got := shortErr(err); got != "write: write: broken pipe" {
		t.Fatalf("got %q", got)
	}
}

func TestParseStrace(t *testing.T) {
	out := `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 40.00    0.100000          10     10000      6000 read
 30.00    0.075000           7     10000           write
------ ----------- ----------- --------- --------- ----------------
100.00    0.175000           8     20000      6000 total
`
	m := parseStrace(out)
	if m["read"] != (strace{10000, 6000}) || m["write"] != (strace{10000, 0}) || m["total"].calls != 20000 {
		t.Fatalf("got %v", m)
	}
}

func TestNiceStep(t *testing.T) {
	for in, want := range map[float64]float64{0.13: 0.2, 0.9: 1, 3: 5, 7: 10, 0.04: 0.05} {
		if got := niceStep(in); got != want {
			t.Errorf("niceStep(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestWeftSystems(t *testing.T) {
	all := WeftSystems(WeftCaps{Inbound: true, TLSFiles: true, Control: true, AccessLog: true})
	var def, named []string
	for _, s := range all {
		if s.Start == nil || s.Unavailable != "" {
			t.Fatalf("%s unavailable with every capability: %q", s.Name, s.Unavailable)
		}
		if wanted(nil, s) {
			def = append(def, s.Name)
		}
		if wanted([]string{"weft-mtls"}, s) {
			named = append(named, s.Name)
		}
	}
	// The control-plane pair is the measured mTLS row; the file-based one
	// runs only when named, so a full run does not grow.
	if strings.Join(def, ",") != "weft,weft-plaintext" || strings.Join(named, ",") != "weft-mtls" {
		t.Fatalf("default %v, with --systems weft-mtls %v", def, named)
	}
	for _, s := range WeftSystems(WeftCaps{Inbound: true, TLSFiles: true}) {
		if s.Name == "weft" && (s.Start != nil || s.Unavailable == "") {
			t.Fatal("weft listed as runnable by a build without --control")
		}
	}
}

func TestHasEndpoints(t *testing.T) {
	body := []byte(`[{"name":"echo.default:50051","endpoints":[{"address":"127.0.0.1:2","workload":"default/echo-1","healthy":true}]},
		{"name":"echo.default:80","endpoints":[]}]`)
	check := hasEndpoints("echo-1", 80, 50051)
	if err := check(body); err == nil || !strings.Contains(err.Error(), "port 80") {
		t.Fatalf("port 80 has no endpoint, got %v", err)
	}
	body = []byte(`[{"name":"echo.default:50051","endpoints":[{"workload":"default/echo-1","healthy":true}]},
		{"name":"echo.default:80","endpoints":[{"workload":"default/echo-1","healthy":true}]}]`)
	if err := check(body); err != nil {
		t.Fatal(err)
	}
}

// TestServerIDCheck: a probe of a middle hop with ServerID accepts a
// server certificate by its SPIFFE ID (no host name) and refuses another.
func TestServerIDCheck(t *testing.T) {
	c, err := MakeCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{c.Server}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { conn.(*tls.Conn).Handshake(); conn.Close() }()
		}
	}()
	for id, ok := range map[string]bool{"spiffe://" + TrustDomain + "/ns/default/sa/" + ServerSA: true, "spiffe://" + TrustDomain + "/ns/default/sa/other": false} {
		cfg := Middle{ServerID: id}.clientTLS(c.Pool)
		conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err == nil {
			conn.Close()
		}
		if (err == nil) != ok {
			t.Errorf("server ID %s: handshake error %v, want ok=%v", id, err, ok)
		}
	}
}
