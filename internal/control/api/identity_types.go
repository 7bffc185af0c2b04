package api

import "time"

// Wire types of the join token and CA calls (`weft token`, `weft ca`).
// Their handlers live with what they manage (internal/control/token,
// internal/control/ca) and mount on the API with Handle.

// TokenCreateRequest is POST /api/v1/tokens.
type TokenCreateRequest struct {
	Name           string `json:"name,omitempty"`
	TTL            string `json:"ttl,omitempty"` // Go duration; default 24h
	Namespace      string `json:"namespace,omitempty"`
	ServiceAccount string `json:"serviceAccount,omitempty"`
}

// TokenInfo describes a join token, never its secret.
type TokenInfo struct {
	Name           string     `json:"name"`
	Namespace      string     `json:"namespace,omitempty"`
	ServiceAccount string     `json:"serviceAccount,omitempty"`
	Created        *time.Time `json:"created,omitempty"`
	Expires        *time.Time `json:"expires,omitempty"`
	Revoked        *time.Time `json:"revoked,omitempty"`
	// State is active, expired or revoked.
	State string `json:"state"`
}

// TokenCreated answers POST /api/v1/tokens: the only time the token is
// shown.
type TokenCreated struct {
	TokenInfo
	Token string `json:"token"`
}

// TokenList answers GET /api/v1/tokens.
type TokenList struct {
	Items []TokenInfo `json:"items"`
}

// CARotateRequest is POST /api/v1/ca/rotate.
type CARotateRequest struct {
	// Overlap, when set (Go duration), ends the overlap on its own after
	// that long; otherwise it lasts until POST /api/v1/ca/drop-old.
	Overlap string `json:"overlap,omitempty"`
}

// CAStatus answers GET /api/v1/ca, rotate and drop-old.
type CAStatus struct {
	TrustDomain string `json:"trustDomain"`
	// Intermediate is set when the CA signs under the root of --ca-cert.
	Intermediate bool   `json:"intermediate,omitempty"`
	SVIDTTL      string `json:"svidTTL"`
	// Roots is the trust bundle, the signing root first.
	Roots     []CARoot   `json:"roots"`
	RotatedAt *time.Time `json:"rotatedAt,omitempty"`
	// DropAfter is when a rotation's overlap ends on its own.
	DropAfter *time.Time `json:"dropAfter,omitempty"`
}

// CARoot is one root of the trust bundle.
type CARoot struct {
	// SHA256 of the certificate (DER): what join tokens pin.
	SHA256   string    `json:"sha256"`
	Serial   string    `json:"serial"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"notAfter"`
	// Signing is set on the root new certificates chain to.
	Signing bool `json:"signing,omitempty"`
}
