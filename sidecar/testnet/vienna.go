package testnet

// vienna: a real client host inside the tailnet for unmodified programs (issue 13 §1). The
// caller (a test) owns a network namespace with a veth link whose host end carries
// Config.ListenIP; the harness runs the pinned tailscaled there with a kernel TUN and MagicDNS
// accepted, so `<node>.<suffix>` resolves through 100.100.100.100 for every program started with
// `ip netns exec <netns>`.
//
// Invariants:
//   - tailscaled runs in its own mount namespace (the one `ip netns exec` makes) whose /etc is a
//     private overlay (upper layer on a tmpfs), except /etc/resolv.conf, which stays bound to the
//     namespace's /etc/netns/<netns>/resolv.conf: the DNS manager ("direct" mode for a plain
//     resolv.conf) writes MagicDNS there, and its backup and temp files never reach the host's
//     /etc;
//   - it dies with the harness (Pdeathsig) and is stopped with SIGTERM (which restores the
//     namespace's resolv.conf); the namespace itself is the caller's to delete.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// NodeVienna is the manifest name (and hostname) of the kernel-TUN tailscaled in a namespace; the
// built-in tsnet node "vienna" keeps its name for the SOCKS5-based tests.
const NodeVienna = "vienna-tun"

// ViennaConfig names the namespace and the tailscaled/tailscale binaries for NodeVienna.
type ViennaConfig struct {
	Netns      string // an existing network namespace (`ip netns add`), linked to ListenIP
	Tailscaled string // tailscaled built from the pinned module
	CLI        string // tailscale CLI; "" = next to Tailscaled
}

// privateEtc is run by `sh -c` inside `ip netns exec`: $0 is an empty directory for a tmpfs,
// "$@" the tailscaled command line. It keeps a handle on the namespace's resolv.conf (bound
// there by `ip netns exec`), lays a private overlay over /etc and binds resolv.conf back.
const privateEtc = `set -e
mount -t tmpfs -o mode=0700 tmpfs "$0"
mkdir "$0/upper" "$0/work"
touch "$0/resolv.conf"
mount --bind /etc/resolv.conf "$0/resolv.conf"
mount -t overlay overlay -o lowerdir=/etc,upperdir="$0/upper",workdir="$0/work" /etc
mount --bind "$0/resolv.conf" /etc/resolv.conf
exec "$@"`

// startVienna runs tailscaled in cfg.Netns (kernel TUN "tailscale0", MagicDNS on) as NodeVienna.
func (n *Net) startVienna(ctx context.Context, cfg ViennaConfig) error {
	if cfg.Netns == "" || cfg.Tailscaled == "" {
		return fmt.Errorf("vienna: a network namespace and a tailscaled binary are required")
	}
	if n.listenIP == loopbackIP {
		return fmt.Errorf("vienna: needs a listen address reachable from namespace %q", cfg.Netns)
	}
	rc := filepath.Join("/etc/netns", cfg.Netns, "resolv.conf")
	if _, err := os.Stat(rc); err != nil {
		return fmt.Errorf("vienna: namespace %q needs its own resolv.conf: %w", cfg.Netns, err)
	}
	cli := cfg.CLI
	if cli == "" {
		cli = filepath.Join(filepath.Dir(cfg.Tailscaled), "tailscale")
	}
	dir := filepath.Join(n.root, NodeVienna)
	mnt := filepath.Join(dir, "etc-overlay")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return err
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		return fmt.Errorf("vienna: %w", err)
	}
	d, info, err := n.runDaemon(ctx, cli, daemonSpec{
		name: NodeVienna, dir: dir,
		argv:   []string{ip, "netns", "exec", cfg.Netns, "sh", "-c", privateEtc, mnt, cfg.Tailscaled},
		flags:  []string{"--tun=tailscale0"},
		upArgs: []string{"--accept-dns=true", "--netfilter-mode=off"},
	})
	if err != nil {
		return fmt.Errorf("vienna: %w", err)
	}
	info.Netns = cfg.Netns
	n.vienna = d
	n.manifest.Nodes[NodeVienna] = info
	return nil
}
