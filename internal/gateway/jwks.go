package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// jwksSource holds a key set: inline, or read from a file or URL and kept
// for the cache duration. A failed refresh keeps the keys it had; refreshes
// are at most one per minRefresh, so a flood of tokens with unknown key ids
// cannot turn into a flood of fetches.
type jwksSource struct {
	file, uri string
	ttl       time.Duration
	client    *http.Client

	mu      sync.Mutex
	set     *jose.JSONWebKeySet
	fetched time.Time // of set
	tried   time.Time // last attempt, successful or not
	err     error
}

const (
	minRefresh   = 5 * time.Second
	maxJWKSBytes = 1 << 20
)

func newInlineJWKS(data string) (*jwksSource, error) {
	set, err := parseJWKS([]byte(data))
	if err != nil {
		return nil, err
	}
	return &jwksSource{set: set, fetched: time.Now()}, nil
}

// get returns the keys, refreshing them when they are older than the cache
// duration or when refresh asks for it (an unknown key id).
func (s *jwksSource) get(ctx context.Context, refresh bool) (*jose.JSONWebKeySet, error) {
	if s.file == "" && s.uri == "" {
		return s.set, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	stale := s.set == nil || now.Sub(s.fetched) >= s.ttl || refresh
	if stale && now.Sub(s.tried) >= minRefresh || s.set == nil && s.tried.IsZero() {
		s.tried = now
		set, err := s.load(ctx)
		if err == nil {
			s.set, s.fetched, s.err = set, now, nil
		} else {
			s.err = err
		}
	}
	if s.set == nil {
		return nil, s.err
	}
	return s.set, nil
}

func (s *jwksSource) load(ctx context.Context) (*jose.JSONWebKeySet, error) {
	var data []byte
	var err error
	if s.file != "" {
		data, err = os.ReadFile(s.file)
		if err != nil {
			return nil, fmt.Errorf("jwks file: %w", err)
		}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.uri, nil)
		if err != nil {
			return nil, err
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("jwks %s: %w", s.uri, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("jwks %s: status %d", s.uri, resp.StatusCode)
		}
		if data, err = io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes)); err != nil {
			return nil, fmt.Errorf("jwks %s: %w", s.uri, err)
		}
	}
	return parseJWKS(data)
}

func parseJWKS(data []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("the key set has no keys")
	}
	return &set, nil
}
