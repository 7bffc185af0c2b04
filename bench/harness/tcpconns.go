package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Connection counting on the middle hop, from /proc/net/tcp (what `ss -tan`
// reads). A TCP connection to a loopback port appears as one or two
// sockets, one per end; after the first end closes it stays as TIME-WAIT
// for 60 s. So a connection opened during a run is still listed right
// after it, whether it is open or closed: the set of connections to the
// port after a run, less the set before it, is the set the run opened.
// Samples during the run catch connections reset without a TIME-WAIT, and
// count the established ones: proof that the traffic crossed the port.

// connKey names a connection by its client end (the end whose port is not
// the listening port), the same from both sockets.
type connKey string

// tcpSockets lists the connections that have port at one end, and
// whether each is established.
func tcpSockets(port int) (map[connKey]bool, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseProcNetTCP(f, port)
}

// parseProcNetTCP maps each connection with port at one end to whether it
// is ESTABLISHED (state 01) at either end.
func parseProcNetTCP(r io.Reader, port int) (map[connKey]bool, error) {
	out := map[connKey]bool{}
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		local, remote, state := f[1], f[2], f[3]
		if state == "0A" { // LISTEN
			continue
		}
		lp, err1 := hexPort(local)
		rp, err2 := hexPort(remote)
		if err1 != nil || err2 != nil {
			continue
		}
		var k connKey
		switch {
		case lp == port && rp != port:
			k = connKey(remote)
		case rp == port && lp != port:
			k = connKey(local)
		default:
			continue
		}
		out[k] = out[k] || state == "01"
	}
	return out, sc.Err()
}

func hexPort(addr string) (int, error) {
	_, p, ok := strings.Cut(addr, ":")
	if !ok {
		return 0, fmt.Errorf("bad address %q", addr)
	}
	n, err := strconv.ParseUint(p, 16, 16)
	return int(n), err
}

// activeConns reads, with `ss -tni`, the data segments received so far on
// each established connection accepted on the ports: a connection whose
// count grew carried requests. nil if ss is missing.
func activeConns(ports []int) map[string]uint64 {
	if len(ports) == 0 {
		return nil
	}
	filter := make([]string, len(ports))
	for i, p := range ports {
		filter[i] = fmt.Sprintf("sport = :%d", p)
	}
	out, err := exec.Command("ss", "-tniH", "state", "established", "( "+strings.Join(filter, " or ")+" )").Output()
	if err != nil {
		return nil
	}
	return parseSS(out)
}

// parseSS reads `ss -tniH state established` output: a line per socket
// (Recv-Q, Send-Q, local, peer), then an indented line of TCP info.
func parseSS(out []byte) map[string]uint64 {
	m := map[string]uint64{}
	var key string
	for _, line := range bytes.Split(out, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			f := strings.Fields(string(line))
			key = ""
			if len(f) >= 4 {
				key = f[2] + " " + f[3]
				m[key] = 0
			}
			continue
		}
		if key == "" {
			continue
		}
		for _, f := range strings.Fields(string(line)) {
			if v, ok := strings.CutPrefix(f, "data_segs_in:"); ok {
				n, _ := strconv.ParseUint(v, 10, 64)
				m[key] = n
			}
		}
	}
	return m
}

// ConnCounter counts the connections opened to some ports between
// CountConns and Stop, and those that carried data.
type ConnCounter struct {
	ports    []int
	before   map[connKey]bool
	seen     map[connKey]bool
	maxOpen  int
	ssBefore map[string]uint64
	ssLast   map[string]uint64
	ssOK     bool
	stop     chan struct{}
	wg       sync.WaitGroup
}

// ConnCount is what a ConnCounter saw.
type ConnCount struct {
	Opened int // connections opened while counting
	Open   int // most established at one sample
	// Used is how many connections received data while counting (seen
	// established in a sample with more data segments than before the
	// start; -1: ss unavailable).
	Used int
}

// CountConns starts counting connections to ports, sampling every interval
// until Stop.
func CountConns(interval time.Duration, ports ...int) *ConnCounter {
	c := &ConnCounter{ports: ports, before: map[connKey]bool{}, seen: map[connKey]bool{}, stop: make(chan struct{})}
	c.sample(c.before)
	c.ssBefore = activeConns(ports)
	c.ssOK = c.ssBefore != nil
	c.ssLast = map[string]uint64{}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				c.sample(c.seen)
				c.sampleSS()
			}
		}
	}()
	return c
}

// sample adds the ports' current connections to into, and notes how many
// are established.
func (c *ConnCounter) sample(into map[connKey]bool) {
	open := 0
	for _, p := range c.ports {
		m, err := tcpSockets(p)
		if err != nil {
			continue
		}
		for k, est := range m {
			into[connKey(fmt.Sprintf("%d/%s", p, k))] = true
			if est {
				open++
			}
		}
	}
	c.maxOpen = max(c.maxOpen, open)
}

// sampleSS notes the data segments of every established connection.
func (c *ConnCounter) sampleSS() {
	if !c.ssOK {
		return
	}
	for k, v := range activeConns(c.ports) {
		c.ssLast[k] = v
	}
}

// Stop takes a last sample and returns the count.
func (c *ConnCounter) Stop() ConnCount {
	close(c.stop)
	c.wg.Wait()
	c.sample(c.seen)
	n := 0
	for k := range c.seen {
		if !c.before[k] {
			n++
		}
	}
	used := -1
	if c.ssOK {
		c.sampleSS()
		used = 0
		for k, v := range c.ssLast {
			if v > c.ssBefore[k] {
				used++
			}
		}
	}
	return ConnCount{Opened: n, Open: c.maxOpen, Used: used}
}
