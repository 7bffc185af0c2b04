// Package store keeps the control plane's resources: applied resources
// (durable) and registered workloads (ephemeral: they live as long as the
// proxy that registered them, plus a grace period). Backends: an embedded
// file database (bbolt) for one replica, etcd for several replicas sharing
// state. Every change bumps one store-wide revision, which is what proxies'
// config versions and watchers key on.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors callers can test for with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when an object's resourceVersion is stale:
	// someone else changed it since the caller read it.
	ErrConflict = errors.New("conflict: the object was changed since it was read")
)

// Object is a stored resource: its identity, its stored form and its
// version.
type Object struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Data is the resource as JSON, metadata included (resourceVersion is
	// filled in on read).
	Data []byte `json:"data"`
	// ResourceVersion is the store revision at which the object last
	// changed, as a decimal string (Kubernetes style).
	ResourceVersion string `json:"resourceVersion"`
	// Ephemeral is set on objects read back from Register: they live with
	// a lease, not in durable storage. A registration shadows an applied
	// object with the same key for as long as it lives.
	Ephemeral bool `json:"ephemeral,omitempty"`
}

// KeyError says which object an error is about; it wraps ErrConflict or
// ErrNotFound, so errors.Is keeps working.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

// Key is "Kind/namespace/name".
func (o *Object) Key() string { return o.Kind + "/" + o.Namespace + "/" + o.Name }

// Write is one object to put. ExpectVersion, when not empty, makes the
// write conditional on the stored object still having that version ("0"
// means it must not exist yet): optimistic concurrency.
type Write struct {
	Object        Object
	ExpectVersion string
}

// Store is implemented by each backend. All methods are safe for
// concurrent use.
type Store interface {
	// Put writes all objects atomically: all are stored or none is.
	// Returns the new revision.
	Put(ctx context.Context, writes []Write) (rev int64, err error)
	// Delete removes objects by key atomically; a missing key is
	// ErrNotFound and nothing is deleted.
	Delete(ctx context.Context, keys []string) (rev int64, err error)
	// Get returns one object or ErrNotFound.
	Get(ctx context.Context, kind, namespace, name string) (*Object, error)
	// List returns every object of a kind ("" for all kinds), sorted by key,
	// with the revision they were read at.
	List(ctx context.Context, kind string) ([]*Object, int64, error)
	// Register stores an ephemeral object (a proxy's Workload). It lives
	// until the returned lease is released plus grace, or until the lease
	// owner (this replica) dies and grace passes. Re-registering the same
	// key replaces it.
	Register(ctx context.Context, obj Object, grace time.Duration) (Lease, error)
	// Watch sends the store revision each time anything changes (durable or
	// ephemeral, through any replica). Sends are coalesced: a slow reader
	// gets the newest revision, never a backlog. Closed when ctx ends.
	Watch(ctx context.Context) <-chan int64
	// Close releases the backend.
	Close() error
}

// Lease keeps an ephemeral registration alive.
type Lease interface {
	// Release ends the registration after its grace period.
	Release()
}
