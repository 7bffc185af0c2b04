package gateway

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"weft.dev/weft/internal/compile"
)

// applyCORS implements the Gateway API CORS filter. A preflight (OPTIONS
// with Access-Control-Request-Method) is answered here, 204, with the CORS
// headers when the origin is allowed and without them when it is not; it
// returns true then. For other requests from an allowed origin it adds the
// response headers and returns false: the request goes on.
func applyCORS(w http.ResponseWriter, r *http.Request, c *compile.CORS) bool {
	origin := r.Header.Get("Origin")
	preflight := r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != ""
	h := w.Header()
	if origin == "" {
		return false
	}
	h.Add("Vary", "Origin")
	allowed, wildcard := originAllowed(c.AllowOrigins, origin)
	if !allowed {
		if preflight {
			w.WriteHeader(http.StatusNoContent)
			return true
		}
		return false
	}
	if wildcard && !c.AllowCredentials {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if !preflight {
		if len(c.ExposeHeaders) > 0 {
			h.Set("Access-Control-Expose-Headers", strings.Join(c.ExposeHeaders, ", "))
		}
		return false
	}
	reqMethod := r.Header.Get("Access-Control-Request-Method")
	methods := c.AllowMethods
	if containsString(methods, "*") {
		methods = []string{reqMethod}
	}
	if len(methods) > 0 {
		h.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
	}
	headers := c.AllowHeaders
	if containsString(headers, "*") {
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			headers = []string{req}
		} else {
			headers = nil
		}
	}
	if len(headers) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(headers, ", "))
	}
	h.Set("Access-Control-Max-Age", strconv.Itoa(c.MaxAge))
	w.WriteHeader(http.StatusNoContent)
	return true
}

// originAllowed matches an Origin against allowOrigins: "*", an exact
// origin (default ports filled in), or a host pattern with "*" standing for
// any labels to its left. wildcard reports a match by "*" alone.
func originAllowed(allow []string, origin string) (bool, bool) {
	o, ok := parseOrigin(origin)
	if !ok {
		return false, false
	}
	for _, a := range allow {
		if a == "*" {
			return true, true
		}
		p, ok := parseOrigin(a)
		if !ok || p.scheme != o.scheme || p.port != o.port {
			continue
		}
		if p.host == o.host {
			return true, false
		}
		if strings.HasPrefix(p.host, "*") && strings.HasSuffix(o.host, p.host[1:]) {
			return true, false
		}
	}
	return false, false
}

type origin struct{ scheme, host, port string }

func parseOrigin(s string) (origin, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return origin{}, false
	}
	o := origin{scheme: u.Scheme, host: strings.ToLower(u.Hostname()), port: u.Port()}
	if o.port == "" {
		o.port = map[string]string{"http": "80", "https": "443"}[o.scheme]
	}
	return o, true
}
