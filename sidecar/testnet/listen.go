package testnet

import (
	"fmt"
	"net/netip"
)

// listenIP validates Config.ListenIP: "" means loopback; otherwise it must be a loopback or
// private (RFC 1918 / ULA) unicast address of this host, such as the host end of a test's veth
// pair, so a network namespace can reach control, DERP, STUN and the Funnel entries. A public
// address is refused: the harness never serves beyond the machine and the tests' own links.
func listenIP(s string) (string, error) {
	if s == "" {
		return loopbackIP, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", s, err)
	}
	if !a.Is4() || !(a.IsLoopback() || a.IsPrivate()) {
		return "", fmt.Errorf("listen address %q: must be an IPv4 loopback or private address", s)
	}
	return a.String(), nil
}
