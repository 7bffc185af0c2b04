package control

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"weft.dev/weft/internal/control/store"
)

// Tokens live in the store, as the control plane's own kind, so every
// replica on a shared etcd accepts the same ones.
const (
	TokenKind      = "_Token"
	tokenNamespace = "_"
	AdminTokenName = "admin" // for the HTTP API and CLI
	JoinTokenName  = "join"  // for proxies joining the mesh
)

type tokenDoc struct {
	Token string `json:"token"`
}

// NewToken is 32 random bytes, base64url without padding.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// EnsureToken returns the named token, making it if the store has none.
// Replicas starting together agree: the first write wins (a conditional
// create) and the others read it.
func EnsureToken(ctx context.Context, st store.Store, name string) (token string, created bool, err error) {
	for attempt := 0; attempt < 3; attempt++ {
		o, err := st.Get(ctx, TokenKind, tokenNamespace, name)
		if err == nil {
			var doc tokenDoc
			if err := json.Unmarshal(o.Data, &doc); err != nil || doc.Token == "" {
				return "", false, fmt.Errorf("stored %s token is unreadable", name)
			}
			return doc.Token, false, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", false, fmt.Errorf("reading %s token: %w", name, err)
		}
		tok, err := NewToken()
		if err != nil {
			return "", false, err
		}
		data, _ := json.Marshal(tokenDoc{Token: tok})
		_, err = st.Put(ctx, []store.Write{{
			Object:        store.Object{Kind: TokenKind, Namespace: tokenNamespace, Name: name, Data: data},
			ExpectVersion: "0",
		}})
		if err == nil {
			return tok, true, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return "", false, fmt.Errorf("storing %s token: %w", name, err)
		}
		// Another replica made it first: read theirs.
	}
	return "", false, fmt.Errorf("%s token: the store kept changing", name)
}
