package sidecar

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("tskey-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig([]string{"--state-dir", dir, "--advertise-tags", "tag:a, tag:b", "--ephemeral"},
		env(map[string]string{EnvAuthKey: "tskey-env", EnvHostname: "gwhost"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AuthKey != "tskey-env" || cfg.Hostname != "gwhost" || !cfg.Ephemeral || len(cfg.AdvertiseTags) != 2 || cfg.AdvertiseTags[1] != "tag:b" || !cfg.WatchStdin {
		t.Fatalf("cfg %+v", cfg)
	}
	cfg, err = ParseConfig([]string{"--state-dir", dir, "--authkey-file", keyFile}, env(map[string]string{EnvAuthKey: "tskey-env"}), io.Discard)
	if err != nil || cfg.AuthKey != "tskey-file" {
		t.Fatalf("file key: %q %v", cfg.AuthKey, err)
	}
	cfg, err = ParseConfig(nil, env(map[string]string{EnvStateDir: dir, EnvAuthKeyAlt: "tskey-alt"}), io.Discard)
	if err != nil || cfg.AuthKey != "tskey-alt" || cfg.StateDir != dir {
		t.Fatalf("env-only config: %+v %v", cfg, err)
	}
}

func TestParseConfigRejects(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig([]string{"--state-dir", dir, "--authkey", "tskey-x"}, env(nil), io.Discard); !errors.Is(err, ErrAuthKeyArgv) {
		t.Errorf("--authkey in argv: %v, want ErrAuthKeyArgv", err)
	}
	for name, args := range map[string][]string{
		"no state dir":     {},
		"bad tag":          {"--state-dir", dir, "--advertise-tags", "ops"},
		"bad hostname":     {"--state-dir", dir, "--hostname", "a.b"},
		"empty key file":   {"--state-dir", dir, "--authkey-file", empty},
		"missing key file": {"--state-dir", dir, "--authkey-file", filepath.Join(dir, "nope")},
		"stray argument":   {"--state-dir", dir, "extra"},
	} {
		if _, err := ParseConfig(args, env(nil), io.Discard); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
