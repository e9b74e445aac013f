// Package lapi describes how to reach a Tailscale LocalAPI (the "localapi" object of the sidecar
// handshake and the testnet manifest) and provides a minimal HTTP client for it.
//
// Invariants (tailscale.md §1.2, §1.5):
//   - every request carries `Host: local-tailscaled.sock` and `Sec-Tailscale: localapi`;
//   - on TCP endpoints the password is sent as HTTP Basic auth with an empty user name;
//   - no `Origin` or `Referer` header is ever sent (the LocalAPI rejects them as CSRF);
//   - status codes and bodies are returned untouched to the caller.
//
// The client is used by the Go tests and by the testnet harness; the production client lives on the
// Rust side and follows the same rules.
package lapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Host is the Host header value tailscaled's LocalAPI accepts from every transport.
const Host = "local-tailscaled.sock"

// maxErrorBody bounds how much of an error body JSON helpers copy into an error value.
const maxErrorBody = 4 << 10

// Endpoint says where a LocalAPI listens. Network is "tcp" (Address = "127.0.0.1:PORT", Password
// required) or "unix" (Address = socket path, no password: the socket's file mode and peer
// credentials are the access control).
type Endpoint struct {
	Network  string `json:"network"`
	Address  string `json:"address"`
	Password string `json:"password,omitempty"`
}

// Client talks HTTP/1.1 to one LocalAPI endpoint.
type Client struct {
	ep Endpoint
	hc *http.Client
}

// New returns a client for ep. Connections are pooled by the underlying transport.
func New(ep Endpoint) *Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, ep.Network, ep.Address)
		},
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}
	return &Client{ep: ep, hc: &http.Client{Transport: tr}}
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Do sends one request to /localapi/v0/<path> (path may carry a query string). The caller owns
// the response body. hdr may be nil.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+Host+"/localapi/v0/"+strings.TrimPrefix(path, "/"), body)
	if err != nil {
		return nil, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Host = Host
	req.Header.Set("Sec-Tailscale", "localapi")
	if c.ep.Password != "" {
		req.SetBasicAuth("", c.ep.Password)
	}
	return c.hc.Do(req)
}

// StatusError is a non-2xx LocalAPI answer.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("localapi: HTTP %d: %s", e.Code, strings.TrimSpace(e.Body))
}

// JSON performs a request with an optional JSON body and decodes a 2xx JSON answer into out
// (out may be nil). Non-2xx answers become *StatusError.
func (c *Client) JSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = strings.NewReader(string(b))
	}
	res, err := c.Do(ctx, method, path, body, nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
		return &StatusError{Code: res.StatusCode, Body: string(b)}
	}
	if out == nil {
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	return json.NewDecoder(res.Body).Decode(out)
}
