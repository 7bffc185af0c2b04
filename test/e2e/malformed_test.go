package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestMalformedRequests sends broken HTTP to the forward proxy: each gets a
// 4xx, and the proxy stays up. (A request shorter than 14 bytes is left out:
// net/http, serving h2c too, waits for 14 bytes to rule out the h2 preface,
// so such a request is only answered at the read-header timeout.)
func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	a := NewHTTPBackend(t, "a")
	p := StartProxy(t, serviceWith(t, "web", 80, "http", a), ProxyOptions{})

	for name, raw := range map[string]string{
		"garbage request line":      "GARBAGE-GARBAGE-GARBAGE\r\n\r\n",
		"bad method token":          "G(T http://web:80/ HTTP/1.1\r\nHost: web\r\n\r\n",
		"header without colon":      "GET http://web:80/ HTTP/1.1\r\nHost: web\r\nBroken header line\r\n\r\n",
		"space before colon":        "GET http://web:80/ HTTP/1.1\r\nHost: web\r\nX-Bad : v\r\n\r\n",
		"NUL in header value":       "GET http://web:80/ HTTP/1.1\r\nHost: web\r\nX-Bad: a\x00b\r\n\r\n",
		"missing Host":              "GET /path HTTP/1.1\r\n\r\n",
		"two Content-Lengths":       "POST http://web:80/ HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"negative Content-Length":   "POST http://web:80/ HTTP/1.1\r\nHost: web\r\nContent-Length: -1\r\n\r\n",
		"unknown Transfer-Encoding": "POST http://web:80/ HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: bogus\r\n\r\nabc",
		"CONNECT without port":      "CONNECT web HTTP/1.1\r\nHost: web\r\n\r\n",
		"header too large":          "GET http://web:80/ HTTP/1.1\r\nHost: web\r\nX-Big: " + strings.Repeat("x", 2<<20) + "\r\n\r\n",
	} {
		status, resp := rawRequest(t, p.Outbound, raw)
		if name == "unknown Transfer-Encoding" && status == http.StatusNotImplemented {
			continue // RFC 9112 §6.1: SHOULD answer 501
		}
		if status < 400 || status > 499 {
			t.Errorf("%s: want 4xx, got %d %q", name, status, resp)
		}
	}
	if p.Exited() {
		t.Fatal("proxy exited")
	}
	if r := mustOK(t, proxyClient(t, p), "http://web:80/still-up"); r.Backend() != "a" {
		t.Errorf("after malformed requests: %s", r)
	}
	if a.Requests.Load() != 1 {
		t.Errorf("backend saw %d requests; malformed ones must not be forwarded", a.Requests.Load())
	}
}
