package harness

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Middle is the middle hop of a two-proxy system: where proxy A connects
// to proxy B, for one protocol.
type Middle struct {
	Addr string
	TLS  bool // B requires TLS 1.3 with a client certificate here
	// ALPN B negotiates on this port: "http/1.1" or "h2". Empty for
	// systems that are not TLS.
	ALPN string
	// Host is the Host/:authority B routes on.
	Host string
	// ProxyPort, when set, is the app port a PROXY v2 header names at the
	// start of each connection (inside TLS): weft's inbound wants one.
	ProxyPort int
	// ServerID, when set, is the SPIFFE ID (URI SAN) B's certificate must
	// carry, checked in place of the DNS name ServerName: the certificates
	// a weft control plane issues name no host.
	ServerID string
	// Trust, when set, replaces the run's throwaway CA for this hop.
	Trust *Trust
}

// Trust is a PKI other than the run's throwaway CA that a middle hop
// belongs to (a weft control plane's): the roots B's certificate chains
// to, and a client certificate it issued, for the positive control.
type Trust struct {
	Roots    *x509.CertPool
	Client   tls.Certificate
	ClientID string // the client certificate's SPIFFE ID, for the report
}

// clientTLS is the TLS config of a probe of m that trusts roots: B must
// prove ServerName, or m.ServerID when set.
func (m Middle) clientTLS(roots *x509.CertPool) *tls.Config {
	if m.ServerID == "" {
		return &tls.Config{RootCAs: roots, ServerName: ServerName, MinVersion: tls.VersionTLS13}
	}
	id := m.ServerID
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified below: the chain against roots, the SPIFFE ID instead of a host name
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no server certificate")
			}
			certs := make([]*x509.Certificate, len(raw))
			for i, der := range raw {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					return err
				}
				certs[i] = c
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return err
			}
			for _, u := range certs[0].URIs {
				if u.String() == id {
					return nil
				}
			}
			return fmt.Errorf("server certificate is %v, not %s", certs[0].URIs, id)
		},
	}
}

// Proof is the outcome of one check of the middle hop.
type Proof struct {
	Proto  string `json:"proto"`
	Check  string `json:"check"`  // what was tried
	Want   string `json:"want"`   // "refused" or "served"
	Got    string `json:"got"`    // what happened
	Passed bool   `json:"passed"` //
}

// ProveMTLS checks that the middle hop m is mutual TLS 1.3: a plaintext
// client and a TLS client without a certificate are refused (no successful
// answer), and a client with a certificate from the bench CA (or m.Trust's)
// is served over TLS 1.3. The request is the workload's own (an echo POST
// for HTTP, a fortio Ping for gRPC), so "served" means it reached the
// server.
func ProveMTLS(proto string, m Middle, certs *Certs) []Proof {
	roots, client := certs.Pool, certs.Client
	if m.Trust != nil {
		roots, client = m.Trust.Roots, m.Trust.Client
	}
	var out []Proof
	add := func(check, want string, served bool, detail string) {
		got := "refused: " + detail
		if served {
			got = "served: " + detail
		}
		out = append(out, Proof{Proto: proto, Check: check, Want: want, Got: got, Passed: served == (want == "served")})
	}
	served, detail := probe(proto, m, nil)
	add("plaintext client", "refused", served, detail)
	served, detail = probe(proto, m, m.clientTLS(roots))
	add("TLS client without a certificate", "refused", served, detail)
	withCert := m.clientTLS(roots)
	withCert.Certificates = []tls.Certificate{client}
	served, detail = probe(proto, m, withCert)
	add("TLS 1.3 client with a CA-signed certificate", "served", served, detail)
	return out
}

// probe sends the workload's request to m and says whether it was served
// (a 200 with the body echoed, and for gRPC a grpc-status 0), with a short
// description. tc nil means plaintext. The transport speaks to an http://
// URL (HTTP/1.1, or prior-knowledge HTTP/2 for gRPC) over a connection the
// dialer made: TCP, then TLS with ALPN when tc is set, then the PROXY
// header when the middle hop wants one, so the same request goes to every
// kind of middle hop.
func probe(proto string, m Middle, tc *tls.Config) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var state *tls.ConnectionState
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if tc != nil {
			cfg := tc.Clone()
			if m.ALPN != "" {
				cfg.NextProtos = []string{m.ALPN}
			}
			tlc := tls.Client(c, cfg)
			if err := tlc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			cs := tlc.ConnectionState()
			state = &cs
			c = tlc
		}
		if m.ProxyPort != 0 {
			if _, err := c.Write(proxyV2Header(c.LocalAddr(), m.ProxyPort)); err != nil {
				c.Close()
				return nil, err
			}
		}
		return c, nil
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true, DialContext: dial, Protocols: new(http.Protocols)}
	defer tr.CloseIdleConnections()
	var req *http.Request
	if proto == GRPC {
		tr.Protocols.SetUnencryptedHTTP2(true)
		// A gRPC call by hand: fgrpc.PingServer/Ping with an empty
		// PingMessage (5-byte frame header, no fields).
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, "http://"+m.Addr+"/fgrpc.PingServer/Ping", bytes.NewReader([]byte{0, 0, 0, 0, 0}))
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("TE", "trailers")
	} else {
		tr.Protocols.SetHTTP1(true)
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, "http://"+m.Addr+"/echo", strings.NewReader("proof"))
	}
	req.Host = m.Host
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return false, shortErr(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	detail := fmt.Sprintf("HTTP %d", resp.StatusCode)
	if state != nil {
		detail += ", " + tls.VersionName(state.Version)
		if state.NegotiatedProtocol != "" {
			detail += " " + state.NegotiatedProtocol
		}
	}
	ok := resp.StatusCode == http.StatusOK
	if proto == GRPC {
		st := resp.Trailer.Get("Grpc-Status")
		if st == "" {
			st = resp.Header.Get("Grpc-Status") // trailers-only answer
		}
		detail += ", grpc-status " + orDash(st)
		ok = ok && st == "0"
	} else if ok && string(body) != "proof" {
		detail += ", body not echoed"
		ok = false
	}
	if ok && tc != nil && (state == nil || state.Version != tls.VersionTLS13) {
		ok = false
		detail += " (not TLS 1.3)"
	}
	return ok, detail
}

// proxyV2Header is a PROXY protocol v2 header (TCP over IPv4) whose
// destination is 127.0.0.1:port: how a weft sidecar names the app port it
// delivers to.
func proxyV2Header(local net.Addr, port int) []byte {
	src := net.IPv4(127, 0, 0, 1).To4()
	srcPort := 0
	if ta, ok := local.(*net.TCPAddr); ok {
		if ip := ta.IP.To4(); ip != nil {
			src = ip
		}
		srcPort = ta.Port
	}
	h := []byte("\r\n\r\n\x00\r\nQUIT\n")
	h = append(h, 0x21, 0x11, 0, 12)
	h = append(h, src...)
	h = append(h, 127, 0, 0, 1)
	h = append(h, byte(srcPort>>8), byte(srcPort), byte(port>>8), byte(port))
	return h
}

// ephemeral matches the addresses in "write tcp 127.0.0.1:4711->127.0.0.1:80: ",
// which change every run.
var ephemeral = regexp.MustCompile(`(read|write) tcp [0-9.:\[\]]+->[0-9.:\[\]]+: `)

func shortErr(err error) string {
	s := err.Error()
	// "Post \"https://...\": remote error: tls: certificate required"
	if i := strings.LastIndex(s, "\": "); i >= 0 {
		s = s[i+3:]
	}
	s = ephemeral.ReplaceAllString(s, "$1: ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
