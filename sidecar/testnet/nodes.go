package testnet

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/clawgate/clawgate/sidecar/internal/lapi"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/tsnet"
)

// Built-in node names (tailscale.md §8.6 recipe, named for clawgate's tests).
const (
	NodeGateway = "london"  // the gateway's node
	NodeUser    = "vienna"  // an untagged node logged in as a user
	NodeTagged  = "tagged"  // a tagged node (Node.Tags non-empty)
	NodeIngress = "ingress" // simulated Funnel ingress relay (UnsignedPeerAPIOnly)
)

// TestTag is the tag the "tagged" node carries; TagOwners lets testcontrol apply it.
const TestTag = "tag:testnet"

// derpPollInterval is how often we check that a node reached its home DERP.
const derpPollInterval = 20 * time.Millisecond

type nodeSpec struct {
	name string
	tags []string
}

func builtinNodes() []nodeSpec {
	return []nodeSpec{
		{name: NodeGateway}, {name: NodeUser}, {name: NodeTagged, tags: []string{TestTag}}, {name: NodeIngress},
	}
}

// node is one in-process tsnet node with its published description.
type node struct {
	srv     *tsnet.Server
	logFile *os.File
	info    NodeInfo
}

// startNode creates, pre-seeds and brings up one tsnet node, then opens its Loopback
// (LocalAPI + SOCKS5). The caller owns Close.
func (n *Net) startNode(ctx context.Context, spec nodeSpec) (*node, error) {
	dir := filepath.Join(n.root, "nodes", spec.name)
	fqdn := spec.name + "." + n.suffix
	if err := n.ca.seed(dir, fqdn); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(filepath.Join(dir, "backend.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	nd := &node{logFile: lf, srv: &tsnet.Server{
		Dir:           dir,
		Hostname:      spec.name,
		ControlURL:    n.control.BaseURL(),
		AuthKey:       n.authKey,
		AdvertiseTags: spec.tags,
		Logf:          log.New(lf, "", log.LstdFlags|log.Lmicroseconds).Printf,
		UserLogf:      logfWithPrefix(n.logf, spec.name+": "),
	}}
	st, err := nd.srv.Up(ctx)
	if err == nil {
		err = waitHomeDERP(ctx, nd.srv)
	}
	if err != nil {
		nd.close()
		return nil, fmt.Errorf("node %s: %w", spec.name, err)
	}
	addr, proxyCred, cred, err := nd.srv.Loopback()
	if err != nil {
		nd.close()
		return nil, fmt.Errorf("node %s loopback: %w", spec.name, err)
	}
	nd.info = nodeInfoFromStatus(st, dir)
	nd.info.LocalAPI = lapi.Endpoint{Network: "tcp", Address: addr, Password: cred}
	nd.info.SOCKS5 = SOCKS5{Address: addr, Username: "tsnet", Password: proxyCred}
	return nd, nil
}

func (nd *node) close() {
	_ = nd.srv.Close()
	_ = nd.logFile.Close()
}

// nodeInfoFromStatus extracts the manifest description of the node that produced st.
func nodeInfoFromStatus(st *ipnstate.Status, stateDir string) NodeInfo {
	info := NodeInfo{StateDir: stateDir, IPs: []string{}, Tags: []string{}}
	for _, ip := range st.TailscaleIPs {
		info.IPs = append(info.IPs, ip.String())
	}
	if st.Self == nil {
		return info
	}
	info.FQDN = strings.TrimSuffix(st.Self.DNSName, ".")
	info.NodeKey = st.Self.PublicKey.String()
	if st.Self.Tags != nil {
		info.Tags = st.Self.Tags.AsSlice()
	}
	info.Tagged = len(info.Tags) > 0
	if u, ok := st.User[st.Self.UserID]; ok {
		info.Login = u.LoginName
	}
	return info
}

// waitHomeDERP blocks until the node has a home DERP region it received packets from; before
// that, peers' first packets can be dropped (tsnet_test.go waitForHomeDERPConnected).
func waitHomeDERP(ctx context.Context, s *tsnet.Server) error {
	h := s.Sys().HealthTracker.Get()
	ms := s.Sys().MagicSock.Get()
	for {
		if r := ms.GetLastNetcheckReport(ctx); r != nil && r.PreferredDERP != 0 &&
			!h.GetDERPRegionReceivedTime(r.PreferredDERP).IsZero() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for home DERP: %w", ctx.Err())
		case <-time.After(derpPollInterval):
		}
	}
}

func logfWithPrefix(logf func(string, ...any), prefix string) func(string, ...any) {
	return func(format string, args ...any) { logf(prefix+format, args...) }
}
