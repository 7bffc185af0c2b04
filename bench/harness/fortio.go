package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Protocols the workloads speak, in report order.
const (
	HTTP = "http"
	GRPC = "grpc"
)

// Protocols lists the workload protocols in report order.
var Protocols = []string{HTTP, GRPC}

// ProtoTitle is how the report names a protocol.
func ProtoTitle(proto string) string {
	if proto == GRPC {
		return "gRPC unary"
	}
	return "HTTP/1.1"
}

// Load is one fortio run's shape.
type Load struct {
	Proto    string
	Addr     string        // host:port the client connects to
	QPS      int           // 0: as fast as it goes (closed loop)
	Conns    int           // connections (fortio -c)
	Duration time.Duration // fortio -t
	Payload  int           // request body / ping payload bytes; the server echoes it
}

// Percentiles the report shows, as fortio's -p takes them.
var Percentiles = []float64{50, 90, 99, 99.9}

// LoadResult is what a run measured.
type LoadResult struct {
	Requests  int64              `json:"requests"` // answered, with any code
	OK        int64              `json:"ok"`       // 200 (HTTP) or SERVING (gRPC)
	Errors    int64              `json:"errors"`   // everything else, and transport errors
	Codes     map[string]int64   `json:"codes"`
	QPS       float64            `json:"qps"`     // achieved
	Seconds   float64            `json:"seconds"` // achieved duration
	Latency   map[string]float64 `json:"latency"` // percentile ("50", "99.9") -> seconds
	AvgSecond float64            `json:"avg"`
	MaxSecond float64            `json:"max"`

	// Filled in by the runner, not by fortio.
	ProxyCPU     []float64 `json:"proxyCPU,omitempty"`  // CPU seconds of each proxy during the run
	ServerCPU    float64   `json:"serverCPU"`           // CPU seconds of the upstream server
	ClientCPU    float64   `json:"clientCPU"`           // CPU seconds of fortio
	HelperCPU    float64   `json:"helperCPU,omitempty"` // CPU seconds of the system's other processes (weft control)
	MachineBusy  float64   `json:"machineBusy"`         // busy CPU seconds of the whole machine
	MiddleOpened int       `json:"middleOpened"`        // connections opened on the middle hop during the run
	MiddleOpen   int       `json:"middleOpen"`          // most established on the middle hop at once
	MiddleUsed   int       `json:"middleUsed"`          // middle-hop connections that carried data (-1: unknown)
	QuietWait    float64   `json:"quietWait"`           // seconds waited for a quiet machine before the run
	BusyBefore   float64   `json:"busyBefore"`          // cores busy in the second before the run
	Attempts     int       `json:"attempts,omitempty"`  // >1: measured again because the first run was noisy
	JSONFile     string    `json:"-"`
}

// PctKey is the Latency key of percentile p.
func PctKey(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) }

// Args returns fortio's command line for l (without the binary).
func (l Load) Args(jsonOut string) []string {
	args := []string{"load",
		"-qps", strconv.Itoa(l.QPS),
		"-c", strconv.Itoa(l.Conns),
		"-t", l.Duration.String(),
		"-r", "0.00001", // 10 µs histogram buckets: the default 1 ms makes sub-ms percentiles meaningless
		"-payload-size", strconv.Itoa(l.Payload),
		"-p", pctList(),
		"-json", jsonOut,
		"-quiet",
	}
	if l.Proto == GRPC {
		return append(args, "-grpc", "-ping", l.Addr)
	}
	return append(args, "http://"+l.Addr+"/echo")
}

func pctList() string {
	s := make([]string, len(Percentiles))
	for i, p := range Percentiles {
		s[i] = PctKey(p)
	}
	return strings.Join(s, ",")
}

// RunFortio runs one load and parses its JSON result. fortio runs with
// GOMAXPROCS=1 like every Go process of the benchmark. A fortio killed by
// a signal that the harness did not send (another program on a shared
// machine) is run again, once.
func RunFortio(ctx context.Context, fortio, dir, name string, l Load) (*LoadResult, error) {
	r, err := runFortio(ctx, fortio, dir, name, l)
	var ee *exec.ExitError
	if err != nil && ctx.Err() == nil && errors.As(err, &ee) && ee.ProcessState != nil && !ee.ProcessState.Exited() {
		fmt.Fprintf(os.Stderr, "fortio %s: %v; running it again\n", name, err)
		return runFortio(ctx, fortio, dir, name, l)
	}
	return r, err
}

func runFortio(ctx context.Context, fortio, dir, name string, l Load) (*LoadResult, error) {
	jsonOut := filepath.Join(dir, name+".json")
	logOut := filepath.Join(dir, name+".log")
	lf, err := os.Create(logOut)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.CommandContext(ctx, fortio, l.Args(jsonOut)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	os.Remove(jsonOut)
	runErr := cmd.Run()
	b, err := os.ReadFile(jsonOut)
	if err != nil {
		tail, _ := os.ReadFile(logOut)
		if len(tail) > 1500 {
			tail = tail[len(tail)-1500:]
		}
		if runErr == nil {
			runErr = errors.New("exited 0")
		}
		return nil, fmt.Errorf("fortio %s: %w, no result (%v):\n%s", name, runErr, err, tail)
	}
	r, err := ParseFortio(b, l.Proto)
	if err != nil {
		return nil, fmt.Errorf("fortio %s: %w", name, err)
	}
	r.JSONFile = jsonOut
	if cmd.ProcessState != nil {
		r.ClientCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	return r, nil
}

// fortioJSON is the part of fortio's -json output the harness reads.
type fortioJSON struct {
	ActualQPS               float64
	ActualDuration          int64 // ns
	RetCodes                map[string]int64
	DurationHistogram       fortioHist
	ErrorsDurationHistogram fortioHist
}

type fortioHist struct {
	Count       int64
	Avg, Max    float64
	Percentiles []struct {
		Percentile float64
		Value      float64
	}
}

// ParseFortio reads a fortio -json result. An answer is OK when its code
// is 200 (HTTP) or SERVING (gRPC ping); every other code, and every
// request that failed without a code, is an error.
func ParseFortio(b []byte, proto string) (*LoadResult, error) {
	var j fortioJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, err
	}
	okCode := "200"
	if proto == GRPC {
		okCode = "SERVING"
	}
	r := &LoadResult{
		Codes:     j.RetCodes,
		QPS:       j.ActualQPS,
		Seconds:   float64(j.ActualDuration) / 1e9,
		Latency:   map[string]float64{},
		AvgSecond: j.DurationHistogram.Avg,
		MaxSecond: j.DurationHistogram.Max,
	}
	if r.Codes == nil {
		r.Codes = map[string]int64{}
	}
	for code, n := range j.RetCodes {
		r.Requests += n
		if code == okCode {
			r.OK += n
		} else {
			r.Errors += n
		}
	}
	// Requests with no code at all (connection failures) only show in the
	// histogram counts.
	if c := j.DurationHistogram.Count; c > r.Requests {
		r.Errors += c - r.Requests
		r.Requests = c
	}
	for _, p := range j.DurationHistogram.Percentiles {
		r.Latency[PctKey(p.Percentile)] = p.Value
	}
	return r, nil
}

// CodesString renders codes as "200:1000 503:2", sorted.
func CodesString(codes map[string]int64) string {
	keys := make([]string, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", k, codes[k])
	}
	return b.String()
}
