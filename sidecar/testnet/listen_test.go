package testnet

import "testing"

func TestListenIPAcceptsOnlyLoopbackOrPrivateIPv4(t *testing.T) {
	for in, want := range map[string]string{"": loopbackIP, "127.0.0.1": "127.0.0.1", "10.77.0.1": "10.77.0.1",
		"192.168.3.1": "192.168.3.1", "172.16.0.9": "172.16.0.9"} {
		if got, err := listenIP(in); err != nil || got != want {
			t.Errorf("listenIP(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"0.0.0.0", "8.8.8.8", "100.64.0.1", "::1", "fd00::1", "localhost", "10.0.0.1:80"} {
		if got, err := listenIP(bad); err == nil {
			t.Errorf("listenIP(%q) = %q, want an error", bad, got)
		}
	}
}

func TestViennaNeedsANamespaceReachableAddress(t *testing.T) {
	n := &Net{listenIP: loopbackIP}
	if err := n.startVienna(t.Context(), ViennaConfig{Netns: "x", Tailscaled: "/bin/true"}); err == nil {
		t.Fatal("vienna on a loopback-only harness must be refused")
	}
	if err := n.startVienna(t.Context(), ViennaConfig{}); err == nil {
		t.Fatal("vienna without a namespace must be refused")
	}
}
