package proxy

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/telemetry"
)

// The edge: what `weft gateway` (internal/gateway) uses of the engine. A
// gateway listener has a route table of its own rather than a service
// port's, but it is matched and forwarded exactly like one: the same rules
// and filters, retries, balancing, circuit breaking, and mTLS through the
// endpoints' sidecars. The gateway runs its own stages (TLS, JWT, rate
// limits, CORS, body limits) between the match (EdgeRoutes.Route) and the
// forward (ServeEdge).

// EdgeRoutes is the route table of one gateway listener. It names clusters
// of the config the proxy runs, so build it after Apply of that config.
type EdgeRoutes struct {
	sp *servicePort
	// retries by cluster: the gateway calls each backend with the retry
	// policy of the backend's Service.
	retries map[string]*compile.Retry
}

// NewEdgeRoutes builds the route table of listener of Gateway
// namespace/gateway. It fails as Apply does when a rule cannot be built.
func NewEdgeRoutes(namespace, gateway, listener string, routing *compile.HTTPRouting, retries map[string]*compile.Retry) (*EdgeRoutes, error) {
	if routing == nil {
		routing = &compile.HTTPRouting{}
	}
	sp := &servicePort{
		svc:  &compile.Service{Name: gateway, Namespace: namespace},
		port: &compile.ServicePort{Name: listener, Protocol: compile.ProtocolHTTP, HTTP: routing},
	}
	for i, r := range routing.Rules {
		cr, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("gateway %s/%s listener %s rule %d (%s): %w", namespace, gateway, listener, i, r.Route, err)
		}
		sp.rules = append(sp.rules, cr)
	}
	return &EdgeRoutes{sp: sp, retries: retries}, nil
}

// EdgeRule is the rule a request matched.
type EdgeRule struct{ r *rule }

// Rule is the compiled rule: its Route names the edge policy to apply.
func (ru *EdgeRule) Rule() *compile.HTTPRule { return ru.r.HTTPRule }

// Route returns the first rule that matches r, or nil.
func (e *EdgeRoutes) Route(r *http.Request) *EdgeRule {
	if ru := e.sp.route(r); ru != nil {
		return &EdgeRule{r: ru}
	}
	return nil
}

// WithTelemetry records the requests h serves (metrics, access log,
// trace) as the mesh's Handler does; the gateway wraps its listeners' HTTP
// handlers in it so that its own answers (401, 429) are recorded too.
func (p *Proxy) WithTelemetry(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if x := p.tel.Begin(w, r, telemetry.Client); x != nil {
			defer x.End()
			w = x
		}
		h.ServeHTTP(w, r)
	})
}

// Answer writes a response of the proxy's own with an x-weft-error reason,
// in gRPC terms for gRPC requests, as the engine's own answers are.
func Answer(w http.ResponseWriter, r *http.Request, status int, reason, msg string) {
	answer(w, r, status, reason, msg)
}

// ServeEdge forwards r per the rule it matched in e: the same path as a
// service port's request after its match (fault, redirect, backend pick,
// timeouts, mirrors, then the forwarder with retries).
func (p *Proxy) ServeEdge(w http.ResponseWriter, r *http.Request, e *EdgeRoutes, ru *EdgeRule) {
	x := telemetry.ExchangeOf(w)
	p.serveRule(w, r, e.sp, ru.r, func(cluster string) *compile.Retry { return e.retries[cluster] },
		func(b *compile.Backend) {
			// An edge route's parent is the Gateway: the destination
			// service is the picked backend's.
			if c := p.upstreams.Cluster(b.Cluster); c != nil {
				ns, name, _ := strings.Cut(c.Config().Service, "/")
				x.Service(name, ns)
			}
		})
}

// EdgeBackends are the weighted backends of an opaque (TCP or TLS
// passthrough) gateway route.
type EdgeBackends struct {
	route string
	w     *weighted
}

// NewEdgeBackends prepares backends of route for ServeEdgeTCP.
func NewEdgeBackends(route string, backends []*compile.Backend) *EdgeBackends {
	return &EdgeBackends{route: route, w: newWeighted(backends)}
}

// ServeEdgeTCP relays conn to an endpoint of one of eb's backends, as
// ServeTCP does for a service port, and closes conn when done.
func (p *Proxy) ServeEdgeTCP(conn net.Conn, eb *EdgeBackends) {
	defer conn.Close()
	tc := p.tel.BeginTCP(conn, telemetry.Client)
	defer tc.End()
	b := eb.w.pick()
	if b == nil {
		tc.Flag(ReasonInvalidRoute)
		return
	}
	c := p.upstreams.Cluster(b.Cluster)
	if c == nil {
		tc.Flag(ReasonNoHealthy)
		return
	}
	ns, name, _ := strings.Cut(c.Config().Service, "/")
	tc.Destination(name, ns, eb.route, b.Cluster)
	p.relayToCluster(conn, tc, c)
}
