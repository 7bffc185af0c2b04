package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"

	"weft.dev/weft/internal/compile"
	"weft.dev/weft/internal/proxy/upstream"
)

// mirrorBodyLimit is the largest request body copied to mirrors; requests
// with larger (or unknown-length) bodies are mirrored without a body rather
// than buffered, so mirroring never holds up the real request.
const (
	mirrorBodyLimit = 64 * 1024
	mirrorTimeout   = 10 * time.Second
)

// mirror sends copies of r to the rule's mirror clusters, fire and forget.
// Answers are discarded; failures only cost the mirror.
func (p *Proxy) mirror(r *http.Request, ru *rule) {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength > 0 && r.ContentLength <= mirrorBodyLimit {
		b, err := io.ReadAll(io.LimitReader(r.Body, mirrorBodyLimit+1))
		if err != nil {
			// The body is lost for the real request too; let it fail there.
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), errReader{err}))
			return
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	for _, m := range ru.Mirrors {
		if !hit(m.Percent) {
			continue
		}
		c := p.upstreams.Cluster(m.Cluster)
		if c == nil {
			continue
		}
		out := r.Clone(context.Background())
		out.RequestURI = ""
		out.Body = nil
		out.ContentLength = 0
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
			out.ContentLength = int64(len(body))
		}
		go p.sendMirror(c, out, m)
	}
}

func (p *Proxy) sendMirror(c *upstream.Cluster, out *http.Request, m *compile.Mirror) {
	ep, err := c.Pick(upstream.PickInfo{})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), mirrorTimeout)
	defer cancel()
	out = out.WithContext(ctx)
	out.URL.Scheme = "http"
	out.URL.Host = ep.Address
	removeHopHeaders(out.Header)
	tr := p.tr.forProtocol(c.Config().Protocol, out.ProtoMajor)
	c.Begin(ep)
	resp, err := tr.RoundTrip(out)
	if err != nil {
		c.End(ep, upstream.Reset)
		return
	}
	drainAndClose(resp.Body)
	c.End(ep, upstream.Success)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopHeaders(h http.Header) {
	for _, k := range hopHeaders {
		h.Del(k)
	}
}
