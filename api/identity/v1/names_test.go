package identityv1

import (
	"strings"
	"testing"
)

// FuzzParseJoinToken: the control plane parses tokens from anyone who
// connects. Whatever it accepts has the shape it promises and formats back
// to the same token.
func FuzzParseJoinToken(f *testing.F) {
	f.Add(FormatJoinToken(strings.Repeat("0a", 32), "s3cr3t"))
	f.Add("weft1..")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, tok string) {
		pin, secret, err := ParseJoinToken(tok)
		if err != nil {
			return
		}
		if len(pin) != 32 || secret == "" || strings.Contains(secret, ".") {
			t.Fatalf("accepted %q as pin %x secret %q", tok, pin, secret)
		}
		const hexd = "0123456789abcdef"
		var h strings.Builder
		for _, b := range pin {
			h.WriteByte(hexd[b>>4])
			h.WriteByte(hexd[b&15])
		}
		if got := FormatJoinToken(h.String(), secret); !strings.EqualFold(got, strings.TrimSpace(tok)) {
			t.Fatalf("round trip %q -> %q", tok, got)
		}
	})
}
