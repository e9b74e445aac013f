// Package sidecar implements clawgate-tsnet: a tsnet node whose LocalAPI is handed to the Rust
// gateway over a one-line JSON handshake.
//
// Invariants:
//   - the auth key comes only from the TS_AUTHKEY / TS_AUTH_KEY environment or --authkey-file,
//     never from argv; it is never logged and is removed from the process environment once read;
//   - stdout carries exactly one line (the handshake) unless --handshake-file is given; all logs go
//     to stderr;
//   - the only listener opened is tsnet's Loopback() (LocalAPI + SOCKS5 on one 127.0.0.1 port);
//     exposure is driven by the gateway through the LocalAPI serve-config;
//   - state is persistent in the state directory (threats.md SL-8), created 0700.
package sidecar

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Environment variables read by the sidecar.
const (
	// EnvAuthKey is tsnet's own auth key variable; read here so it can be cleared after use.
	EnvAuthKey = "TS_AUTHKEY"
	// EnvAuthKeyAlt is tsnet's fallback spelling.
	EnvAuthKeyAlt = "TS_AUTH_KEY"
	// EnvControlURL selects the coordination server when --control-url is absent (tsnet's name).
	EnvControlURL = "TS_CONTROL_URL"
	// EnvHostname, EnvStateDir, EnvTags, EnvEphemeral mirror the flags for container deployments.
	EnvHostname  = "CLAWGATE_TSNET_HOSTNAME"
	EnvStateDir  = "CLAWGATE_TSNET_STATE_DIR"
	EnvTags      = "CLAWGATE_TSNET_ADVERTISE_TAGS"
	EnvEphemeral = "CLAWGATE_TSNET_EPHEMERAL"
)

// DefaultUpTimeout bounds how long we wait for the node to reach Running; an interactive login
// (no auth key) needs a human to open the printed URL, so this is minutes, not seconds.
const DefaultUpTimeout = 5 * time.Minute

// maxAuthKeyFile bounds the auth key file read; real keys are < 200 bytes.
const maxAuthKeyFile = 4 << 10

// Config is the validated sidecar configuration.
type Config struct {
	Hostname      string
	StateDir      string
	ControlURL    string // empty = tsnet default (Tailscale's control plane)
	Ephemeral     bool
	AdvertiseTags []string
	AuthKey       string // secret: never log
	HandshakeFile string // empty = stdout
	UpTimeout     time.Duration
	WatchStdin    bool // exit when stdin reaches EOF (parent died)
	Verbose       bool // backend logs to stderr
}

// ErrAuthKeyArgv is returned when an auth key is passed on the command line.
var ErrAuthKeyArgv = errors.New("the auth key must not be passed on the command line (visible in ps); use TS_AUTHKEY or --authkey-file")

// ParseConfig parses argv (without the program name) and the environment (getenv). stderr
// receives flag usage on error.
func ParseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("clawgate-tsnet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := Config{}
	var tags, authKeyFile, rejected string
	fs.StringVar(&c.Hostname, "hostname", orDefault(getenv(EnvHostname), "clawgate"), "tailnet hostname (env "+EnvHostname+")")
	fs.StringVar(&c.StateDir, "state-dir", getenv(EnvStateDir), "persistent tsnet state directory, required (env "+EnvStateDir+")")
	fs.StringVar(&c.ControlURL, "control-url", getenv(EnvControlURL), "coordination server URL (env "+EnvControlURL+"; default Tailscale)")
	fs.BoolVar(&c.Ephemeral, "ephemeral", getenv(EnvEphemeral) == "1" || getenv(EnvEphemeral) == "true", "register as an ephemeral node (env "+EnvEphemeral+")")
	fs.StringVar(&tags, "advertise-tags", getenv(EnvTags), "comma-separated tags to request, e.g. tag:gateway (env "+EnvTags+")")
	fs.StringVar(&authKeyFile, "authkey-file", "", "file holding the auth key (else env "+EnvAuthKey+")")
	fs.StringVar(&rejected, "authkey", "", "rejected: never pass secrets in argv")
	fs.StringVar(&c.HandshakeFile, "handshake-file", "", "write the handshake line to this file (mode 0600) instead of stdout")
	fs.DurationVar(&c.UpTimeout, "up-timeout", DefaultUpTimeout, "how long to wait for the node to come up (0 = forever)")
	fs.BoolVar(&c.WatchStdin, "exit-on-stdin-eof", true, "exit when stdin is closed (the parent died)")
	fs.BoolVar(&c.Verbose, "verbose", false, "log tailscale backend messages to stderr")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if rejected != "" {
		return Config{}, ErrAuthKeyArgv
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	c.AdvertiseTags = splitTags(tags)
	key, err := loadAuthKey(authKeyFile, getenv)
	if err != nil {
		return Config{}, err
	}
	c.AuthKey = key
	return c, c.validate()
}

func (c *Config) validate() error {
	if c.StateDir == "" {
		return errors.New("--state-dir is required: node identity and certificates must persist across restarts")
	}
	abs, err := filepath.Abs(c.StateDir)
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	c.StateDir = abs
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " ./") {
		return fmt.Errorf("invalid --hostname %q: want a single DNS label", c.Hostname)
	}
	for _, t := range c.AdvertiseTags {
		if !strings.HasPrefix(t, "tag:") || len(t) == len("tag:") {
			return fmt.Errorf("invalid tag %q: tags look like tag:name", t)
		}
	}
	if c.UpTimeout < 0 {
		return errors.New("--up-timeout must not be negative")
	}
	return nil
}

func loadAuthKey(path string, getenv func(string) string) (string, error) {
	if path == "" {
		return orDefault(getenv(EnvAuthKey), getenv(EnvAuthKeyAlt)), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("auth key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAuthKeyFile))
	if err != nil {
		return "", fmt.Errorf("auth key file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("auth key file %s is empty", path)
	}
	return key, nil
}

func splitTags(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
