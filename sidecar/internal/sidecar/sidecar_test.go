package sidecar

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clawgate/clawgate/sidecar/internal/lapi"
	"github.com/clawgate/clawgate/sidecar/testnet"
)

// helperEnv makes the test binary behave like cmd/clawgate-tsnet (see TestMain), so the tests
// exercise a real child process: real stdin/stdout pipes, signals and exit codes.
const helperEnv = "CLAWGATE_TSNET_TEST_HELPER"

// Bounds for the child process.
const (
	handshakeTimeout = 30 * time.Second
	exitTimeout      = 15 * time.Second
)

var tn *testnet.Net

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperMain())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	n, err := testnet.Start(ctx, testnet.Config{SidecarNodes: []string{"gw", "gw2", "gw3", "gw4"}})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testnet:", err)
		os.Exit(1)
	}
	tn = n
	code := m.Run()
	n.Close()
	os.Exit(code)
}

// helperMain mirrors cmd/clawgate-tsnet/main.go.
func helperMain() int {
	cfg, err := ParseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := Run(ctx, cfg, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a running sidecar process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	done   chan error
}

// startChild runs the sidecar for the pre-authorised name with extra args; authKey "" omits it.
func startChild(t *testing.T, name, authKey string, args ...string) *child {
	t.Helper()
	m := tn.Manifest()
	sc := m.Sidecars[name]
	args = append([]string{"--hostname", sc.Hostname, "--state-dir", sc.StateDir, "--control-url", m.ControlURL, "--up-timeout", "20s"}, args...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	for k, v := range m.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if authKey != "" {
		cmd.Env = append(cmd.Env, EnvAuthKey+"="+authKey)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout), done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		if t.Failed() || testing.Verbose() {
			t.Logf("sidecar %v stderr:\n%s", cmd.Args[1:], stderr.String())
		}
	})
	return c
}

// handshake reads the one stdout line, bounded in time.
func (c *child) handshake(t *testing.T) Handshake {
	t.Helper()
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() { l, err := c.stdout.ReadString('\n'); ch <- res{l, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("no handshake: %v", r.err)
		}
		return decodeHandshake(t, r.line)
	case <-time.After(handshakeTimeout):
		t.Fatal("no handshake within", handshakeTimeout)
	}
	return Handshake{}
}

func decodeHandshake(t *testing.T, line string) Handshake {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	var h Handshake
	if err := dec.Decode(&h); err != nil {
		t.Fatalf("handshake %q: %v", line, err)
	}
	return h
}

// waitExit asserts the process exits with code want within exitTimeout.
func (c *child) waitExit(t *testing.T, want int) {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err // for Cleanup
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Fatalf("exit code %d, want %d", code, want)
		}
	case <-time.After(exitTimeout):
		t.Fatal("sidecar did not exit within", exitTimeout)
	}
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func checkHandshake(t *testing.T, h Handshake, name string) {
	t.Helper()
	fqdn := tn.Manifest().Sidecars[name].FQDN
	if h.V != 1 || h.LocalAPI.Network != "tcp" || !strings.HasPrefix(h.LocalAPI.Address, "127.0.0.1:") ||
		!hex32.MatchString(h.LocalAPI.Password) || h.DNSName != fqdn+"." || h.Hostname != name || len(h.TailscaleIPs) != 2 {
		t.Fatalf("handshake %+v", h)
	}
	for _, ip := range h.TailscaleIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			t.Fatalf("handshake IP %q: %v", ip, err)
		}
	}
}

func statusOf(t *testing.T, ep lapi.Endpoint) (state, dnsName string, ips []string) {
	t.Helper()
	var st struct {
		BackendState string
		TailscaleIPs []string
		Self         struct{ DNSName string }
	}
	c := lapi.New(ep)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.JSON(ctx, "GET", "status?peers=false", nil, &st); err != nil {
		t.Fatal(err)
	}
	return st.BackendState, st.Self.DNSName, st.TailscaleIPs
}

func TestHandshakeLocalAPIAndStdinEOF(t *testing.T) {
	c := startChild(t, "gw", tn.Manifest().AuthKey)
	h := c.handshake(t)
	checkHandshake(t, h, "gw")
	state, dns, ips := statusOf(t, h.LocalAPI)
	if state != "Running" || dns != h.DNSName || strings.Join(ips, ",") != strings.Join(h.TailscaleIPs, ",") {
		t.Fatalf("status %s %s %v disagrees with handshake %+v", state, dns, ips, h)
	}
	req, _ := http.NewRequest("GET", "http://"+h.LocalAPI.Address+"/localapi/v0/status", nil)
	req.Header.Set("Sec-Tailscale", "localapi")
	req.SetBasicAuth("", strings.Repeat("0", 32))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("wrong password: HTTP %d, want 403", res.StatusCode)
	}
	c.stdin.Close()
	c.waitExit(t, 0)
	if rest, _ := io.ReadAll(c.stdout); len(rest) != 0 {
		t.Fatalf("stdout has more than the handshake line: %q", rest)
	}
}

func TestHandshakeFileSIGTERMAndStatePersists(t *testing.T) {
	hsFile := filepath.Join(t.TempDir(), "hs.json")
	c := startChild(t, "gw2", tn.Manifest().AuthKey, "--handshake-file", hsFile)
	var line []byte
	deadline := time.Now().Add(handshakeTimeout)
	for len(line) == 0 && time.Now().Before(deadline) {
		line, _ = os.ReadFile(hsFile)
		time.Sleep(50 * time.Millisecond)
	}
	h := decodeHandshake(t, string(line))
	checkHandshake(t, h, "gw2")
	if fi, err := os.Stat(hsFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("handshake file mode: %v %v", fi.Mode(), err)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.waitExit(t, 0)
	if rest, _ := io.ReadAll(c.stdout); len(rest) != 0 {
		t.Fatalf("stdout used despite --handshake-file: %q", rest)
	}

	// Restart on the same state dir: the node identity must persist (threats.md SL-8). testcontrol
	// checks its auth key on every registration, even of a known node, so pass it again.
	again := startChild(t, "gw2", tn.Manifest().AuthKey)
	h2 := again.handshake(t)
	if h2.DNSName != h.DNSName || strings.Join(h2.TailscaleIPs, ",") != strings.Join(h.TailscaleIPs, ",") {
		t.Fatalf("identity changed across restart: %+v vs %+v", h2, h)
	}
	if h2.LocalAPI.Password == h.LocalAPI.Password {
		t.Fatal("LocalAPI credential reused across restarts")
	}
	again.stdin.Close()
	again.waitExit(t, 0)
}

func TestBadAuthKeyFailsStartup(t *testing.T) {
	c := startChild(t, "gw4", "tskey-auth-wrong", "--up-timeout", "3s")
	c.waitExit(t, 1)
}
