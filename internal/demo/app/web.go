package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// web renders the storefront: the catalog, each product's review, and the
// live cart size.
type web struct {
	client *http.Client
	ws     *websocket.Dialer
}

func newWeb() *web {
	// Both follow HTTP_PROXY: plain HTTP as absolute-form requests, the
	// WebSocket through CONNECT.
	return &web{
		client: &http.Client{Timeout: 5 * time.Second},
		ws:     &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 5 * time.Second},
	}
}

type review struct {
	Version string `json:"version"`
	Text    string `json:"text"`
	Stars   int32  `json:"stars,omitempty"`
}

type page struct {
	Products []productView `json:"products"`
	Cart     *cartView     `json:"cart,omitempty"`
	Errors   []string      `json:"errors,omitempty"`
}

type productView struct {
	Product
	Review *review `json:"review,omitempty"`
}

type cartView struct {
	Items int `json:"items"`
}

func (s *web) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	var ps []Product
	if err := s.getJSON(r, "http://catalog:9080/products", &ps); err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "catalog: " + err.Error()})
		return
	}
	out := page{Products: make([]productView, len(ps))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, p := range ps {
		out.Products[i].Product = p
		wg.Add(1)
		go func(i int, id string) {
			defer wg.Done()
			var rv review
			if err := s.getJSON(r, "http://reviews:9080/reviews/"+id, &rv); err != nil {
				mu.Lock()
				out.Errors = append(out.Errors, "reviews: "+err.Error())
				mu.Unlock()
				return
			}
			out.Products[i].Review = &rv
		}(i, p.ID)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, err := s.cartItems(r)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			out.Errors = append(out.Errors, "cart: "+err.Error())
			return
		}
		out.Cart = &cartView{Items: n}
	}()
	wg.Wait()
	status := http.StatusOK
	if len(out.Errors) > 0 {
		status = http.StatusBadGateway
	}
	writeJSON(w, status, out)
}

// getJSON calls another service, passing on the trace headers so the
// request shows as one trace through the mesh.
func (s *web) getJSON(in *http.Request, url string, v any) error {
	req, err := http.NewRequestWithContext(in.Context(), http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	propagate(in, req.Header)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// cartItems asks the cart over its WebSocket: send "count", read the reply.
func (s *web) cartItems(in *http.Request) (int, error) {
	h := http.Header{}
	propagate(in, h)
	c, _, err := s.ws.DialContext(in.Context(), "ws://cart:9080/live", h)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte("count")); err != nil {
		return 0, err
	}
	var reply struct {
		Items int `json:"items"`
	}
	if err := c.ReadJSON(&reply); err != nil {
		return 0, err
	}
	return reply.Items, nil
}

// traceHeaders are forwarded from the incoming request to outgoing calls:
// the one thing an app must do for its calls to join one trace.
var traceHeaders = []string{"traceparent", "tracestate", "x-request-id", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled"}

func propagate(in *http.Request, out http.Header) {
	for _, h := range traceHeaders {
		if v := in.Header.Get(h); v != "" {
			out.Set(h, v)
		}
	}
}
