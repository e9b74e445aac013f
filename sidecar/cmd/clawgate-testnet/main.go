// Command clawgate-testnet runs an offline tailnet on 127.0.0.1 for clawgate's integration tests
// (package testnet) and writes its JSON manifest to --manifest. It prints the same manifest as
// one line on stdout once everything is up, then runs until SIGTERM/SIGINT or stdin EOF, and
// removes its temporary state on the way out.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/clawgate/clawgate/sidecar/testnet"
)

// defaultStartTimeout bounds start-up; it normally takes a few seconds.
const defaultStartTimeout = 60 * time.Second

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var (
		manifest, dir, tailscaled, cli    string
		listenAddr, viennaNetns, viennaTS string
		sidecars                          multiFlag
		cpuProfile                        string
		verbose, watchStdin               bool
		startTimeout                      time.Duration
	)
	flag.StringVar(&manifest, "manifest", "", "write the JSON manifest here (required)")
	flag.StringVar(&dir, "dir", "", "working directory (kept on exit); default: a temp dir removed on exit")
	flag.Var(&sidecars, "sidecar-node", "pre-authorise NAME for an external clawgate-tsnet (repeatable)")
	flag.StringVar(&tailscaled, "tailscaled", "", "also run this tailscaled binary (userspace networking) as node \"daemon\"")
	flag.StringVar(&cli, "tailscale-cli", "", "tailscale CLI used for `up` (default: next to --tailscaled)")
	flag.StringVar(&listenAddr, "listen-addr", "", "IPv4 loopback/private address for control, DERP, STUN and Funnel entries (default 127.0.0.1)")
	flag.StringVar(&viennaNetns, "vienna-netns", "", "also run a kernel-TUN tailscaled (MagicDNS on) in this existing network namespace as node \"vienna-tun\" (needs --listen-addr)")
	flag.StringVar(&viennaTS, "vienna-tailscaled", "", "tailscaled for --vienna-netns (default: tailscaled next to this executable)")
	flag.BoolVar(&verbose, "verbose", false, "log control/DERP/harness messages to stderr")
	flag.BoolVar(&watchStdin, "exit-on-stdin-eof", true, "exit when stdin is closed")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a Go CPU profile of the whole run here (benchmark diagnosis)")
	flag.DurationVar(&startTimeout, "start-timeout", defaultStartTimeout, "give up if the tailnet is not up by then")
	flag.Parse()
	if manifest == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: clawgate-testnet --manifest PATH [--sidecar-node NAME]... [--tailscaled PATH] [--listen-addr IP --vienna-netns NS]")
		os.Exit(2)
	}
	logger := log.New(os.Stderr, "clawgate-testnet: ", log.LstdFlags|log.Lmsgprefix)
	logf := func(string, ...any) {}
	if verbose {
		logf = logger.Printf
	}
	stopProfile := func() {}
	if cpuProfile != "" {
		var err error
		if stopProfile, err = startCPUProfile(cpuProfile); err != nil {
			logger.Printf("cpuprofile: %v", err)
			os.Exit(1)
		}
	}
	cfg := testnet.Config{Root: dir, SidecarNodes: sidecars, Tailscaled: tailscaled,
		TailscaleCLI: cli, Logf: logf, ListenIP: listenAddr}
	if viennaNetns != "" {
		cfg.Vienna = &testnet.ViennaConfig{Netns: viennaNetns, Tailscaled: viennaTailscaled(viennaTS)}
	}
	if err := run(logger, cfg, manifest, startTimeout, watchStdin, stopProfile); err != nil {
		logger.Printf("%v", err)
		os.Exit(1)
	}
}

// viennaTailscaled is flagValue, else the tailscaled `make sidecar` puts next to this binary.
func viennaTailscaled(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	exe, err := os.Executable()
	if err != nil {
		return "tailscaled"
	}
	return filepath.Join(filepath.Dir(exe), "tailscaled")
}

// startCPUProfile profiles this process into path until the returned stop is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// run serves until ctx ends; stopProfile is called when a started tailnet shuts down, before
// the teardown (which must not count, and may be cut short by a caller's kill).
func run(logger *log.Logger, cfg testnet.Config, manifest string, startTimeout time.Duration, watchStdin bool,
	stopProfile func()) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if watchStdin {
		// Blocks in Read until EOF; it only cancels ctx and ends with the process.
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel(errors.New("stdin closed"))
		}()
	}
	began := time.Now()
	startCtx, startCancel := context.WithTimeout(ctx, startTimeout)
	n, err := testnet.Start(startCtx, cfg)
	startCancel()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer n.Close()
	if err := n.WriteManifest(manifest); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	line, err := json.Marshal(n.Manifest())
	if err != nil {
		return err
	}
	fmt.Printf("%s\n", line)
	logger.Printf("up in %v; manifest %s", time.Since(began).Round(time.Millisecond), manifest)
	<-ctx.Done()
	stopProfile()
	logger.Printf("shutting down: %v", context.Cause(ctx))
	return nil
}
