package testnet

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clawgate/clawgate/sidecar/internal/lapi"
	"github.com/clawgate/clawgate/sidecar/internal/testutil"
)

// shared is one tailnet for the whole package (start-up is cheap, but nodes are not free on a
// 2-core CI box). Tests that change tailnet state restore it before returning.
var shared *Net

// testTimeout bounds every individual test.
const testTimeout = 30 * time.Second

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	n, err := Start(ctx, Config{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testnet start:", err)
		os.Exit(1)
	}
	shared = n
	code := m.Run()
	root := n.root
	n.Close()
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		fmt.Fprintln(os.Stderr, "Close left the temp root behind:", root)
		code = 1
	}
	os.Exit(code)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func client(t *testing.T, name string) *lapi.Client {
	c := lapi.New(shared.Manifest().Nodes[name].LocalAPI)
	t.Cleanup(c.Close)
	return c
}

var eventually = testutil.Eventually

func TestManifestComplete(t *testing.T) {
	m := shared.Manifest()
	if !strings.HasPrefix(m.ControlURL, "http://127.0.0.1:") || !strings.HasPrefix(m.ControlAPI, "http://127.0.0.1:") {
		t.Fatalf("control URLs not loopback: %q %q", m.ControlURL, m.ControlAPI)
	}
	if m.MagicDNSSuffix != DefaultSuffix || !strings.HasPrefix(m.AuthKey, "tskey-auth-") {
		t.Fatalf("suffix %q authKey %q", m.MagicDNSSuffix, m.AuthKey)
	}
	if _, err := loadPool(m.CACertPath); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{NodeGateway, NodeUser, NodeTagged, NodeIngress} {
		n, ok := m.Nodes[name]
		if !ok {
			t.Fatalf("node %s missing", name)
		}
		if n.FQDN != name+"."+DefaultSuffix || len(n.IPs) != 2 || !strings.HasPrefix(n.NodeKey, "nodekey:") {
			t.Errorf("%s: incomplete %+v", name, n)
		}
		if n.LocalAPI.Network != "tcp" || len(n.LocalAPI.Password) != 32 || n.SOCKS5.Username != "tsnet" || n.SOCKS5.Password == "" {
			t.Errorf("%s: bad endpoints %+v %+v", name, n.LocalAPI, n.SOCKS5)
		}
		if n.Login == "" || n.Tagged != (name == NodeTagged) {
			t.Errorf("%s: login %q tagged %v", name, n.Login, n.Tagged)
		}
	}
	if f := m.Funnel[NodeGateway]; f.Target != "london."+DefaultSuffix+":443" || f.SrcIP != FunnelSrcIP {
		t.Errorf("funnel entry %+v", f)
	}
	// A manifest is only useful if a reader sees the same JSON field names the Rust side expects.
	b, _ := json.Marshal(m)
	for _, field := range []string{`"controlURL"`, `"controlAPI"`, `"caCertPath"`, `"magicDNSSuffix"`, `"authKey"`, `"fqdn"`, `"ips"`, `"login"`, `"tagged"`, `"localapi"`, `"socks5"`, `"username"`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("manifest JSON lacks %s", field)
		}
	}
}

func TestLocalAPIAuth(t *testing.T) {
	ep := shared.Manifest().Nodes[NodeGateway].LocalAPI
	for _, tc := range []struct {
		name, password string
		secHeader      bool
		want           int
	}{
		{"ok", ep.Password, true, 200},
		{"wrong password", "0123456789abcdef0123456789abcdef", true, 403},
		{"no password", "", true, 401},
		{"no Sec-Tailscale", ep.Password, false, 403},
	} {
		req, _ := http.NewRequestWithContext(testCtx(t), "GET", "http://"+ep.Address+"/localapi/v0/status", nil)
		req.Host = lapi.Host
		if tc.secHeader {
			req.Header.Set("Sec-Tailscale", "localapi")
		}
		if tc.password != "" {
			req.SetBasicAuth("", tc.password)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("%s: HTTP %d, want %d", tc.name, res.StatusCode, tc.want)
		}
	}
}

type statusView struct {
	BackendState   string
	CertDomains    []string
	MagicDNSSuffix string
	CurrentTailnet struct{ MagicDNSEnabled bool }
	Self           struct {
		DNSName      string
		TailscaleIPs []string
		CapMap       map[string]any
		PeerAPIURL   []string
	}
}

