package sidecar

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/clawgate/clawgate/sidecar/internal/lapi"
	"tailscale.com/ipn/ipnstate"
)

// HandshakeVersion is the "v" field; bump it on any incompatible change of Handshake.
const HandshakeVersion = 1

// Handshake is the single JSON line handed to the parent once the node is Running:
//
//	{"v":1,"localapi":{"network":"tcp","address":"127.0.0.1:PORT","password":"…"},
//	 "dnsName":"london.<suffix>.","tailscaleIPs":["100.x.y.z","fd7a:…"],"hostname":"london"}
//
// DNSName keeps the trailing dot (as LocalAPI status does). Hostname is the first label of DNSName
// (the name control actually assigned), falling back to the configured hostname.
type Handshake struct {
	V            int           `json:"v"`
	LocalAPI     lapi.Endpoint `json:"localapi"`
	DNSName      string        `json:"dnsName"`
	TailscaleIPs []string      `json:"tailscaleIPs"`
	Hostname     string        `json:"hostname"`
}

// NewHandshake builds the handshake from the Loopback() results and the status returned by Up.
func NewHandshake(addr, localAPICred string, st *ipnstate.Status, configuredHost string) Handshake {
	h := Handshake{
		V:            HandshakeVersion,
		LocalAPI:     lapi.Endpoint{Network: "tcp", Address: addr, Password: localAPICred},
		TailscaleIPs: []string{},
		Hostname:     configuredHost,
	}
	for _, ip := range st.TailscaleIPs {
		h.TailscaleIPs = append(h.TailscaleIPs, ip.String())
	}
	if st.Self != nil {
		h.DNSName = st.Self.DNSName
		if label, _, _ := strings.Cut(st.Self.DNSName, "."); label != "" {
			h.Hostname = label
		}
	}
	return h
}

// Write emits h as one line: to the file at path (created 0600 via an atomic rename, so a reader
// never sees a partial line) or, when path is empty, to w.
func (h Handshake) Write(path string, w io.Writer) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "" {
		_, err = w.Write(b)
		return err
	}
	return writeFile0600(path, b)
}

func writeFile0600(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".handshake-*")
	if err != nil {
		return fmt.Errorf("handshake file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("handshake file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("handshake file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("handshake file: %w", err)
	}
	return os.Rename(tmp, path)
}
