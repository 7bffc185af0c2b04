package gateway

import (
	"testing"

	"weft.dev/weft/internal/compile"
)

func TestListenerFor(t *testing.T) {
	mk := func(name, host, proto string) *listenerRT {
		return &listenerRT{cfg: &compile.Listener{Name: name, Hostname: host, Protocol: proto}}
	}
	pc := &portConfig{listeners: []*listenerRT{
		mk("any", "", "HTTPS"),
		mk("wide", "*.example.com", "HTTPS"),
		mk("narrow", "*.api.example.com", "HTTPS"),
		mk("exact", "www.example.com", "HTTPS"),
		mk("tls", "db.example.com", "TLS"),
	}}
	for host, want := range map[string]string{
		"www.example.com":    "exact",
		"WWW.Example.com.":   "exact",
		"v1.api.example.com": "narrow",
		"shop.example.com":   "wide",
		"a.b.example.com":    "wide",
		"example.com":        "any",
		"other.org":          "any",
		"db.example.com":     "tls",
	} {
		if l := pc.listenerFor(host); l == nil || l.cfg.Name != want {
			t.Errorf("listenerFor(%q) = %v, want %s", host, l, want)
		}
	}
	if l := pc.listenerFor("db.example.com", "HTTPS"); l == nil || l.cfg.Name != "wide" {
		t.Errorf("HTTPS only: db.example.com went to %v, want wide", l)
	}
}

func TestOriginAllowed(t *testing.T) {
	allow := []string{"https://app.example.com", "https://*.partner.test", "http://localhost:3000"}
	for origin, want := range map[string]bool{
		"https://app.example.com":     true,
		"https://app.example.com:443": true,
		"http://app.example.com":      false,
		"https://eu.partner.test":     true,
		"https://a.b.partner.test":    true,
		"https://partner.test":        false,
		"http://localhost:3000":       true,
		"http://localhost:3001":       false,
		"null":                        false,
	} {
		if got, _ := originAllowed(allow, origin); got != want {
			t.Errorf("originAllowed(%q) = %v, want %v", origin, got, want)
		}
	}
	if ok, wildcard := originAllowed([]string{"*"}, "https://x.test"); !ok || !wildcard {
		t.Error(`"*" does not allow every origin`)
	}
}
