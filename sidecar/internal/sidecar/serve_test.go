package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/clawgate/clawgate/sidecar/internal/lapi"
	"github.com/clawgate/clawgate/sidecar/internal/testutil"
	"github.com/clawgate/clawgate/sidecar/testnet"
)

var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// readProxyV2Source parses a PROXY protocol v2 header and returns the source address.
func readProxyV2Source(r *bufio.Reader) (netip.AddrPort, error) {
	hdr := make([]byte, 16)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return netip.AddrPort{}, err
	}
	if !bytes.Equal(hdr[:12], proxyV2Sig) || hdr[12] != 0x21 {
		return netip.AddrPort{}, fmt.Errorf("not a PROXY v2 header: %x", hdr)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[14:16]))
	if _, err := io.ReadFull(r, body); err != nil {
		return netip.AddrPort{}, err
	}
	switch hdr[13] {
	case 0x11: // TCP over IPv4: src(4) dst(4) sport(2) dport(2)
		a, _ := netip.AddrFromSlice(body[0:4])
		return netip.AddrPortFrom(a, binary.BigEndian.Uint16(body[8:10])), nil
	case 0x21: // TCP over IPv6: src(16) dst(16) sport(2) dport(2)
		a, _ := netip.AddrFromSlice(body[0:16])
		return netip.AddrPortFrom(a, binary.BigEndian.Uint16(body[32:34])), nil
	}
	return netip.AddrPort{}, fmt.Errorf("unexpected PROXY family %#x", hdr[13])
}

// proxyBackend accepts connections, reads the PROXY header and one line, and reports both.
func proxyBackend(t *testing.T) (string, chan string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			src, err := readProxyV2Source(br)
			line, _ := br.ReadString('\n')
			if err != nil {
				got <- "error: " + err.Error()
			} else {
				got <- src.Addr().String() + " " + strings.TrimSpace(line)
			}
			c.Close()
		}
	}()
	return ln.Addr().String(), got
}

// sendOverTLS dials via dial, completes TLS for fqdn against the harness CA and writes msg.
func sendOverTLS(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), fqdn, msg string) error {
	pem, err := os.ReadFile(tn.Manifest().CACertPath)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	raw, err := dial(ctx, "tcp", fqdn+":443")
	if err != nil {
		return err
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	c := tls.Client(raw, &tls.Config{ServerName: fqdn, RootCAs: pool})
	if err := c.HandshakeContext(ctx); err != nil {
		return err
	}
	_, err = io.WriteString(c, msg+"\n")
	return err
}

// TestSidecarServeTLSForwardWithProxyProtocol drives the external sidecar the way the gateway
// will (tailscale.md §4 option B): TLS terminated by tailscale, TCP forward with PROXY v2, Funnel on.
func TestSidecarServeTLSForwardWithProxyProtocol(t *testing.T) {
	c := startChild(t, "gw3", tn.Manifest().AuthKey)
	h := c.handshake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fqdn := strings.TrimSuffix(h.DNSName, ".")
	backend, got := proxyBackend(t)
	cfg := fmt.Sprintf(`{"TCP":{"443":{"TCPForward":%q,"TerminateTLS":%q,"ProxyProtocol":2}},"AllowFunnel":{"%s:443":true}}`, backend, fqdn, fqdn)
	lc := lapi.New(h.LocalAPI)
	defer lc.Close()
	res, err := lc.Do(ctx, "POST", "serve-config", strings.NewReader(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("POST serve-config: HTTP %d", res.StatusCode)
	}

	m := tn.Manifest()
	entry := m.Funnel["gw3"].Address
	viaFunnel := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", entry)
	}
	s5 := m.Nodes[testnet.NodeUser].SOCKS5
	d, err := proxy.SOCKS5("tcp", s5.Address, &proxy.Auth{User: s5.Username, Password: s5.Password}, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	viaTailnet := d.(proxy.ContextDialer).DialContext
	for _, tc := range []struct {
		name    string
		dial    func(context.Context, string, string) (net.Conn, error)
		wantSrc []string
	}{
		{"funnel", viaFunnel, []string{testnet.FunnelSrcIP}},
		{"tailnet", viaTailnet, m.Nodes[testnet.NodeUser].IPs},
	} {
		err := testutil.Eventually(ctx, func() error { return sendOverTLS(ctx, tc.dial, fqdn, "hi-"+tc.name) })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// A retried attempt can leave a connection that delivered only the PROXY header (e.g. the
		// ingress node still had a restarted sidecar's old PeerAPI port): skip those.
		for done := false; !done; {
			select {
			case line := <-got:
				src, msg, _ := strings.Cut(line, " ")
				if msg != "hi-"+tc.name {
					continue
				}
				done = true
				if !slices.Contains(tc.wantSrc, src) {
					t.Errorf("%s: backend saw %q, want source in %v", tc.name, line, tc.wantSrc)
				}
			case <-ctx.Done():
				t.Fatalf("%s: backend got nothing", tc.name)
			}
		}
	}
}
