package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/clawgate/clawgate/sidecar/internal/lapi"
)

func postAPI(t *testing.T, path string, body any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	res, err := http.Post(shared.Manifest().ControlAPI+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestControlAPICaps(t *testing.T) {
	ctx, c := testCtx(t), client(t, NodeGateway)
	hasFunnel := func() (bool, error) {
		var st statusView
		if err := c.JSON(ctx, "GET", "status?peers=false", nil, &st); err != nil {
			return false, err
		}
		_, ok := st.Self.CapMap["funnel"]
		return ok, nil
	}
	if code := postAPI(t, "/caps", map[string]any{"node": NodeGateway, "caps": map[string]any{"funnel": nil}}); code != 204 {
		t.Fatalf("POST /caps: HTTP %d", code)
	}
	err := eventually(ctx, func() error {
		if on, err := hasFunnel(); err != nil || on {
			return fmt.Errorf("funnel cap still present (%v)", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if code := postAPI(t, "/caps", map[string]any{"node": NodeGateway, "caps": map[string]any{"funnel": []any{}}}); code != 204 {
		t.Fatalf("restore caps: HTTP %d", code)
	}
	if err := eventually(ctx, func() error {
		if on, err := hasFunnel(); err != nil || !on {
			return fmt.Errorf("funnel cap not restored (%v)", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if code := postAPI(t, "/caps", map[string]any{"node": "nosuchnode", "caps": map[string]any{}}); code != 404 {
		t.Errorf("unknown node: HTTP %d, want 404", code)
	}
}

func TestControlAPIAppCapsAndTags(t *testing.T) {
	ctx, c, m := testCtx(t), client(t, NodeGateway), shared.Manifest()
	const appCap = "example.com/cap/clawgate"
	if code := postAPI(t, "/app-caps", map[string]any{"caps": map[string]any{appCap: []any{map[string]any{"role": "admin"}}}}); code != 204 {
		t.Fatalf("POST /app-caps: HTTP %d", code)
	}
	defer postAPI(t, "/app-caps", map[string]any{"caps": nil})
	if code := postAPI(t, "/tags", map[string]any{"node": NodeUser, "tags": []string{"tag:ops"}}); code != 204 {
		t.Fatalf("POST /tags: HTTP %d", code)
	}
	defer postAPI(t, "/tags", map[string]any{"node": NodeUser, "tags": []string{}})
	err := eventually(ctx, func() error {
		w, err := whois(ctx, c, m.Nodes[NodeUser].IPs[0])
		if err != nil {
			return err
		}
		if len(w.CapMap[appCap]) != 1 || !slices.Equal(w.Node.Tags, []string{"tag:ops"}) {
			return fmt.Errorf("whois not updated yet: caps %v tags %v", w.CapMap, w.Node.Tags)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestControlAPICertsAndValidation(t *testing.T) {
	dir := t.TempDir()
	if code := postAPI(t, "/certs", map[string]any{"fqdn": "x." + DefaultSuffix, "stateDir": dir}); code != 204 {
		t.Fatalf("POST /certs: HTTP %d", code)
	}
	for _, f := range []string{"x." + DefaultSuffix + ".crt", "x." + DefaultSuffix + ".key"} {
		if _, err := os.Stat(filepath.Join(dir, "certs", f)); err != nil {
			t.Error(err)
		}
	}
	if code := postAPI(t, "/certs", map[string]any{"fqdn": "../evil", "stateDir": dir}); code != 400 {
		t.Errorf("path traversal: HTTP %d, want 400", code)
	}
	if code := postAPI(t, "/tags", map[string]any{"node": NodeUser, "tags": []string{"nottag"}}); code != 400 {
		t.Errorf("bad tag: HTTP %d, want 400", code)
	}
	if code := postAPI(t, "/tags", map[string]any{"node": NodeUser, "bogus": 1}); code != 400 {
		t.Errorf("unknown field: HTTP %d, want 400", code)
	}
}

// tailscaledBinaries locates tailscaled/tailscale built by `make sidecar` (sidecar/bin).
func tailscaledBinaries(t *testing.T) (string, string) {
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "bin")
	d, c := filepath.Join(bin, "tailscaled"), filepath.Join(bin, "tailscale")
	for _, p := range []string{d, c} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s not built (run `make sidecar`): %v", p, err)
		}
	}
	return d, c
}

// TestRealTailscaled runs a second, independent tailnet with a real tailscaled logged in to it
// and drives the daemon's Unix-socket LocalAPI and its view of the tsnet peers.
func TestRealTailscaled(t *testing.T) {
	daemonBin, cli := tailscaledBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := Start(ctx, Config{Tailscaled: daemonBin, TailscaleCLI: cli, SidecarNodes: []string{"gw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	m := n.Manifest()
	d, ok := m.Nodes[NodeDaemon]
	if !ok || d.LocalAPI.Network != "unix" || d.FQDN != NodeDaemon+"."+DefaultSuffix || len(d.IPs) != 2 || d.SOCKS5.Address == "" {
		t.Fatalf("daemon node %+v", d)
	}
	if _, ok := m.Funnel[NodeDaemon]; !ok {
		t.Error("no funnel entry for the daemon")
	}
	c := lapi.New(d.LocalAPI)
	defer c.Close()
	if err := c.JSON(ctx, "GET", "cert/"+d.FQDN+"?type=cert", nil, nil); err != nil {
		t.Errorf("daemon cert: %v", err)
	}
	w, err := whois(ctx, c, m.Nodes[NodeUser].IPs[0])
	if err != nil || w.UserProfile.LoginName != m.Nodes[NodeUser].Login {
		t.Errorf("daemon whois vienna: %+v %v", w, err)
	}
	var se *lapi.StatusError
	if err := c.JSON(ctx, "GET", "whois?addr=bogus", nil, nil); !errors.As(err, &se) || se.Code != 400 {
		t.Errorf("bad addr: %v, want 400", err)
	}
}
