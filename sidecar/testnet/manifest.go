package testnet

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/clawgate/clawgate/sidecar/internal/lapi"
)

// Manifest is what the harness publishes (JSON, written atomically, mode 0600) once every node is
// Running. Field names are a contract with the Rust integration tests; add fields, never rename.
type Manifest struct {
	ControlURL     string `json:"controlURL"`
	ControlAPI     string `json:"controlAPI"`
	CACertPath     string `json:"caCertPath"`
	MagicDNSSuffix string `json:"magicDNSSuffix"`
	// AuthKey is the tailnet's (single, reusable) pre-auth key: testcontrol requires it from every
	// registering node, so only holders of the manifest can join.
	AuthKey string `json:"authKey"`
	// Env is the environment an external clawgate-tsnet or tailscaled needs to run offline
	// against this tailnet (dead ACME URL so pre-seeded certificates are used, no log upload,
	// no port mapping, no default-route requirement).
	Env   map[string]string   `json:"env"`
	Nodes map[string]NodeInfo `json:"nodes"`
	// Sidecars lists the names pre-authorised with --sidecar-node, with a state directory whose
	// certs/ already holds a certificate for the node's MagicDNS name.
	Sidecars map[string]SidecarInfo `json:"sidecars"`
	// Funnel maps a target node name to a local "funnel entry" (see FunnelEntry).
	Funnel map[string]FunnelEntry `json:"funnel"`
}

// NodeInfo describes one running node of the tailnet.
type NodeInfo struct {
	FQDN     string        `json:"fqdn"` // MagicDNS name without the trailing dot
	IPs      []string      `json:"ips"`  // Tailscale IPv4 then IPv6
	Login    string        `json:"login"`
	Tagged   bool          `json:"tagged"`
	Tags     []string      `json:"tags"`
	NodeKey  string        `json:"nodeKey"` // "nodekey:<hex>"
	StateDir string        `json:"stateDir"`
	LocalAPI lapi.Endpoint `json:"localapi"`
	SOCKS5   SOCKS5        `json:"socks5"`
	// Netns is the network namespace the node's tailscaled runs in (NodeVienna only).
	Netns string `json:"netns,omitempty"`
}

// SOCKS5 is a proxy into the tailnet from the host (MagicDNS names resolve). tsnet nodes require
// username "tsnet" and the password; tailscaled's --socks5-server has no authentication.
type SOCKS5 struct {
	Address  string `json:"address"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// SidecarInfo is what an external clawgate-tsnet needs to join as a pre-authorised name:
// run it with --hostname Hostname --state-dir StateDir --control-url controlURL, TS_AUTHKEY =
// authKey and the manifest's Env.
type SidecarInfo struct {
	Hostname string `json:"hostname"`
	FQDN     string `json:"fqdn"`
	StateDir string `json:"stateDir"`
}

// FunnelEntry simulates a public Funnel client: every TCP connection accepted on Address is
// carried by the "ingress" node to Target's PeerAPI /v0/ingress (as Tailscale's Funnel relays do)
// with Tailscale-Ingress-Src = SrcIP:<client's local port>. Speak TLS for Target's name through
// it. The target must have AllowFunnel[Target] in its serve config.
type FunnelEntry struct {
	Address string `json:"address"`
	Target  string `json:"target"` // "<fqdn>:443"
	SrcIP   string `json:"srcIP"`
}

// writeJSONFile writes v to path atomically with mode 0600.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".manifest-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
