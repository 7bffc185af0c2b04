package resource

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group and Version of weft's own kinds (weft.dev/v1alpha1).
const (
	Group      = "weft.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version
)

// Workload is one running instance of a service outside Kubernetes: what a Pod
// is to a Kubernetes Service. `weft proxy` registers its own; endpoints that
// run no proxy are declared by hand.
type Workload struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              WorkloadSpec `json:"spec"`
}

type WorkloadSpec struct {
	// Address is an IP or host name where the workload's ports listen.
	Address string         `json:"address"`
	Ports   []WorkloadPort `json:"ports,omitempty"`
	// ServiceAccount names the workload's identity (SPIFFE .../sa/<name>).
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Zone is the failure domain, used by zone-aware load balancing.
	Zone string `json:"zone,omitempty"`
	// Inbound is the host:port of the workload's sidecar inbound listener.
	// Set by a registering proxy; empty for endpoints that run no proxy,
	// which callers then reach directly.
	Inbound string `json:"inbound,omitempty"`
}

type WorkloadPort struct {
	Name string `json:"name,omitempty"`
	Port int32  `json:"port"`
}

// PolicyTargetRef names the object a policy attaches to. Only Service targets
// are supported today.
type PolicyTargetRef struct {
	Group string `json:"group,omitempty"`
	Kind  string `json:"kind"`
	Name  string `json:"name"`
}

// TrafficPolicy shapes how callers reach the targeted Service: load
// balancing, limits, retries, timeouts, outlier ejection, health checks and
// zone failover.
type TrafficPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TrafficPolicySpec `json:"spec"`
}

type TrafficPolicySpec struct {
	TargetRef        PolicyTargetRef   `json:"targetRef"`
	LoadBalancer     *LoadBalancer     `json:"loadBalancer,omitempty"`
	ConnectionPool   *ConnectionPool   `json:"connectionPool,omitempty"`
	Retry            *Retry            `json:"retry,omitempty"`
	Timeout          *metav1.Duration  `json:"timeout,omitempty"`
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	HealthCheck      *HealthCheck      `json:"healthCheck,omitempty"`
	ZoneAware        *ZoneAware        `json:"zoneAware,omitempty"`
}

// Load balancer types.
const (
	LBRoundRobin   = "RoundRobin"
	LBLeastRequest = "LeastRequest"
	LBRingHash     = "RingHash"
	LBRandom       = "Random"
)

type LoadBalancer struct {
	// Type is one of RoundRobin (default), LeastRequest, RingHash, Random.
	Type string `json:"type,omitempty"`
	// HashOn chooses the ring hash key; required with RingHash.
	HashOn *HashOn `json:"hashOn,omitempty"`
}

// HashOn names exactly one source of the ring hash key.
type HashOn struct {
	Header   string `json:"header,omitempty"`
	Cookie   string `json:"cookie,omitempty"`
	SourceIP bool   `json:"sourceIP,omitempty"`
}

// ConnectionPool holds the circuit breaker limits, per upstream service.
type ConnectionPool struct {
	MaxConnections     int32 `json:"maxConnections,omitempty"`
	MaxPendingRequests int32 `json:"maxPendingRequests,omitempty"`
	MaxRequests        int32 `json:"maxRequests,omitempty"`
}

type Retry struct {
	Attempts      int32            `json:"attempts,omitempty"`
	PerTryTimeout *metav1.Duration `json:"perTryTimeout,omitempty"`
	// RetryOn: 5xx, gateway-error, reset, connect-failure, retriable-status-codes.
	RetryOn              []string      `json:"retryOn,omitempty"`
	RetriableStatusCodes []int32       `json:"retriableStatusCodes,omitempty"`
	Backoff              *RetryBackoff `json:"backoff,omitempty"`
	Budget               *RetryBudget  `json:"budget,omitempty"`
	// MaxBufferedBody bounds how much of a request body is kept so that the
	// request can be replayed; larger bodies are streamed and not retried
	// once sent. Default 64 KiB.
	MaxBufferedBody int64 `json:"maxBufferedBody,omitempty"`
}

type RetryBackoff struct {
	BaseInterval *metav1.Duration `json:"baseInterval,omitempty"`
	MaxInterval  *metav1.Duration `json:"maxInterval,omitempty"`
}

// RetryBudget caps retries to a share of the requests in flight so that
// retries cannot multiply an outage.
type RetryBudget struct {
	// Percent of active requests that may be retries (default 20).
	Percent int32 `json:"percent,omitempty"`
	// MinRetryConcurrency always allowed regardless of Percent (default 3).
	MinRetryConcurrency int32 `json:"minRetryConcurrency,omitempty"`
}

type OutlierDetection struct {
	Consecutive5xx           int32            `json:"consecutive5xx,omitempty"`
	ConsecutiveGatewayErrors int32            `json:"consecutiveGatewayErrors,omitempty"`
	ConsecutiveConnectErrors int32            `json:"consecutiveConnectErrors,omitempty"`
	Interval                 *metav1.Duration `json:"interval,omitempty"`
	BaseEjectionTime         *metav1.Duration `json:"baseEjectionTime,omitempty"`
	MaxEjectionTime          *metav1.Duration `json:"maxEjectionTime,omitempty"`
	MaxEjectionPercent       *int32           `json:"maxEjectionPercent,omitempty"`
}

type HealthCheck struct {
	Path               string           `json:"path,omitempty"`
	Interval           *metav1.Duration `json:"interval,omitempty"`
	Timeout            *metav1.Duration `json:"timeout,omitempty"`
	HealthyThreshold   int32            `json:"healthyThreshold,omitempty"`
	UnhealthyThreshold int32            `json:"unhealthyThreshold,omitempty"`
	ExpectedStatuses   []int32          `json:"expectedStatuses,omitempty"`
}

type ZoneAware struct {
	Enabled bool `json:"enabled"`
	// MinHealthyPercent of the local zone's endpoints below which traffic
	// spills to other zones (default 70).
	MinHealthyPercent int32 `json:"minHealthyPercent,omitempty"`
}

// FaultInjection delays or aborts a share of requests. It is referenced from
// an HTTPRoute rule as an ExtensionRef filter
// {group: weft.dev, kind: FaultInjection, name: ...}.
type FaultInjection struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              FaultInjectionSpec `json:"spec"`
}

type FaultInjectionSpec struct {
	Delay *FaultDelay `json:"delay,omitempty"`
	Abort *FaultAbort `json:"abort,omitempty"`
}

type FaultDelay struct {
	FixedDelay metav1.Duration `json:"fixedDelay"`
	Percent    float64         `json:"percent"`
}

type FaultAbort struct {
	HTTPStatus int32   `json:"httpStatus,omitempty"`
	GRPCStatus *int32  `json:"grpcStatus,omitempty"`
	Percent    float64 `json:"percent"`
}
