package compile

// Gateway is everything one `weft gateway` needs: the listeners of its
// Gateway resource with the routes attached to each, the edge policies of
// those routes, the clusters they reach, and the status of every route that
// names the Gateway. It is immutable once built.
//
// Certificates hold private keys: never dump a Gateway as it is; Redacted
// gives a copy without them.
type Gateway struct {
	Version   string      `json:"version"`
	Name      string      `json:"name"`
	Namespace string      `json:"namespace"`
	Listeners []*Listener `json:"listeners"`
	// Certificates by Secret "namespace/name".
	Certificates map[string]*Certificate `json:"certificates,omitempty"`
	// Clusters are the backends of every route, as in Config.
	Clusters map[string]*Cluster `json:"clusters"`
	// Retries by cluster: the retry policy of the TrafficPolicy of the
	// cluster's Service. The gateway calls each backend as a sidecar would
	// call that Service.
	Retries map[string]*Retry `json:"retries,omitempty"`
	// JWTProviders by "namespace/policy/index" and RateLimits by bucket,
	// named by the rules' EdgePolicy.
	JWTProviders map[string]*JWTProvider `json:"jwtProviders,omitempty"`
	RateLimits   map[string]*RateLimit   `json:"rateLimits,omitempty"`
	Status       *GatewayStatus          `json:"status"`
}

// Listener protocols (Gateway API ProtocolType).
const (
	ListenerHTTP  = "HTTP"
	ListenerHTTPS = "HTTPS"
	ListenerTLS   = "TLS"
	ListenerTCP   = "TCP"
)

// TLS modes of HTTPS and TLS listeners.
const (
	TLSTerminate   = "Terminate"
	TLSPassthrough = "Passthrough"
)

// Listener is one served listener of the Gateway. Listeners that are not
// programmed (conflicts, no usable certificate) are left out; their status
// says why.
type Listener struct {
	Name     string `json:"name"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol"`
	// Hostname the listener answers for ("" any; "*.example.com" a
	// wildcard): the request's Host (HTTP) or the TLS SNI.
	Hostname string `json:"hostname,omitempty"`
	TLSMode  string `json:"tlsMode,omitempty"`
	// Certificates are keys of Gateway.Certificates, in certificateRefs
	// order; the first is served when the SNI matches none.
	Certificates []string `json:"certificates,omitempty"`
	// HTTP routes HTTP and HTTPS listeners: HTTPRoute and GRPCRoute rules
	// with their hostnames intersected with the listener's, ordered by
	// hostname then Gateway API precedence. Retry is nil: Gateway.Retries
	// holds it per backend.
	HTTP *HTTPRouting `json:"http,omitempty"`
	// Edge holds the edge policies of HTTP rules, by HTTPRule.Route.
	Edge map[string]*EdgePolicy `json:"edge,omitempty"`
	// TLS routes TLS listeners by SNI (TLSRoutes).
	TLS []*TLSRule `json:"tls,omitempty"`
	// TCP routes TCP listeners (the oldest attached TCPRoute).
	TCP *TCPRouting `json:"tcp,omitempty"`
}

// TLSRule sends connections whose SNI matches Hostnames (any when empty) to
// Backends.
type TLSRule struct {
	Route     string     `json:"route"`
	Hostnames []string   `json:"hostnames,omitempty"`
	Backends  []*Backend `json:"backends"`
}

// Certificate is a TLS Secret's chain and key, PEM.
type Certificate struct {
	Secret string `json:"secret"`
	Cert   []byte `json:"cert,omitempty"`
	Key    []byte `json:"key,omitempty"`
	// Redacted marks a copy made by Gateway.Redacted.
	Redacted bool `json:"redacted,omitempty"`
}

// EdgePolicy is what the gateway checks and adds before forwarding a
// request that one rule matched.
type EdgePolicy struct {
	// JWT: a request needs a token that one of these providers accepts
	// (the jwtRules of every RequestAuthentication on the route or its
	// Gateway); keys of Gateway.JWTProviders.
	JWT []string `json:"jwt,omitempty"`
	// AllowMissingToken lets requests without a token through when every
	// applying RequestAuthentication allows it.
	AllowMissingToken bool `json:"allowMissingToken,omitempty"`
	// RateLimits are keys of Gateway.RateLimits; a request takes a token
	// from each.
	RateLimits []string `json:"rateLimits,omitempty"`
	CORS       *CORS    `json:"cors,omitempty"`
	// MaxRequestBody bounds the request body in bytes; 0 is no limit.
	MaxRequestBody int64 `json:"maxRequestBody,omitempty"`
}

