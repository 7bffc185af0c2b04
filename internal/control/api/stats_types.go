package api

import "time"

// Wire types of the telemetry calls (`weft top`, `weft tap`, the
// dashboard). Their handlers live in internal/control/stats and mount on
// the API with Handle. Latencies are milliseconds; a number that has no
// value (no requests in the window) is null.

// Golden are the golden numbers of some HTTP/gRPC traffic over a window.
type Golden struct {
	Requests uint64  `json:"requests"`
	Errors   uint64  `json:"errors"`
	RPS      float64 `json:"rps"`
	// SuccessRate is 0 to 1: requests that were not errors (5xx, non-OK
	// gRPC status, no answer) over all.
	SuccessRate *float64 `json:"successRate"`
	P50         *float64 `json:"p50"`
	P95         *float64 `json:"p95"`
	P99         *float64 `json:"p99"`
}

// TCPGolden are opaque TCP numbers over a window.
type TCPGolden struct {
	Opened        uint64  `json:"opened"`
	Closed        uint64  `json:"closed"`
	SentBytes     uint64  `json:"sentBytes"`
	ReceivedBytes uint64  `json:"receivedBytes"`
	ConnsPerSec   float64 `json:"connsPerSec"`
}

// Node kinds of the graph.
const (
	NodeService  = "service"
	NodeWorkload = "workload" // a proxy whose workload no Service selects
	NodeUnknown  = "unknown"  // requests the caller's proxy could not route
)

// GraphNode is a service (or a caller that is in none).
type GraphNode struct {
	// ID is "namespace/name" for services, "workload:namespace/name" for a
	// lone workload, "unknown".
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Workloads is how many Workloads the service selects.
	Workloads int `json:"workloads"`
	// Inbound are the requests into it from every caller in the window.
	Inbound Golden     `json:"inbound"`
	TCP     *TCPGolden `json:"tcp,omitempty"`
}

// GraphEdge is who calls whom, as the callers' proxies saw it.
type GraphEdge struct {
	Source string `json:"source"`
	Target string `json:"target"`
	Golden
	TCP *TCPGolden `json:"tcp,omitempty"`
}

// GraphResponse answers GET /api/v1/graph[?namespace=NS&window=1m].
type GraphResponse struct {
	Time          time.Time   `json:"time"`
	Window        string      `json:"window"`
	WindowSeconds float64     `json:"windowSeconds"`
	Replica       string      `json:"replica,omitempty"`
	Nodes         []GraphNode `json:"nodes"`
	Edges         []GraphEdge `json:"edges"`
}

// Point is one step of a time series: the golden numbers of that step.
type Point struct {
	T           time.Time `json:"t"`
	Requests    uint64    `json:"requests"`
	RPS         float64   `json:"rps"`
	SuccessRate *float64  `json:"successRate"`
	P50         *float64  `json:"p50"`
	P95         *float64  `json:"p95"`
	P99         *float64  `json:"p99"`
}

// RouteMetrics are one route's numbers into a service.
type RouteMetrics struct {
	// Route is "namespace/name/rule", "" for traffic that no route rule
	// matched (the default route).
	Route  string  `json:"route"`
	Golden Golden  `json:"golden"`
	Series []Point `json:"series"`
}

// WorkloadInfo is one Workload a service selects.
type WorkloadInfo struct {
	Namespace  string            `json:"namespace"`
	Name       string            `json:"name"`
	Address    string            `json:"address,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Zone       string            `json:"zone,omitempty"`
	Registered bool              `json:"registered,omitempty"`
}

// ServiceMetricsResponse answers GET
// /api/v1/services/{namespace}/{name}/metrics[?window=15m&step=5s].
type ServiceMetricsResponse struct {
	Namespace     string         `json:"namespace"`
	Name          string         `json:"name"`
	Time          time.Time      `json:"time"`
	Window        string         `json:"window"`
	Step          string         `json:"step"`
	Golden        Golden         `json:"golden"`
	Series        []Point        `json:"series"`
	Routes        []RouteMetrics `json:"routes"`
	Callers       []GraphEdge    `json:"callers"`
	Calls         []GraphEdge    `json:"calls"`
	Workloads     []WorkloadInfo `json:"workloads"`
	ServiceExists bool           `json:"serviceExists"`
}

// ProxyTelemetry is what this replica knows of a proxy's telemetry stream.
type ProxyTelemetry struct {
	Connected  bool      `json:"connected"`
	Since      time.Time `json:"since,omitzero"`
	LastReport time.Time `json:"lastReport,omitzero"`
	Started    time.Time `json:"started,omitzero"`
	Reports    uint64    `json:"reports"`
}

// ProxyInfo is a connected proxy: its config status and its telemetry.
type ProxyInfo struct {
	ProxyStatus
	Telemetry *ProxyTelemetry `json:"telemetry,omitempty"`
}

// ProxiesResponse answers GET /api/v1/proxies.
type ProxiesResponse struct {
	Proxies []ProxyInfo `json:"proxies"`
	// Error is set when the list may be incomplete (another replica's
	// status could not be read).
	Error string `json:"error,omitempty"`
}

// Kinds of TapLine.
const (
	TapLineOpened  = "tap"
	TapLineRequest = "request"
	TapLineDropped = "dropped"
)

// TapLine is one line of GET /api/v1/tap (NDJSON): first a "tap" line,
// then a "request" line per tapped request, and "dropped" lines when
// events were lost to rate limits or slow readers.
type TapLine struct {
	Kind string `json:"kind"`
	// For "tap": how many proxies of this replica were asked to tap.
	Proxies int `json:"proxies,omitempty"`
	// For "dropped".
	Dropped uint64 `json:"dropped,omitempty"`
	// For "request".
	Request *TapRequest `json:"request,omitempty"`
}

// TapRequest is one tapped request, as the caller's proxy saw it.
type TapRequest struct {
	Time                time.Time `json:"time"`
	Proxy               string    `json:"proxy"` // namespace/name of the reporting proxy
	SourceWorkload      string    `json:"sourceWorkload"`
	SourceNamespace     string    `json:"sourceNamespace"`
	DestinationService  string    `json:"destinationService"`
	DestinationWorkload string    `json:"destinationWorkload,omitempty"`
	Route               string    `json:"route,omitempty"`
	Method              string    `json:"method"`
	Authority           string    `json:"authority"`
	Path                string    `json:"path"`
	Status              int       `json:"status"`
	GRPCStatus          *int      `json:"grpcStatus,omitempty"`
	ResponseFlags       string    `json:"responseFlags,omitempty"`
	LatencyMs           float64   `json:"latencyMs"`
	TraceID             string    `json:"traceId,omitempty"`
	Upstream            string    `json:"upstream,omitempty"`
	MutualTLS           bool      `json:"mtls"`
}
