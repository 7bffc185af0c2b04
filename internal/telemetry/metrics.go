package telemetry

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// unknown is the value of a label the proxy could not know.
const unknown = "unknown"

// noFlags is response_flags when the proxy did not answer itself.
const noFlags = "-"

var requestLabels = []string{
	"reporter", "source_workload", "source_namespace", "source_principal",
	"destination_service", "destination_workload", "destination_namespace", "route",
	"request_protocol", "response_code", "grpc_status", "response_flags",
	"connection_security_policy",
}

var tcpLabels = []string{
	"reporter", "source_workload", "source_namespace", "source_principal",
	"destination_service", "destination_workload", "destination_namespace", "route",
	"response_flags", "connection_security_policy",
}

// DurationBuckets are the latency histogram's bounds in seconds: from half
// a millisecond (a hop on one host) to 10 s.
var DurationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type metrics struct {
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	tcpSent   *prometheus.CounterVec
	tcpRecv   *prometheus.CounterVec
	tcpOpened *prometheus.CounterVec
	tcpClosed *prometheus.CounterVec

	// The resolved children per label combination. Reads take the read
	// lock only; a combination is added once, the first time it is seen.
	mu   sync.RWMutex
	reqs map[requestKey]*requestSeries
	tcps map[tcpKey]*tcpSeries
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_requests_total",
			Help: "HTTP and gRPC requests the proxy handled, by source, destination, route and outcome.",
		}, requestLabels),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_request_duration_seconds",
			Help:    "Time from a request's arrival at the proxy to the end of its response.",
			Buckets: DurationBuckets,
		}, requestLabels),
		tcpSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_sent_bytes_total",
			Help: "Bytes sent to the downstream peer on opaque TCP connections, counted when a connection closes.",
		}, tcpLabels),
		tcpRecv: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_received_bytes_total",
			Help: "Bytes received from the downstream peer on opaque TCP connections, counted when a connection closes.",
		}, tcpLabels),
		tcpOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_connections_opened_total",
			Help: "Opaque TCP connections opened.",
		}, tcpLabels),
		tcpClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_connections_closed_total",
			Help: "Opaque TCP connections closed.",
		}, tcpLabels),
		reqs: map[requestKey]*requestSeries{},
		tcps: map[tcpKey]*tcpSeries{},
	}
	for _, c := range []prometheus.Collector{m.requests, m.durations, m.tcpSent, m.tcpRecv, m.tcpOpened, m.tcpClosed} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// dest is where a request or connection went, in the strings the config
// holds: nothing here is built per request.
type dest struct {
	// svcName and svcNamespace are the routed service; cluster, when set,
	// is the backend's cluster ("name.namespace:port"), whose service wins.
	svcName, svcNamespace, cluster string
	route                          string
	// workload is the endpoint's "namespace/name".
	workload string
}

// labelKey is the identity part of a series, shared by requests and TCP.
type labelKey struct {
	reporter Reporter
	mtls     bool
	src      Peer
	// dst is the destination workload for the server reporter (the proxy
	// itself); the client reporter's comes from d.workload.
	dst   Peer
	d     dest
	flags string
}

type requestKey struct {
	labelKey
	grpc       bool
	code       int32
	grpcStatus int32 // -1: none
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

type tcpKey struct{ labelKey }

type tcpSeries struct {
	sent, received, opened, closed prometheus.Counter
}

func (m *metrics) request(k *requestKey, d time.Duration) {
	m.mu.RLock()
	s := m.reqs[*k]
	m.mu.RUnlock()
	if s == nil {
		s = m.resolveRequest(k)
	}
	s.count.Inc()
	s.duration.Observe(d.Seconds())
}

func (m *metrics) resolveRequest(k *requestKey) *requestSeries {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.reqs[*k]; s != nil {
		return s
	}
	l := k.values()
	proto := "http"
	if k.grpc {
		proto = "grpc"
	}
	grpcStatus := ""
	if k.grpcStatus >= 0 {
		grpcStatus = strconv.Itoa(int(k.grpcStatus))
	}
	vs := []string{l.reporter, l.srcWorkload, l.srcNamespace, l.srcPrincipal, l.service, l.dstWorkload, l.dstNamespace, l.route,
		proto, strconv.Itoa(int(k.code)), grpcStatus, l.flags, l.security}
	s := &requestSeries{count: m.requests.WithLabelValues(vs...), duration: m.durations.WithLabelValues(vs...)}
	m.reqs[*k] = s
	return s
}

func (m *metrics) tcp(k *tcpKey) *tcpSeries {
	m.mu.RLock()
	s := m.tcps[*k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.tcps[*k]; s != nil {
		return s
	}
	l := k.values()
	vs := []string{l.reporter, l.srcWorkload, l.srcNamespace, l.srcPrincipal, l.service, l.dstWorkload, l.dstNamespace, l.route, l.flags, l.security}
	s = &tcpSeries{
		sent: m.tcpSent.WithLabelValues(vs...), received: m.tcpRecv.WithLabelValues(vs...),
		opened: m.tcpOpened.WithLabelValues(vs...), closed: m.tcpClosed.WithLabelValues(vs...),
	}
	m.tcps[*k] = s
	return s
}

// labelValues are a key's label values, as reported.
type labelValues struct {
	reporter, srcWorkload, srcNamespace, srcPrincipal string
	service, dstWorkload, dstNamespace, route         string
	flags, security                                   string
}

func (k *labelKey) values() labelValues {
	l := labelValues{
		reporter:     k.reporter.String(),
		srcWorkload:  orUnknown(k.src.Workload),
		srcNamespace: orUnknown(k.src.Namespace),
		srcPrincipal: orUnknown(k.src.Principal),
		service:      orUnknown(k.d.service()),
		route:        orUnknown(k.d.route),
		flags:        k.flags,
		security:     "none",
	}
	if k.mtls {
		l.security = "mutual_tls"
	}
	if l.flags == "" {
		l.flags = noFlags
	}
	dst := k.dst
	if k.reporter == Client {
		dst = Peer{}
		dst.Namespace, dst.Workload = splitWorkload(k.d.workload)
		if dst.Namespace == "" {
			dst.Namespace = k.d.namespace()
		}
	}
	l.dstWorkload, l.dstNamespace = orUnknown(dst.Workload), orUnknown(dst.Namespace)
	return l
}

// service is "name.namespace" of the backend's service, else of the routed
// service, else "".
func (d *dest) service() string {
	if d.cluster != "" {
		if i := strings.LastIndexByte(d.cluster, ':'); i > 0 {
			return d.cluster[:i]
		}
		return d.cluster
	}
	if d.svcName == "" {
		return ""
	}
	if d.svcNamespace == "" {
		return d.svcName
	}
	return d.svcName + "." + d.svcNamespace
}

// namespace is the destination service's namespace.
func (d *dest) namespace() string {
	if d.cluster != "" {
		s := d.service()
		if i := strings.LastIndexByte(s, '.'); i >= 0 {
			return s[i+1:]
		}
		return ""
	}
	return d.svcNamespace
}

// splitWorkload splits "namespace/name".
func splitWorkload(w string) (ns, name string) {
	if i := strings.IndexByte(w, '/'); i >= 0 {
		return w[:i], w[i+1:]
	}
	return "", w
}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}
