package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"

	"tailscale.com/tsnet"
)

// ErrStdinClosed is the cancellation cause when the parent closes our stdin.
var ErrStdinClosed = errors.New("stdin closed: parent went away")

// Run starts the tsnet node described by cfg, hands the handshake to the parent (stdout or
// cfg.HandshakeFile) and blocks until ctx is cancelled or, with cfg.WatchStdin, stdin reaches
// EOF. It always closes the node before returning. A nil error means a clean shutdown.
func Run(ctx context.Context, cfg Config, stdin io.Reader, stdout, stderr io.Writer) error {
	logger := log.New(stderr, "clawgate-tsnet: ", log.LstdFlags|log.Lmsgprefix)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if cfg.WatchStdin && stdin != nil {
		// This goroutine blocks in Read and cannot be interrupted; it ends with the process (or
		// when the parent closes the pipe). It only ever cancels ctx.
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			cancel(ErrStdinClosed)
		}()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	srv := newServer(cfg, logger)
	defer func() {
		if err := srv.Close(); err != nil {
			logger.Printf("close: %v", err)
		}
	}()
	hs, err := start(ctx, srv, cfg)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return fmt.Errorf("start aborted: %w", cause)
		}
		return err
	}
	if err := hs.Write(cfg.HandshakeFile, stdout); err != nil {
		return err
	}
	logger.Printf("up as %s (%v); LocalAPI on %s", hs.DNSName, hs.TailscaleIPs, hs.LocalAPI.Address)
	<-ctx.Done()
	cause := context.Cause(ctx)
	logger.Printf("shutting down: %v", cause)
	if errors.Is(cause, ErrStdinClosed) || errors.Is(cause, context.Canceled) {
		return nil
	}
	return cause
}

func newServer(cfg Config, logger *log.Logger) *tsnet.Server {
	srv := &tsnet.Server{
		Dir:           cfg.StateDir,
		Hostname:      cfg.Hostname,
		ControlURL:    cfg.ControlURL,
		Ephemeral:     cfg.Ephemeral,
		AdvertiseTags: cfg.AdvertiseTags,
		AuthKey:       cfg.AuthKey,
		UserLogf:      logger.Printf,
	}
	if cfg.Verbose {
		backend := log.New(logger.Writer(), "clawgate-tsnet: backend: ", log.LstdFlags|log.Lmsgprefix)
		srv.Logf = backend.Printf
	}
	return srv
}

// start brings the node up (bounded by cfg.UpTimeout) and opens the Loopback LocalAPI. The serve
// config is reset by tsnet's first Up in a process, so the handshake is only produced after Up.
func start(ctx context.Context, srv *tsnet.Server, cfg Config) (Handshake, error) {
	upCtx := ctx
	if cfg.UpTimeout > 0 {
		var cancel context.CancelFunc
		upCtx, cancel = context.WithTimeout(ctx, cfg.UpTimeout)
		defer cancel()
	}
	st, err := srv.Up(upCtx)
	if err != nil {
		return Handshake{}, fmt.Errorf("tsnet up: %w", err)
	}
	addr, _, cred, err := srv.Loopback()
	if err != nil {
		return Handshake{}, fmt.Errorf("tsnet loopback: %w", err)
	}
	return NewHandshake(addr, cred, st, cfg.Hostname), nil
}
