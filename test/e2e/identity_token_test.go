package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/control/token"
)

// Join tokens: made with weft token create, listed without their
// secrets, refused with a reason when expired, out of scope, revoked,
// malformed, or pinned to another CA; never in logs, dumps or weft get.
func TestIdentityJoinTokens(t *testing.T) {
	t.Parallel()
	cp := StartControl(t, ControlOptions{})
	cp.MustCLI("apply", "-f", writeControlFile(t, "mesh.yaml", identityServices))

	create := func(args ...string) string {
		t.Helper()
		r := cp.CLI(append([]string{"token", "create"}, args...)...)
		if r.Code != 0 {
			t.Fatalf("weft token create: %s", r)
		}
		tok := strings.TrimSpace(r.Stdout)
		if _, _, err := token.Parse(tok); err != nil {
			t.Fatalf("weft token create printed %q: %v", tok, err)
		}
		return tok
	}
	short := create("--ttl", "1s", "--name", "short")
	scoped := create("--namespace", "shop", "--service-account", "web", "--name", "shop-web")
	gone := create("--name", "gone")
	if out := cp.MustCLI("token", "revoke", "gone"); !strings.Contains(out, `"gone" revoked`) {
		t.Fatalf("weft token revoke: %s", out)
	}
	plain := create() // default ttl 24h, no scope, generated name
	time.Sleep(1100 * time.Millisecond)

	t.Run("expired", func(t *testing.T) {
		startTokenProxy(t, cp, short, "exp").refusedWith(t, `PermissionDenied): join token expired: token "short" expired at`)
	})
	t.Run("wrong scope", func(t *testing.T) {
		startTokenProxy(t, cp, scoped, "fake", "--namespace", "shop", "--service-account", "admin").
			refusedWith(t, `token "shop-web" is for service account "web", not "admin"`)
		startTokenProxy(t, cp, scoped, "fake2", "--namespace", "bank", "--service-account", "web").
			refusedWith(t, `token "shop-web" is for namespace "shop", not "bank"`)
	})
	t.Run("revoked", func(t *testing.T) {
		startTokenProxy(t, cp, gone, "late").refusedWith(t, `join token revoked: token "gone" was revoked at`)
	})
	t.Run("unknown", func(t *testing.T) {
		pin, _, _ := token.Parse(plain)
		forged := token.Format(hexOf(pin), "not-a-secret-of-this-control-plane")
		startTokenProxy(t, cp, forged, "forged").refusedWith(t, "Unauthenticated): unknown join token")
	})
	t.Run("garbage", func(t *testing.T) {
		startTokenProxy(t, cp, "garbage", "junk").refusedWith(t, "--token: malformed join token")
	})
	t.Run("pinned to another CA", func(t *testing.T) {
		_, secret, _ := token.Parse(plain)
		other := token.Format(strings.Repeat("ab", 32), secret)
		p := startTokenProxy(t, cp, other, "mitm")
		eventually(t, 10*time.Second, func() string {
			if !strings.Contains(p.out.String(), "does not come with the CA pinned in the join token") {
				return "no pin refusal in the proxy's log yet"
			}
			return ""
		})
		// It never sent the token, so the control plane never saw it.
		if strings.Contains(cp.Stderr.String(), "mitm") {
			t.Errorf("the control plane heard of the proxy:\n%s", cp.Stderr.String())
		}
		if code, _ := adminGetAddr(t, p.admin, "/ready"); code == 200 {
			t.Error("a proxy without identity says it is ready")
		}
	})
	t.Run("in scope", func(t *testing.T) {
		p := startTokenProxy(t, cp, scoped, "web-1", "--namespace", "shop", "--service-account", "web")
		eventually(t, 15*time.Second, func() string {
			if code, _ := adminGetAddr(t, p.admin, "/ready"); code != 200 {
				return "not ready"
			}
			return ""
		})
		if !strings.Contains(p.out.String(), "id=spiffe://weft.local/ns/shop/sa/web") {
			t.Errorf("proxy log does not name its identity:\n%s", p.out.String())
		}
		// Secrets appear nowhere: config dump, logs, weft get, token list.
		_, dump := adminGetAddr(t, p.admin, "/config")
		everything := dump + p.out.String() + cp.Stderr.String() +
			cp.MustCLI("get", "all", "-o", "yaml") + cp.MustCLI("token", "list", "-o", "json") + cp.MustCLI("status", "-o", "json")
		for _, tok := range []string{short, scoped, gone, plain, cp.JoinToken(), cp.ClientConfig().Token} {
			_, secret, _ := token.Parse(tok)
			if secret == "" {
				secret = tok
			}
			if strings.Contains(everything, secret) {
				t.Errorf("a token secret is visible (%s...)", secret[:6])
			}
		}
		if strings.Contains(everything, "PRIVATE KEY") {
			t.Error("a private key is visible")
		}
	})

	var list api.TokenList
	if err := json.Unmarshal([]byte(cp.MustCLI("token", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, it := range list.Items {
		states[it.Name] = it.State
	}
	for name, want := range map[string]string{"join": "active", "short": "expired", "gone": "revoked", "shop-web": "active"} {
		if states[name] != want {
			t.Errorf("token %s is %q, want %q (all: %v)", name, states[name], want, states)
		}
	}
	if len(states) != 5 {
		t.Errorf("tokens listed: %v", states)
	}
	if out := cp.MustCLI("token", "list"); !strings.Contains(out, "ns/shop/sa/web") {
		t.Errorf("weft token list:\n%s", out)
	}
	if r := cp.CLI("token", "revoke", "nope"); r.Code == 0 || !strings.Contains(r.Stderr, "no join token named nope") {
		t.Errorf("revoke of an unknown token: %s", r)
	}
	// Without the admin token: 401.
	if code, _ := cp.APICall("GET", "/api/v1/tokens", "", ""); code != 401 {
		t.Errorf("token list without the admin token: %d", code)
	}
	if code, _ := cp.APICall("POST", "/api/v1/ca/rotate", "wrong", ""); code != 401 {
		t.Errorf("ca rotate with a wrong admin token: %d", code)
	}
}

func hexOf(b []byte) string {
	const h = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, h[c>>4], h[c&15])
	}
	return string(out)
}

func adminGetAddr(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
