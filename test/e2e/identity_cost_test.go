package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"weft.dev/weft/internal/identity"
)

// TestIdentityMTLSCost measures, in one run, what mutual TLS between two
// sidecars costs against plaintext: latency of requests through the client
// sidecar (connections reused, as in steady state), CPU of both sidecars
// per request, and the price of one full handshake. Rounds alternate
// between the two pairs so that drift in the machine hits both alike.
//
//	WEFT_MTLS_COST=1 go test ./test/e2e -run TestIdentityMTLSCost -v
//
// WEFT_MTLS_COST_N sets requests per round (default 5000).
func TestIdentityMTLSCost(t *testing.T) {
	if os.Getenv("WEFT_MTLS_COST") == "" {
		t.Skip("set WEFT_MTLS_COST=1 to measure")
	}
	perRound := 5000
	if n, err := strconv.Atoi(os.Getenv("WEFT_MTLS_COST_N")); err == nil && n > 0 {
		perRound = n
	}
	const rounds, workers = 4, 4
	ca, err := identity.NewCA(spiffeid.RequireTrustDomainFromString("mesh.test"))
	if err != nil {
		t.Fatal(err)
	}
	type pair struct {
		name           string
		client, server *Proxy
		http           *http.Client
		inbound        string
		lat            []time.Duration
		cpu            time.Duration
		reqs           int
		elapsed        time.Duration
	}
	mk := func(name string, mtls bool) *pair {
		backend := NewHTTPBackend(t, name)
		inbound := freeAddr(t)
		quiet := []string{"--access-log", "off"}
		sargs := append([]string{"--inbound", inbound, "--app", "main=" + backend.Addr}, quiet...)
		cargs := quiet
		if mtls {
			sargs = append(sargs, writeSVID(t, ca, "default", "reviews")...)
			cargs = append(cargs, writeSVID(t, ca, "default", "web")...)
		}
		server := StartProxy(t, "", ProxyOptions{Args: sargs})
		_, port, _ := net.SplitHostPort(backend.Addr)
		client := StartProxy(t, docs(service("reviews", 80, "http", ""), fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: reviews-1, labels: {app: reviews}}
spec:
  address: 127.0.0.1
  ports: [{name: main, port: %s}]
  serviceAccount: reviews
  inbound: %s
`, port, inbound)), ProxyOptions{Args: cargs})
		p := &pair{name: name, client: client, server: server, http: proxyClient(t, client), inbound: inbound}
		mustOK(t, p.http, "http://reviews/warm")
		return p
	}
	pairs := []*pair{mk("plaintext", false), mk("mtls", true)}

	for r := 0; r < rounds; r++ {
		for _, p := range pairs {
			cpu0 := cpuTime(t, p.client.PID()) + cpuTime(t, p.server.PID())
			lat := make([][]time.Duration, workers)
			var wg sync.WaitGroup
			start := time.Now()
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perRound/workers; i++ {
						t0 := time.Now()
						res, err := send(p.http, http.MethodGet, "http://reviews/cost", nil)
						if err != nil || res.Status != 200 {
							t.Errorf("%s: %v %v", p.name, err, res)
							return
						}
						lat[w] = append(lat[w], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			p.elapsed += time.Since(start)
			p.cpu += cpuTime(t, p.client.PID()) + cpuTime(t, p.server.PID()) - cpu0
			for _, l := range lat {
				p.lat = append(p.lat, l...)
				p.reqs += len(l)
			}
		}
	}

	// A full handshake (no resumption) against the mTLS inbound: what a
	// new sidecar-to-sidecar connection costs before reuse amortises it.
	cert := tlsCertFromCA(t, ca, "default", "web")
	const hs = 300
	var hsTotal time.Duration
	for i := 0; i < hs; i++ {
		t0 := time.Now()
		c, err := tls.Dial("tcp", pairs[1].inbound, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}, NextProtos: []string{identity.ALPNSidecar}, MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Fatal(err)
		}
		hsTotal += time.Since(t0)
		c.Close()
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%d rounds x %d requests per pair, %d workers, keep-alive, GOMAXPROCS=%s, %d CPUs\n", rounds, perRound, workers, os.Getenv("GOMAXPROCS"), nprocs())
	fmt.Fprintf(&b, "%-10s %9s %9s %9s %9s %10s %14s\n", "pair", "p50", "p90", "p99", "mean", "req/s", "CPU/req (both)")
	for _, p := range pairs {
		sort.Slice(p.lat, func(i, j int) bool { return p.lat[i] < p.lat[j] })
		var sum time.Duration
		for _, l := range p.lat {
			sum += l
		}
		q := func(f float64) time.Duration { return p.lat[int(f*float64(len(p.lat)-1))] }
		fmt.Fprintf(&b, "%-10s %9s %9s %9s %9s %10.0f %14s\n", p.name, q(.5).Round(time.Microsecond), q(.9).Round(time.Microsecond), q(.99).Round(time.Microsecond),
			(sum / time.Duration(len(p.lat))).Round(time.Microsecond), float64(p.reqs)/p.elapsed.Seconds(), (p.cpu / time.Duration(p.reqs)).Round(100*time.Nanosecond))
	}
	fmt.Fprintf(&b, "full mTLS handshake to the inbound (client in the test, no resumption): %s mean over %d\n", (hsTotal / hs).Round(time.Microsecond), hs)
	t.Log(b.String())
}

func tlsCertFromCA(t *testing.T, ca *identity.CA, ns, sa string) tls.Certificate {
	t.Helper()
	return tlsCert(t, mustSource(t, ca, ns, sa))
}

// cpuTime is a process's user+system CPU time so far.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the ")" that ends the command name; utime and stime are
	// the 14th and 15th of the whole line.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

func nprocs() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
