package testnet

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/net/proxy"

	"github.com/clawgate/clawgate/sidecar/internal/lapi"
)

// getServe returns the raw serve-config JSON and its ETag.
func getServe(t *testing.T, ctx context.Context, c *lapi.Client) (string, string) {
	t.Helper()
	res, err := c.Do(ctx, "GET", "serve-config", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Etag") == "" {
		t.Fatalf("GET serve-config: HTTP %d etag %q body %s", res.StatusCode, res.Header.Get("Etag"), b)
	}
	return strings.TrimSpace(string(b)), res.Header.Get("Etag")
}

// postServe POSTs cfg with an optional If-Match and returns the status code.
func postServe(t *testing.T, ctx context.Context, c *lapi.Client, cfg, ifMatch string) int {
	t.Helper()
	h := http.Header{}
	if ifMatch != "" {
		h.Set("If-Match", ifMatch)
	}
	res, err := c.Do(ctx, "POST", "serve-config", strings.NewReader(cfg), h)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// resetServe clears the gateway's serve config (a global wipe: fine in the harness only).
func resetServe(t *testing.T, c *lapi.Client) {
	if code := postServe(t, context.Background(), c, "{}", ""); code != 200 {
		t.Errorf("reset serve-config: HTTP %d", code)
	}
}

func TestServeConfigETag(t *testing.T) {
	ctx, c := testCtx(t), client(t, NodeGateway)
	defer resetServe(t, c)
	_, etag0 := getServe(t, ctx, c)
	cfg := `{"TCP":{"8443":{"TCPForward":"127.0.0.1:9"}}}`
	if code := postServe(t, ctx, c, cfg, etag0); code != 200 {
		t.Fatalf("POST with current ETag: HTTP %d", code)
	}
	body, etag1 := getServe(t, ctx, c)
	if etag1 == etag0 || !strings.Contains(body, `"TCPForward":"127.0.0.1:9"`) {
		t.Fatalf("after POST: etag %q→%q body %s", etag0, etag1, body)
	}
	if code := postServe(t, ctx, c, `{}`, etag0); code != http.StatusPreconditionFailed {
		t.Fatalf("POST with stale If-Match: HTTP %d, want 412", code)
	}
	if body2, _ := getServe(t, ctx, c); body2 != body {
		t.Fatalf("stale POST changed the config: %s", body2)
	}
}

func TestForegroundSessionVanishesWithBus(t *testing.T) {
	ctx, c := testCtx(t), client(t, NodeGateway)
	defer resetServe(t, c)
	busCtx, closeBus := context.WithCancel(ctx)
	defer closeBus()
	res, err := c.Do(busCtx, "GET", "watch-ipn-bus?mask=2", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	first, err := readNotify(bufio.NewReader(res.Body))
	if err != nil {
		t.Fatal(err)
	}
	var sid string
	if err := json.Unmarshal(first["SessionID"], &sid); err != nil || sid == "" {
		t.Fatalf("first notify has no SessionID: %v", first)
	}
	_, etag := getServe(t, ctx, c)
	cfg := fmt.Sprintf(`{"Foreground":{%q:{"TCP":{"8443":{"TCPForward":"127.0.0.1:9"}}}}}`, sid)
	if code := postServe(t, ctx, c, cfg, etag); code != 200 {
		t.Fatalf("POST foreground: HTTP %d", code)
	}
	if body, _ := getServe(t, ctx, c); !strings.Contains(body, sid) {
		t.Fatalf("foreground entry not stored: %s", body)
	}
	closeBus()
	err = eventually(ctx, func() error {
		if body, _ := getServe(t, ctx, c); strings.Contains(body, sid) {
			return fmt.Errorf("still present: %s", body)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("foreground entry survived the bus stream: %v", err)
	}
}

// headerEcho is a backend recording the Serve headers of the last request.
func headerEcho(t *testing.T) (*httptest.Server, chan http.Header) {
	got := make(chan http.Header, 4)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Clone():
		default:
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s, got
}

// serveHTTPS points london:443 (HTTPS, optionally Funnel) at backend.
func serveHTTPS(t *testing.T, ctx context.Context, c *lapi.Client, backend string, funnel bool) {
	hp := "london." + DefaultSuffix + ":443"
	cfg := fmt.Sprintf(`{"TCP":{"443":{"HTTPS":true}},"Web":{%q:{"Handlers":{"/":{"Proxy":%q}}}}`, hp, backend)
	if funnel {
		cfg += fmt.Sprintf(`,"AllowFunnel":{%q:true}`, hp)
	}
	if code := postServe(t, ctx, c, cfg+"}", ""); code != 200 {
		t.Fatalf("POST https serve: HTTP %d", code)
	}
}

// httpsGet fetches https://london/ over conn-producing dial, trusting the manifest CA.
func httpsGet(t *testing.T, ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error)) error {
	pool, err := loadPool(shared.Manifest().CACertPath)
	if err != nil {
		return err
	}
	tr := &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://london."+DefaultSuffix+"/", nil)
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("HTTP %d", res.StatusCode)
	}
	return nil
}

func TestFunnelEntry(t *testing.T) {
	ctx, c := testCtx(t), client(t, NodeGateway)
	defer resetServe(t, c)
	backend, got := headerEcho(t)
	serveHTTPS(t, ctx, c, backend.URL, true)
	entry := shared.Manifest().Funnel[NodeGateway].Address
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", entry)
	}
	if err := eventually(ctx, func() error { return httpsGet(t, ctx, dial) }); err != nil {
		t.Fatal(err)
	}
	h := <-got
	if h.Get("Tailscale-Funnel-Request") != "?1" || !strings.HasPrefix(h.Get("X-Forwarded-For"), FunnelSrcIP) || h.Get("Tailscale-User-Login") != "" {
		t.Fatalf("funnel request headers: %v", h)
	}
}

func TestTailnetHTTPSIdentityViaSOCKS5(t *testing.T) {
	ctx, c, m := testCtx(t), client(t, NodeGateway), shared.Manifest()
	defer resetServe(t, c)
	backend, got := headerEcho(t)
	serveHTTPS(t, ctx, c, backend.URL, false)
	for _, tc := range []struct{ from, wantLogin string }{
		{NodeUser, m.Nodes[NodeUser].Login},
		{NodeTagged, ""}, // tagged nodes get no identity headers
	} {
		s5 := m.Nodes[tc.from].SOCKS5
		d, err := proxy.SOCKS5("tcp", s5.Address, &proxy.Auth{User: s5.Username, Password: s5.Password}, proxy.Direct)
		if err != nil {
			t.Fatal(err)
		}
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.(proxy.ContextDialer).DialContext(ctx, network, addr)
		}
		if err := eventually(ctx, func() error { return httpsGet(t, ctx, dial) }); err != nil {
			t.Fatalf("from %s: %v", tc.from, err)
		}
		h := <-got
		if h.Get("Tailscale-User-Login") != tc.wantLogin || h.Get("Tailscale-Funnel-Request") != "" {
			t.Errorf("from %s: headers %v, want login %q", tc.from, h, tc.wantLogin)
		}
	}
}
