// Package compile turns resources (plus the registry's workloads) into the
// configuration one proxy runs: a pure function with no I/O, tested with
// golden files. Its output types here are the contract between the control
// plane and the data plane.
package compile

import (
	"strconv"
	"time"
)

// Config is everything one proxy needs. It is immutable once built; the proxy
// swaps whole Configs atomically.
type Config struct {
	// Version identifies this config (a content hash or a store revision).
	Version string `json:"version"`
	// Services the proxy may call, sorted by namespace then name.
	Services []*Service `json:"services"`
	// Clusters are the backends traffic is balanced over, one per
	// (service, port), keyed by ClusterName.
	Clusters map[string]*Cluster `json:"clusters"`
	// Inbound is the policy of the proxy's own inbound (mTLS mode and
	// authorization); nil when the proxy's workload is not known.
	Inbound *Inbound `json:"inbound,omitempty"`
}

// Protocols a service port can speak (from appProtocol, else sniffed).
const (
	ProtocolHTTP      = "http"
	ProtocolH2C       = "h2c"
	ProtocolGRPC      = "grpc"
	ProtocolTCP       = "tcp"
	ProtocolWebSocket = "ws"
	ProtocolSniff     = "" // decide per connection from the first bytes
)

// Service is a service as callers address it.
type Service struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Hosts are the names that reach it: name, name.ns, name.ns.svc,
	// name.ns.svc.cluster.local.
	Hosts []string       `json:"hosts"`
	Ports []*ServicePort `json:"ports"`
}

// ServicePort is one port of a service with its routing table.
type ServicePort struct {
	Name     string `json:"name,omitempty"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol"`
	// HTTP holds the routing of HTTP, h2c, gRPC and WebSocket traffic.
	// A port with no attached route has one rule sending everything to its
	// own cluster.
	HTTP *HTTPRouting `json:"http,omitempty"`
	// TCP holds the routing of opaque traffic (TCPRoute, or the port's own
	// cluster).
	TCP *TCPRouting `json:"tcp,omitempty"`
}

// HTTPRouting is the per-port route table plus the caller-side policy of the
// called service (retries and timeouts are the caller's choice).
type HTTPRouting struct {
	Rules   []*HTTPRule `json:"rules"`
	Retry   *Retry      `json:"retry,omitempty"`
	Timeout Duration    `json:"timeout,omitempty"`
}

// HTTPRule is one rule of one HTTPRoute or GRPCRoute, flattened. Rules are
// ordered by Gateway API precedence; the first whose match fits wins.
type HTTPRule struct {
	// Route names the origin, "namespace/name/rule-index", for metrics.
	Route     string       `json:"route"`
	Hostnames []string     `json:"hostnames,omitempty"`
	Matches   []*HTTPMatch `json:"matches,omitempty"` // empty matches all
	// Filters applied before forwarding, in order.
	RequestHeaders  *HeaderModifier `json:"requestHeaders,omitempty"`
	ResponseHeaders *HeaderModifier `json:"responseHeaders,omitempty"`
	Redirect        *Redirect       `json:"redirect,omitempty"` // answered by the proxy; no backend
	Rewrite         *Rewrite        `json:"rewrite,omitempty"`
	Mirrors         []*Mirror       `json:"mirrors,omitempty"`
	Fault           *Fault          `json:"fault,omitempty"`
	Backends        []*Backend      `json:"backends,omitempty"`
	// Timeout bounds the whole request including retries (rule
	// timeouts.request, else the service policy's timeout); 0 is none.
	Timeout Duration `json:"timeout,omitempty"`
	// BackendTimeout bounds each try (timeouts.backendRequest, else the
	// retry policy's perTryTimeout).
	BackendTimeout Duration `json:"backendTimeout,omitempty"`
	// Invalid, when set, makes the rule answer 500 with this reason: the
	// Gateway API requires a rule with an unresolvable filter or backend to
	// fail rather than be skipped.
	Invalid string `json:"invalid,omitempty"`
}

// Path match types (Gateway API).
const (
	PathExact  = "Exact"
	PathPrefix = "PathPrefix"
	PathRegex  = "RegularExpression"
)

type HTTPMatch struct {
	PathType string        `json:"pathType,omitempty"`
	Path     string        `json:"path,omitempty"`
	Method   string        `json:"method,omitempty"`
	Headers  []*ValueMatch `json:"headers,omitempty"`
	Query    []*ValueMatch `json:"query,omitempty"`
}

// ValueMatch matches a header or query parameter, Exact or RegularExpression.
type ValueMatch struct {
	Name  string `json:"name"`
	Regex bool   `json:"regex,omitempty"`
	Value string `json:"value"`
}

type HeaderModifier struct {
	Set    map[string]string `json:"set,omitempty"`
	Add    map[string]string `json:"add,omitempty"`
	Remove []string          `json:"remove,omitempty"`
}

type Redirect struct {
	Scheme     string       `json:"scheme,omitempty"`
	Hostname   string       `json:"hostname,omitempty"`
	Port       int32        `json:"port,omitempty"`
	Path       *PathRewrite `json:"path,omitempty"`
	StatusCode int          `json:"statusCode"` // 301 or 302
}

type Rewrite struct {
	Hostname string       `json:"hostname,omitempty"`
	Path     *PathRewrite `json:"path,omitempty"`
}