func TestStatus(t *testing.T) {
	var st statusView
	if err := client(t, NodeGateway).JSON(testCtx(t), "GET", "status?peers=false", nil, &st); err != nil {
		t.Fatal(err)
	}
	fqdn := "london." + DefaultSuffix
	if st.BackendState != "Running" || st.Self.DNSName != fqdn+"." || !st.CurrentTailnet.MagicDNSEnabled {
		t.Fatalf("status %+v", st)
	}
	if len(st.CertDomains) != 1 || st.CertDomains[0] != fqdn {
		t.Fatalf("CertDomains %v", st.CertDomains)
	}
	for _, c := range []string{"https", "funnel"} {
		if _, ok := st.Self.CapMap[c]; !ok {
			t.Errorf("cap %s missing: %v", c, st.Self.CapMap)
		}
	}
}

type whoisView struct {
	Node struct {
		Name                string
		Tags                []string
		UnsignedPeerAPIOnly bool
	}
	UserProfile struct{ LoginName string }
	CapMap      map[string][]json.RawMessage
}

func whois(ctx context.Context, c *lapi.Client, addr string) (whoisView, error) {
	var w whoisView
	err := c.JSON(ctx, "GET", "whois?addr="+addr, nil, &w)
	return w, err
}

func TestWhois(t *testing.T) {
	ctx, c, m := testCtx(t), client(t, NodeGateway), shared.Manifest()
	w, err := whois(ctx, c, m.Nodes[NodeUser].IPs[0]+":41234")
	if err != nil {
		t.Fatal(err)
	}
	if w.UserProfile.LoginName != m.Nodes[NodeUser].Login || len(w.Node.Tags) != 0 || w.Node.Name != "vienna."+DefaultSuffix+"." {
		t.Errorf("vienna whois %+v", w)
	}
	if w, err = whois(ctx, c, m.Nodes[NodeTagged].IPs[1]); err != nil || len(w.Node.Tags) != 1 || w.Node.Tags[0] != TestTag {
		t.Errorf("tagged whois %+v %v", w, err)
	}
	if w, err = whois(ctx, c, m.Nodes[NodeIngress].IPs[0]); err != nil || !w.Node.UnsignedPeerAPIOnly {
		t.Errorf("ingress whois %+v %v", w, err)
	}
	var se *lapi.StatusError
	if _, err := whois(ctx, c, "100.100.100.100"); !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("unknown peer: %v, want 404", err)
	}
}

func TestCert(t *testing.T) {
	ctx, c := testCtx(t), client(t, NodeGateway)
	fqdn := "london." + DefaultSuffix
	res, err := c.Do(ctx, "GET", "cert/"+fqdn+"?type=pair", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("cert: HTTP %d %s", res.StatusCode, body)
	}
	keyBlock, certPEM := pem.Decode(body)
	if keyBlock == nil || !strings.HasSuffix(keyBlock.Type, "PRIVATE KEY") {
		t.Fatalf("pair is not key then cert: %.80q", body)
	}
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(keyBlock))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := loadPool(shared.Manifest().CACertPath)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: fqdn, Roots: pool}); err != nil {
		t.Fatalf("served cert does not chain to the manifest CA: %v", err)
	}
	if err := c.JSON(ctx, "GET", "cert/vienna."+DefaultSuffix, nil, nil); err == nil {
		t.Fatal("cert for another node's name was issued")
	}
}

func TestPrefs(t *testing.T) {
	var p struct {
		Hostname    string
		WantRunning bool
		ShieldsUp   bool
		ControlURL  string
	}
	if err := client(t, NodeGateway).JSON(testCtx(t), "GET", "prefs", nil, &p); err != nil {
		t.Fatal(err)
	}
	if p.Hostname != NodeGateway || !p.WantRunning || p.ShieldsUp || p.ControlURL != shared.Manifest().ControlURL {
		t.Fatalf("prefs %+v", p)
	}
	// PATCH takes MaskedPrefs and answers the new Prefs; restore afterwards.
	c := client(t, NodeGateway)
	for _, on := range []bool{true, false} {
		if err := c.JSON(testCtx(t), "PATCH", "prefs", map[string]any{"ShieldsUpSet": true, "ShieldsUp": on}, &p); err != nil || p.ShieldsUp != on {
			t.Fatalf("PATCH ShieldsUp=%v: %+v %v", on, p, err)
		}
	}
}

func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no certificates in " + path)
	}
	return pool, nil
}

// readNotify reads one NDJSON message of the IPN bus.
func readNotify(r *bufio.Reader) (map[string]json.RawMessage, error) {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	return m, json.Unmarshal(line, &m)
}
