package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/control/token"
	"weft.dev/weft/internal/identity"
)

// Certificates that live four seconds are renewed every two, under steady
// traffic, without one failed request; so is a root rotation and the end
// of its overlap.
func TestIdentityRotationUnderTraffic(t *testing.T) {
	t.Parallel()
	cp := StartControl(t, ControlOptions{Args: []string{"--svid-ttl", "4s"}})
	m := startIDMesh(t, cp)
	// No retries: a failed connection would fail its request.
	tr := startTraffic(t, m.clientHTTP, "http://reviews:9080/steady", 4)

	renewals := func(p *Proxy) int { return strings.Count(p.Stderr.String(), "identity renewed") }
	eventually(t, 20*time.Second, func() string {
		if s, c := renewals(m.server), renewals(m.client); s < 4 || c < 4 {
			return "renewals so far: server " + itoa(s) + ", client " + itoa(c)
		}
		return ""
	})

	// A root rotation: every proxy gets the two-root bundle and renews
	// onto the new root; then the old root is dropped.
	before := strings.Fields(cp.MustCLI("ca", "show"))
	cp.MustCLI("ca", "rotate")
	eventually(t, 15*time.Second, func() string {
		for _, p := range []*Proxy{m.server, m.client} {
			if !strings.Contains(p.Stderr.String(), "renewing onto it") {
				return "a proxy did not see the new signing root"
			}
		}
		return ""
	})
	time.Sleep(3 * time.Second) // a renewal or two onto the new root
	out := cp.MustCLI("ca", "drop-old")
	if !strings.Contains(out, "older roots dropped") {
		t.Fatalf("weft ca drop-old: %s", out)
	}
	eventually(t, 10*time.Second, func() string {
		if n := strings.Count(cp.MustCLI("ca", "show"), "\n"); n != 3 {
			return "roots still listed:\n" + cp.MustCLI("ca", "show")
		}
		return ""
	})
	mark := renewals(m.server) + renewals(m.client)
	eventually(t, 10*time.Second, func() string {
		if renewals(m.server)+renewals(m.client) < mark+4 {
			return "no renewals after drop-old"
		}
		return ""
	})
	tr.finish(t, "traffic across SVID renewals and a root rotation")
	if after := strings.Fields(cp.MustCLI("ca", "show")); len(before) > 0 && strings.Join(after, " ") == strings.Join(before, " ") {
		t.Error("the root did not change")
	}
	// The join token file now pins the new root, and what the reviews
	// sidecar serves on a new connection chains to the new root alone.
	var ca api.CAStatus
	if err := json.Unmarshal([]byte(cp.MustCLI("ca", "show", "-o", "json")), &ca); err != nil || len(ca.Roots) != 1 {
		t.Fatalf("weft ca show -o json: %+v %v", ca, err)
	}
	pin, _, err := token.Parse(cp.JoinToken())
	if err != nil || hexOf(pin) != ca.Roots[0].SHA256 {
		t.Fatalf("join.token pins %x, the signing root is %s (%v)", pin, ca.Roots[0].SHA256, err)
	}
	own := ownIdentity(t, cp, cp.JoinToken(), "default", "tester")
	cert := tlsCert(t, own)
	served, err := dialInbound(t, m.inbound, &cert)
	if err != nil {
		t.Fatalf("mTLS to the inbound after the rotation: %v", err)
	}
	roots, _ := identity.ParseCertificates([]byte(cp.MustCLI("ca", "bundle")))
	if _, _, err := x509svid.Verify(served, x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString("weft.local"), roots)); err != nil {
		t.Fatalf("the sidecar's SVID after the rotation: %v", err)
	}
	// A plaintext request is still refused: rotation kept STRICT.
	if b := plaintextToInbound(t, m.inbound, m.app.Addr, "/plain"); b != "" {
		t.Fatalf("plaintext got an answer: %q", b)
	}
}

func itoa(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}