// PathRewrite replaces the full path, or only the prefix that matched.
type PathRewrite struct {
	// FullPath is the replacement: the whole new path, or, with
	// ReplacePrefix, what replaces the matched prefix (Gateway API
	// replaceFullPath / replacePrefixMatch).
	FullPath string `json:"fullPath,omitempty"`
	// PrefixMatch is, with ReplacePrefix, the PathPrefix value that matched
	// (rules are flattened to one match, so the compiler knows it).
	PrefixMatch   string `json:"prefixMatch,omitempty"`
	ReplacePrefix bool   `json:"replacePrefix,omitempty"`
}

// Mirror sends a copy of each request (Percent of them) to a cluster and
// ignores the answer.
type Mirror struct {
	Cluster string  `json:"cluster"`
	Percent float64 `json:"percent"`
}

type Fault struct {
	DelayPercent float64  `json:"delayPercent,omitempty"`
	Delay        Duration `json:"delay,omitempty"`
	AbortPercent float64  `json:"abortPercent,omitempty"`
	AbortStatus  int      `json:"abortStatus,omitempty"`
	// AbortGRPCStatus is used for gRPC requests when set.
	AbortGRPCStatus *int `json:"abortGrpcStatus,omitempty"`
}

// Backend is one weighted destination of a rule.
type Backend struct {
	Cluster         string          `json:"cluster"`
	Weight          int32           `json:"weight"`
	RequestHeaders  *HeaderModifier `json:"requestHeaders,omitempty"`
	ResponseHeaders *HeaderModifier `json:"responseHeaders,omitempty"`
}

type TCPRouting struct {
	Route    string     `json:"route,omitempty"`
	Backends []*Backend `json:"backends"`
}

// Cluster is a set of endpoints with the policies that govern them: the
// target of load balancing, limits and ejection. Named by ClusterName.
type Cluster struct {
	Name      string      `json:"name"`
	Service   string      `json:"service"` // namespace/name
	Port      int32       `json:"port"`
	Protocol  string      `json:"protocol"`
	Endpoints []*Endpoint `json:"endpoints"`

	LoadBalancer LoadBalancer `json:"loadBalancer"`
	Limits       Limits       `json:"limits"`
	Outlier      *Outlier     `json:"outlier,omitempty"`
	HealthCheck  *HealthCheck `json:"healthCheck,omitempty"`
	ZoneAware    *ZoneAware   `json:"zoneAware,omitempty"`
}

// ClusterName is "name.namespace:port", unique per service port.
func ClusterName(namespace, name string, port int32) string {
	return name + "." + namespace + ":" + strconv.Itoa(int(port))
}

type Endpoint struct {
	Workload string `json:"workload"` // namespace/name
	Address  string `json:"address"`  // host:port
	Zone     string `json:"zone,omitempty"`
	// Inbound is the address of the workload's sidecar, when it runs one:
	// callers connect there and name Address in a PROXY protocol header,
	// and the sidecar delivers to its app.
	Inbound string `json:"inbound,omitempty"`
	// Identity is the workload's service account, for the identity the
	// caller expects of the sidecar at Inbound.
	ServiceAccount string `json:"serviceAccount,omitempty"`
}

type LoadBalancer struct {
	Type       string `json:"type"` // RoundRobin, LeastRequest, RingHash, Random
	HashHeader string `json:"hashHeader,omitempty"`
	HashCookie string `json:"hashCookie,omitempty"`
	HashSource bool   `json:"hashSource,omitempty"`
}

// Limits are the circuit breaker thresholds; 0 means unlimited.
type Limits struct {
	MaxConnections     int `json:"maxConnections,omitempty"`
	MaxPendingRequests int `json:"maxPendingRequests,omitempty"`
	MaxRequests        int `json:"maxRequests,omitempty"`
}

// Retry conditions.
const (
	RetryOn5xx            = "5xx"
	RetryOnGatewayError   = "gateway-error"
	RetryOnReset          = "reset"
	RetryOnConnectFailure = "connect-failure"
	RetryOnRetriableCodes = "retriable-status-codes"
)

type Retry struct {
	Attempts             int      `json:"attempts"` // retries after the first try
	PerTryTimeout        Duration `json:"perTryTimeout,omitempty"`
	RetryOn              []string `json:"retryOn"`
	RetriableStatusCodes []int    `json:"retriableStatusCodes,omitempty"`
	BackoffBase          Duration `json:"backoffBase"`
	BackoffMax           Duration `json:"backoffMax"`
	BudgetPercent        int      `json:"budgetPercent"`
	BudgetMinConcurrency int      `json:"budgetMinConcurrency"`
	MaxBufferedBody      int64    `json:"maxBufferedBody"`
}

type Outlier struct {
	Consecutive5xx           int      `json:"consecutive5xx,omitempty"`
	ConsecutiveGatewayErrors int      `json:"consecutiveGatewayErrors,omitempty"`
	ConsecutiveConnectErrors int      `json:"consecutiveConnectErrors,omitempty"`
	Interval                 Duration `json:"interval"`
	BaseEjectionTime         Duration `json:"baseEjectionTime"`
	MaxEjectionTime          Duration `json:"maxEjectionTime"`
	MaxEjectionPercent       int      `json:"maxEjectionPercent"`
}

type HealthCheck struct {
	Path               string   `json:"path"`
	Interval           Duration `json:"interval"`
	Timeout            Duration `json:"timeout"`
	HealthyThreshold   int      `json:"healthyThreshold"`
	UnhealthyThreshold int      `json:"unhealthyThreshold"`
	ExpectedStatuses   []int    `json:"expectedStatuses,omitempty"` // empty: 200-399
}

type ZoneAware struct {
	MinHealthyPercent int `json:"minHealthyPercent"`
}

// Duration marshals as a Go duration string ("1.5s") for readable dumps.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
