// Command clawgate-tsnet is clawgate's Tailscale sidecar: a tsnet node whose LocalAPI is handed to
// the Rust gateway as one JSON line on stdout (or --handshake-file). See sidecar/README.md.
//
// Exit status: 0 after a clean shutdown (SIGTERM, SIGINT, stdin EOF), 1 on any failure, 2 on a
// usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/clawgate/clawgate/sidecar/internal/sidecar"
)

func main() {
	cfg, err := sidecar.ParseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "clawgate-tsnet: %v\n", err)
		os.Exit(2)
	}
	// The key now lives in cfg only; keep it out of anything that inspects our environment.
	os.Unsetenv(sidecar.EnvAuthKey)
	os.Unsetenv(sidecar.EnvAuthKeyAlt)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := sidecar.Run(ctx, cfg, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "clawgate-tsnet: %v\n", err)
		os.Exit(1)
	}
}
