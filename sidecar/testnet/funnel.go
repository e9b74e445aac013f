package testnet

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"tailscale.com/tsnet"
	"tailscale.com/types/key"
)

// FunnelSrcIP is the fake public client address the ingress node reports (TEST-NET-3, RFC 5737);
// the port is the funnel-entry client's local port, so each connection is distinguishable.
const FunnelSrcIP = "203.0.113.7"

// FunnelPort is the public port simulated; testcontrol's default funnel-ports cap allows 443, 8080.
const FunnelPort = 443

// ingressDialTimeout bounds locating the target and completing the /v0/ingress upgrade.
const ingressDialTimeout = 15 * time.Second

// funnelEntry accepts local TCP connections and relays each through the ingress node into the
// target's Funnel handling (tailscale.md §8.5; tsnet_test.go dialIngressConn).
type funnelEntry struct {
	ln      net.Listener
	ingress *tsnet.Server
	fqdn    string
	logf    func(string, ...any)
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool
}

func startFunnelEntry(ingress *tsnet.Server, fqdn, ip string, logf func(string, ...any)) (*funnelEntry, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, err
	}
	f := &funnelEntry{ln: ln, ingress: ingress, fqdn: fqdn, logf: logf, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.acceptLoop()
	return f, nil
}

func (f *funnelEntry) describe() FunnelEntry {
	return FunnelEntry{Address: f.ln.Addr().String(), Target: f.target(), SrcIP: FunnelSrcIP}
}

func (f *funnelEntry) target() string { return net.JoinHostPort(f.fqdn, strconv.Itoa(FunnelPort)) }

func (f *funnelEntry) acceptLoop() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(c, true) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.track(c, false)
			f.relay(c)
		}()
	}
}

// track adds or removes c from the live set; it refuses new connections once closing.
func (f *funnelEntry) track(c net.Conn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !add {
		delete(f.conns, c)
		return true
	}
	if f.closing {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *funnelEntry) relay(client net.Conn) {
	defer client.Close()
	port := client.RemoteAddr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), ingressDialTimeout)
	up, err := f.dialIngress(ctx, net.JoinHostPort(FunnelSrcIP, strconv.Itoa(port)))
	cancel()
	if err != nil {
		f.logf("funnel entry %s: %v", f.target(), err)
		return
	}
	f.track(up, true)
	defer f.track(up, false)
	defer up.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, client)
		closeWrite(up)
		close(done)
	}()
	_, _ = io.Copy(client, up)
	closeWrite(client)
	<-done
}

// dialIngress opens the ingress node's connection to the target's PeerAPI and performs the
// POST /v0/ingress upgrade; the returned conn carries the public client's raw bytes.
func (f *funnelEntry) dialIngress(ctx context.Context, src string) (net.Conn, error) {
	peerAPI, err := f.peerAPIHostPort(ctx)
	if err != nil {
		return nil, err
	}
	c, err := f.ingress.Dial(ctx, "tcp", peerAPI)
	if err != nil {
		return nil, fmt.Errorf("dial peerapi %s: %w", peerAPI, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	req, _ := http.NewRequest("POST", "/v0/ingress", nil)
	req.Host = peerAPI
	req.Header.Set("Tailscale-Ingress-Src", src)
	req.Header.Set("Tailscale-Ingress-Target", f.target())
	br := bufio.NewReader(c)
	if err := req.Write(c); err != nil {
		c.Close()
		return nil, err
	}
	res, err := http.ReadResponse(br, req)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("ingress upgrade: %w", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("ingress upgrade: HTTP %d (is AllowFunnel[%s] set?)", res.StatusCode, f.target())
	}
	_ = c.SetDeadline(time.Time{})
	return &bufferedConn{Conn: c, r: br}, nil
}

// peerAPIHostPort finds the target's PeerAPI address as the ingress node sees it (looked up per
// connection, so targets that join after start-up, such as external sidecars, work).
func (f *funnelEntry) peerAPIHostPort(ctx context.Context) (string, error) {
	lc, err := f.ingress.LocalClient()
	if err != nil {
		return "", err
	}
	st, err := lc.Status(ctx)
	if err != nil {
		return "", err
	}
	for _, p := range st.Peer {
		if strings.TrimSuffix(p.DNSName, ".") != f.fqdn || len(p.PeerAPIURL) == 0 {
			continue
		}
		u := p.PeerAPIURL[len(p.PeerAPIURL)-1]
		for _, cand := range p.PeerAPIURL {
			if strings.Contains(cand, "[") { // prefer IPv6, as the real relays and TestFunnel do
				u = cand
			}
		}
		return strings.TrimPrefix(u, "http://"), nil
	}
	return "", fmt.Errorf("target %s is not a peer of the ingress node (yet)", f.fqdn)
}

// Close stops accepting, drops live relays and waits for their goroutines.
func (f *funnelEntry) Close() {
	f.mu.Lock()
	f.closing = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.ln.Close()
	f.wg.Wait()
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func closeWrite(c net.Conn) {
	if bc, ok := c.(*bufferedConn); ok {
		c = bc.Conn
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// markIngress flags the ingress node UnsignedPeerAPIOnly, as real Funnel relays appear in
// netmaps, and waits until the gateway node sees it that way.
func (n *Net) markIngress(ctx context.Context) error {
	ing := n.nodes[NodeIngress].info
	var k key.NodePublic
	if err := k.UnmarshalText([]byte(ing.NodeKey)); err != nil {
		return fmt.Errorf("ingress node key: %w", err)
	}
	n.control.SetUnsignedPeerAPIOnly(k, true)
	lc, err := n.nodes[NodeGateway].srv.LocalClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, ingressDialTimeout)
	defer cancel()
	for {
		res, err := lc.WhoIs(ctx, ing.IPs[0])
		if err == nil && res.Node.UnsignedPeerAPIOnly {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway never saw the ingress node as a Funnel relay: %w", ctx.Err())
		case <-time.After(derpPollInterval):
		}
	}
}
