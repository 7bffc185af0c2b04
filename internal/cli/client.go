// Package cli is the client side of `weft apply`, `get`, `delete` and
// `status`: it finds the control plane (the CLI context that `weft
// control` writes to $WEFT_HOME/config, or --server/--token), calls its
// HTTP API (internal/control/api) and prints the answers for people:
// kubectl-style lines and tables, and API errors one problem per line.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"weft.dev/weft/internal/control/api"
)

// Flags are the connection flags every client command takes; empty
// values come from the CLI context.
type Flags struct {
	Server string
	Token  string
}

// Client calls the control plane's API.
type Client struct {
	Server string // base URL, e.g. http://127.0.0.1:15080
	token  string
	http   *http.Client
}

// NewClient resolves the server and token: flags first, then the CLI
// context file.
func NewClient(f Flags) (*Client, error) {
	server, token := f.Server, f.Token
	if server == "" || token == "" {
		home, err := api.Home()
		if err != nil {
			return nil, err
		}
		path := api.ConfigPath(home)
		cfg, err := api.ReadClientConfig(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("no CLI context at %s: start `weft control` on this machine (it writes one), set %s, or pass --server and --token", path, api.EnvHome)
		case err != nil:
			return nil, fmt.Errorf("CLI context: %w", err)
		}
		if server == "" {
			server = cfg.Server
		}
		if token == "" {
			token = cfg.Token
		}
	}
	if server == "" {
		return nil, errors.New("no control plane address: pass --server")
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return &Client{Server: strings.TrimRight(server, "/"), token: token, http: &http.Client{Timeout: 60 * time.Second}}, nil
}

// APIError is a refusal from the API, with its details.
type APIError struct {
	Status int
	api.ErrorBody
}

// Error is the message and then one line per problem, as people read it:
// "file: document N (Kind "name"): field: reason".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.ErrorBody.Error)
	for _, d := range e.Details {
		b.WriteString("\n")
		b.WriteString(FormatDetail(d))
	}
	return b.String()
}

// FormatDetail prints one problem the way resource.FieldError does.
func FormatDetail(d api.Detail) string {
	var b strings.Builder
	if d.File != "" {
		fmt.Fprintf(&b, "%s: document %d", d.File, d.Document)
	}
	if d.Kind != "" {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "(%s", d.Kind)
		if d.Name != "" {
			name := d.Name
			if d.Namespace != "" && d.Namespace != "default" {
				name = d.Namespace + "/" + d.Name
			}
			fmt.Fprintf(&b, " %q", name)
		}
		b.WriteString(")")
	}
	if d.Field != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(d.Field)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(d.Reason)
	return b.String()
}

// do sends a request and decodes a 2xx JSON answer into out. A non-2xx
// answer is an *APIError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, contentType string, body io.Reader, out any) error {
	u := c.Server + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("control plane at %s: %w", c.Server, unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("control plane at %s: reading answer: %w", c.Server, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(raw, &ae.ErrorBody) != nil || ae.ErrorBody.Error == "" {
			ae.ErrorBody = api.ErrorBody{Error: fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(raw))}
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("control plane at %s: unexpected answer to %s %s: %w", c.Server, method, path, err)
	}
	return nil
}

// unwrapURLError drops net/url's "Get \"http://...\":" prefix, which
// repeats what the message already says.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
