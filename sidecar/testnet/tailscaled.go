package testnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/clawgate/clawgate/sidecar/internal/lapi"
	"tailscale.com/ipn/ipnstate"
)

// NodeDaemon is the manifest name of the real tailscaled started with --tailscaled.
const NodeDaemon = "daemon"

// Timeouts for the real daemon: start-up is a local exec plus a login against loopback control.
const (
	daemonReadyTimeout = 15 * time.Second
	daemonStopTimeout  = 5 * time.Second
	daemonPollInterval = 50 * time.Millisecond
)

// daemon is a real tailscaled in userspace-networking mode, logged in to the harness control.
type daemon struct {
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
}

// daemonSpec is how one real tailscaled runs: its name (hostname and manifest key), state dir
// (which also holds its LocalAPI socket and log), the command line up to and including the
// tailscaled binary, and the flags beyond the common ones for tailscaled and `tailscale up`.
type daemonSpec struct {
	name, dir     string
	argv          []string
	flags, upArgs []string
}

// startDaemon runs tailscaled in userspace-networking mode (and the tailscale CLI for `up`) built
// from the pinned module, as node NodeDaemon with a SOCKS5 proxy on loopback.
func (n *Net) startDaemon(ctx context.Context, tailscaled, cli string) (*daemon, NodeInfo, error) {
	socksAddr, err := freeLoopbackPort()
	if err != nil {
		return nil, NodeInfo{}, err
	}
	d, info, err := n.runDaemon(ctx, cli, daemonSpec{
		name: NodeDaemon, dir: filepath.Join(n.root, "tailscaled"), argv: []string{tailscaled},
		flags:  []string{"--tun=userspace-networking", "--socks5-server=" + socksAddr},
		upArgs: []string{"--accept-dns=false"},
	})
	if err != nil {
		return nil, NodeInfo{}, err
	}
	info.SOCKS5 = SOCKS5{Address: socksAddr}
	return d, info, nil
}

// runDaemon seeds the node's certificate, starts tailscaled (dying with the harness), logs it in
// and describes it; on error nothing is left running.
func (n *Net) runDaemon(ctx context.Context, cli string, spec daemonSpec) (*daemon, NodeInfo, error) {
	sock := filepath.Join(spec.dir, "tailscaled.sock")
	if err := n.ca.seed(spec.dir, spec.name+"."+n.suffix); err != nil {
		return nil, NodeInfo{}, err
	}
	lf, err := os.OpenFile(filepath.Join(spec.dir, "tailscaled.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, NodeInfo{}, err
	}
	args := append(spec.argv[1:], "--statedir="+spec.dir, "--socket="+sock, "--port=0", "--no-logs-no-support")
	cmd := exec.Command(spec.argv[0], append(args, spec.flags...)...)
	cmd.Env = append(os.Environ(), envList(OfflineEnv)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, NodeInfo{}, fmt.Errorf("start tailscaled %s: %w", spec.name, err)
	}
	d := &daemon{cmd: cmd, log: lf, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(d.exited) }()

	info, err := n.loginDaemon(ctx, d, cli, sock, spec)
	if err != nil {
		d.stop()
		return nil, NodeInfo{}, fmt.Errorf("tailscaled %s (log %s): %w", spec.name, lf.Name(), err)
	}
	info.StateDir = spec.dir
	info.LocalAPI = lapi.Endpoint{Network: "unix", Address: sock}
	return d, info, nil
}

// loginDaemon waits for the LocalAPI socket, runs `tailscale up` and waits until Running with a
// home DERP, then reads the node's description.
func (n *Net) loginDaemon(ctx context.Context, d *daemon, cli, sock string, spec daemonSpec) (NodeInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, daemonReadyTimeout)
	defer cancel()
	c := lapi.New(lapi.Endpoint{Network: "unix", Address: sock})
	defer c.Close()
	var st ipnstate.Status
	if err := d.poll(ctx, func() bool { return c.JSON(ctx, "GET", "status?peers=false", nil, &st) == nil }); err != nil {
		return NodeInfo{}, fmt.Errorf("LocalAPI socket never answered: %w", err)
	}
	args := append([]string{"--socket=" + sock, "up", "--login-server=" + n.control.BaseURL(),
		"--auth-key=" + n.authKey, "--hostname=" + spec.name, "--timeout=10s"}, spec.upArgs...)
	up := exec.CommandContext(ctx, cli, args...)
	up.Env = append(os.Environ(), envList(OfflineEnv)...)
	if out, err := up.CombinedOutput(); err != nil {
		return NodeInfo{}, fmt.Errorf("tailscale up: %w: %s", err, out)
	}
	running := func() bool {
		st = ipnstate.Status{}
		return c.JSON(ctx, "GET", "status?peers=false", nil, &st) == nil &&
			st.BackendState == "Running" && st.Self != nil && st.Self.Relay != ""
	}
	if err := d.poll(ctx, running); err != nil {
		return NodeInfo{}, fmt.Errorf("not Running with a home DERP (state %q): %w", st.BackendState, err)
	}
	return nodeInfoFromStatus(&st, ""), nil
}

// poll calls ok until it reports true, the daemon exits or ctx ends.
func (d *daemon) poll(ctx context.Context, ok func() bool) error {
	for !ok() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.exited:
			return errors.New("tailscaled exited")
		case <-time.After(daemonPollInterval):
		}
	}
	return nil
}

// stop sends SIGTERM, waits a bounded time, then kills; it always reaps the process.
func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(daemonStopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	d.log.Close()
}

func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(loopbackIP, "0"))
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}
