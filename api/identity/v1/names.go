package identityv1

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Hand-written parts of the identity protocol that both ends share.

// The control plane's own identity on the proxies' port:
// spiffe://<trust-domain>/ns/weft-system/sa/weft-control. No proxy may be
// issued an identity in ControlNamespace.
const (
	ControlNamespace      = "weft-system"
	ControlServiceAccount = "weft-control"
	ControlPath           = "/ns/" + ControlNamespace + "/sa/" + ControlServiceAccount
)

// JoinTokenPrefix starts every join token; the digit is the format's
// version.
const JoinTokenPrefix = "weft1"

// ErrMalformedToken is returned by ParseJoinToken.
var ErrMalformedToken = errors.New("malformed join token")

// FormatJoinToken makes a join token: weft1.<pin>.<secret>, where pin is
// the SHA-256 of the root CA certificate (DER), hex.
func FormatJoinToken(pin, secret string) string {
	return JoinTokenPrefix + "." + pin + "." + secret
}

// ParseJoinToken splits a join token into the pinned CA hash (32 bytes)
// and the secret. Surrounding white space is ignored.
func ParseJoinToken(tok string) (pin []byte, secret string, err error) {
	parts := strings.Split(strings.TrimSpace(tok), ".")
	if len(parts) != 3 || parts[0] != JoinTokenPrefix {
		return nil, "", fmt.Errorf("%w: want %s.<sha256 of the CA certificate>.<secret>", ErrMalformedToken, JoinTokenPrefix)
	}
	h, err := hex.DecodeString(parts[1])
	if err != nil || len(h) != sha256.Size {
		return nil, "", fmt.Errorf("%w: the CA hash is not 64 hex digits", ErrMalformedToken)
	}
	if parts[2] == "" {
		return nil, "", fmt.Errorf("%w: empty secret", ErrMalformedToken)
	}
	return h, parts[2], nil
}
