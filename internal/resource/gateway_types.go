package resource

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Kinds of the edge: the Gateway API's Gateway, TLSRoute and ReferenceGrant,
// Kubernetes' TLS Secret, and weft's edge policies.
const (
	KindGateway               = "Gateway"
	KindTLSRoute              = "TLSRoute"
	KindReferenceGrant        = "ReferenceGrant"
	KindSecret                = "Secret"
	KindRequestAuthentication = "RequestAuthentication"
	KindRateLimitPolicy       = "RateLimitPolicy"
)

// GatewayGroup is the Gateway API's group, for targetRefs and parentRefs.
const GatewayGroup = gatewayGroup

// Annotations weft reads at the edge.
const (
	// AnnotationMaxRequestBody bounds request bodies (a Kubernetes
	// quantity: "1Mi", "65536") on a Gateway (every route) or an HTTPRoute
	// or GRPCRoute (overriding the Gateway's). Larger bodies get 413.
	AnnotationMaxRequestBody = Group + "/max-request-body"
)

// RequestAuthentication makes the gateway require a JSON Web Token on the
// requests of its target (a Gateway, or an HTTPRoute or GRPCRoute attached to
// one). A request passes when one of the jwtRules of the policies that apply
// to it accepts its token: signed with a key of the rule's JWKS, by its
// issuer, for one of its audiences, and not expired. Anything else gets 401
// with WWW-Authenticate.
type RequestAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RequestAuthenticationSpec `json:"spec"`
}

type RequestAuthenticationSpec struct {
	TargetRef PolicyTargetRef `json:"targetRef"`
	JWTRules  []JWTRule       `json:"jwtRules"`
	// AllowMissing lets requests without any token through (an invalid
	// token is still refused); the default refuses them.
	AllowMissing bool `json:"allowMissing,omitempty"`
}

// JWTRule trusts one issuer.
type JWTRule struct {
	Issuer string `json:"issuer"`
	// Audiences the token's aud must name one of; empty accepts any.
	Audiences []string `json:"audiences,omitempty"`
	// Exactly one of JWKS (the key set's JSON), JWKSFile and JWKSURI.
	JWKS     string `json:"jwks,omitempty"`
	JWKSFile string `json:"jwksFile,omitempty"`
	JWKSURI  string `json:"jwksURI,omitempty"`
	// CacheDuration is how long keys read from JWKSFile or JWKSURI are
	// used before being read again (default 5m).
	CacheDuration *metav1.Duration `json:"cacheDuration,omitempty"`
	// FromHeaders says where the token is; default Authorization with
	// prefix "Bearer ".
	FromHeaders []JWTHeader `json:"fromHeaders,omitempty"`
	// FromParams are query parameters that may carry the token.
	FromParams []string `json:"fromParams,omitempty"`
	// ClaimsToHeaders copies claims of an accepted token to request headers
	// for the backend; a client's own headers of those names are removed.
	ClaimsToHeaders []ClaimToHeader `json:"claimsToHeaders,omitempty"`
	// ForwardOriginalToken keeps the token on the forwarded request; by
	// default it is removed.
	ForwardOriginalToken bool `json:"forwardOriginalToken,omitempty"`
}

type JWTHeader struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix,omitempty"`
}

// ClaimToHeader copies a claim ("sub", or "a.b" for a nested one) to a
// header.
type ClaimToHeader struct {
	Claim  string `json:"claim"`
	Header string `json:"header"`
}

// RateLimitPolicy limits the requests of its target (a Gateway, or an
// HTTPRoute or GRPCRoute attached to one) with local token buckets. A
// request over a limit gets 429 with Retry-After.
type RateLimitPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RateLimitPolicySpec `json:"spec"`
}

type RateLimitPolicySpec struct {
	TargetRef PolicyTargetRef `json:"targetRef"`
	Limits    []RateLimit     `json:"limits"`
}

// Rate limit keys: what gets a bucket of its own.
const (
	RateLimitKeyClientAddress = "ClientAddress"
	RateLimitKeyHeader        = "Header"
	RateLimitKeyRoute         = "Route"
)

// RateLimit is one token bucket per key: Requests tokens per Period, at most
// Burst saved up.
type RateLimit struct {
	Requests int64           `json:"requests"`
	Period   metav1.Duration `json:"period"`
	// Burst is the bucket's size (default Requests).
	Burst int64 `json:"burst,omitempty"`
	// Key is ClientAddress, Header (the value of Header; requests without
	// it share one bucket) or Route (a bucket per route); empty is one
	// bucket for the whole target.
	Key    string `json:"key,omitempty"`
	Header string `json:"header,omitempty"`
	// MaxKeys bounds the buckets kept (default 10000); the least recently
	// used is dropped first.
	MaxKeys int32 `json:"maxKeys,omitempty"`
}
