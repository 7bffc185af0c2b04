package api

import (
	"encoding/json"
	"time"
)

// The JSON the API speaks. The CLI (internal/cli) decodes the same types.

// Detail is one problem with the input: where, which field, why.
type Detail struct {
	File      string `json:"file,omitempty"`
	Document  int    `json:"document,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Field     string `json:"field,omitempty"`
	Reason    string `json:"reason"`
}

// ErrorBody is every non-2xx answer.
type ErrorBody struct {
	Error   string   `json:"error"`
	Details []Detail `json:"details,omitempty"`
	// Results is set when part of a request was carried out (delete -f
	// with some objects missing).
	Results []Result `json:"results,omitempty"`
}

// Actions in a Result.
const (
	ActionCreated    = "created"
	ActionConfigured = "configured"
	ActionUnchanged  = "unchanged"
	ActionDeleted    = "deleted"
	ActionNotFound   = "not found"
)

// Result is what apply or delete did to one object.
type Result struct {
	Kind            string `json:"kind"`
	Namespace       string `json:"namespace"`
	Name            string `json:"name"`
	Action          string `json:"action"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// Object is the stored resource after an apply, resourceVersion
	// included.
	Object json.RawMessage `json:"object,omitempty"`
}

// ApplyResponse answers POST /api/v1/apply and the delete calls.
type ApplyResponse struct {
	Results []Result `json:"results"`
	// Revision is the store revision after the request.
	Revision int64 `json:"revision"`
}

// Item is one stored resource.
type Item struct {
	Kind            string `json:"kind"`
	Namespace       string `json:"namespace"`
	Name            string `json:"name"`
	ResourceVersion string `json:"resourceVersion"`
	// Registered is set on Workloads that a proxy registered: they live
	// as long as the proxy's stream (plus a grace period), not in the
	// store.
	Registered bool `json:"registered,omitempty"`
	// Object is the resource as stored (JSON), metadata.resourceVersion
	// and metadata.creationTimestamp included.
	Object json.RawMessage `json:"object"`
}

// ListResponse answers GET /api/v1/resources[/{kind}].
type ListResponse struct {
	Items    []Item `json:"items"`
	Revision int64  `json:"revision"`
}

// ProxyStatus is one connected proxy, as `weft status` shows it. Its JSON
// matches the push server's own status type.
type ProxyStatus struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Replica is the control plane replica the proxy is connected to.
	Replica        string    `json:"replica"`
	Address        string    `json:"address,omitempty"`
	Peer           string    `json:"peer,omitempty"`
	ConnectedSince time.Time `json:"connectedSince"`
	Dependencies   []string  `json:"dependencies,omitempty"`
	Learned        []string  `json:"learned,omitempty"`
	Services       int       `json:"services"`
	// The last config version sent, the store revision it was computed
	// from, and the last version the proxy applied.
	VersionSent  string    `json:"versionSent,omitempty"`
	Revision     int64     `json:"revision,omitempty"`
	SentAt       time.Time `json:"sentAt,omitzero"`
	VersionAcked string    `json:"versionAcked,omitempty"`
	AckedAt      time.Time `json:"ackedAt,omitzero"`
	// The last version the proxy refused, and why; it keeps serving its
	// last good config.
	NackVersion string    `json:"nackVersion,omitempty"`
	NackError   string    `json:"nackError,omitempty"`
	NackedAt    time.Time `json:"nackedAt,omitzero"`
}

// StatusResponse answers GET /api/v1/status.
type StatusResponse struct {
	// Store is the backend: "bolt" or "etcd".
	Store    string        `json:"store"`
	Revision int64         `json:"revision"`
	Proxies  []ProxyStatus `json:"proxies"`
	// ProxiesError is set when the proxy list may be incomplete (another
	// replica's status could not be read).
	ProxiesError string `json:"proxiesError,omitempty"`
}