// JWTProvider is one trusted issuer (a RequestAuthentication jwtRule).
type JWTProvider struct {
	Issuer    string   `json:"issuer"`
	Audiences []string `json:"audiences,omitempty"`
	// One of JWKS (inline JSON), JWKSFile and JWKSURI.
	JWKS                 string          `json:"jwks,omitempty"`
	JWKSFile             string          `json:"jwksFile,omitempty"`
	JWKSURI              string          `json:"jwksURI,omitempty"`
	CacheDuration        Duration        `json:"cacheDuration"`
	FromHeaders          []JWTHeader     `json:"fromHeaders"`
	FromParams           []string        `json:"fromParams,omitempty"`
	ClaimsToHeaders      []ClaimToHeader `json:"claimsToHeaders,omitempty"`
	ForwardOriginalToken bool            `json:"forwardOriginalToken,omitempty"`
}

type JWTHeader struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix,omitempty"`
}

type ClaimToHeader struct {
	Claim  string `json:"claim"`
	Header string `json:"header"`
}

// RateLimit is one token bucket per key.
// Requests of every rule the policy covers draw from the same buckets.
type RateLimit struct {
	Requests int64    `json:"requests"`
	Period   Duration `json:"period"`
	Burst    int64    `json:"burst"`
	// Key: ClientAddress, Header, Route, or "" (one bucket).
	Key     string `json:"key,omitempty"`
	Header  string `json:"header,omitempty"`
	MaxKeys int    `json:"maxKeys"`
}

// CORS is a rule's Gateway API CORS filter.
type CORS struct {
	AllowOrigins     []string `json:"allowOrigins,omitempty"`
	AllowMethods     []string `json:"allowMethods,omitempty"`
	AllowHeaders     []string `json:"allowHeaders,omitempty"`
	ExposeHeaders    []string `json:"exposeHeaders,omitempty"`
	AllowCredentials bool     `json:"allowCredentials,omitempty"`
	MaxAge           int      `json:"maxAge"`
}

// GatewayStatus is the Gateway API status the gateway computes: of the
// Gateway, its listeners, and every route that names it as a parent. The
// control plane writes it back; the gateway's admin serves it at /status.
type GatewayStatus struct {
	Conditions []Condition       `json:"conditions"`
	Listeners  []*ListenerStatus `json:"listeners"`
	Routes     []*RouteStatus    `json:"routes"`
}

// Condition is a Gateway API condition (metav1.Condition without times).
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"` // "True" or "False"
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

type ListenerStatus struct {
	Name           string      `json:"name"`
	SupportedKinds []string    `json:"supportedKinds"`
	AttachedRoutes int         `json:"attachedRoutes"`
	Conditions     []Condition `json:"conditions"`
}

// RouteStatus is one route's status toward this Gateway, one entry per
// parentRef that names it.
type RouteStatus struct {
	Kind      string               `json:"kind"`
	Namespace string               `json:"namespace"`
	Name      string               `json:"name"`
	Parents   []*RouteParentStatus `json:"parents"`
}

type RouteParentStatus struct {
	ParentRef  ParentRef   `json:"parentRef"`
	Conditions []Condition `json:"conditions"`
}

type ParentRef struct {
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	SectionName string `json:"sectionName,omitempty"`
	Port        int32  `json:"port,omitempty"`
}

// Redacted returns a copy of g whose certificates carry no key and no
// chain, only the Secret they came from: for dumps and logs.
func (g *Gateway) Redacted() *Gateway {
	if g == nil {
		return nil
	}
	cp := *g
	cp.Certificates = make(map[string]*Certificate, len(g.Certificates))
	for k, c := range g.Certificates {
		cp.Certificates[k] = &Certificate{Secret: c.Secret, Redacted: true}
	}
	return &cp
}
