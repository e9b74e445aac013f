package testnet

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"

	"tailscale.com/derp/derpserver"
	"tailscale.com/net/stun"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/types/logger"
)

// loopbackIP is the address the harness binds by default; DERP and control are IP literals so no
// DNS lookup and no Tailscale-operated server is ever contacted (tailscale.md §6.3). Config.ListenIP
// replaces it for control, DERP, STUN and the Funnel entries (see listen.go).
const loopbackIP = "127.0.0.1"

// relay is an in-process DERP server (TLS, self-signed; clients skip verification because the
// map marks the node InsecureForTests) plus a STUN responder, both on the listen address ip.
type relay struct {
	derp   *derpserver.Server
	https  *httptest.Server
	stun   *net.UDPConn
	stunWG sync.WaitGroup
	Map    *tailcfg.DERPMap
}

// startRelay is the non-test equivalent of tstest/integration.RunDERPAndSTUN.
func startRelay(logf logger.Logf, ip string) (*relay, error) {
	r := &relay{derp: derpserver.New(key.NewNode(), logf)}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, err
	}
	r.https = httptest.NewUnstartedServer(derpserver.Handler(r.derp))
	r.https.Listener.Close()
	r.https.Listener = ln
	r.https.Config.ErrorLog = logger.StdLogger(logf)
	r.https.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	r.https.StartTLS()

	r.stun, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		r.Close()
		return nil, err
	}
	r.stunWG.Add(1)
	go r.serveSTUN()

	r.Map = &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{
		1: {RegionID: 1, RegionCode: "test", RegionName: "testnet", Nodes: []*tailcfg.DERPNode{{
			Name:             "t1",
			RegionID:         1,
			HostName:         ip,
			IPv4:             ip,
			IPv6:             "none",
			STUNPort:         r.stun.LocalAddr().(*net.UDPAddr).Port,
			DERPPort:         ln.Addr().(*net.TCPAddr).Port,
			InsecureForTests: true,
			STUNTestIP:       ip,
		}}},
	}}
	return r, nil
}

func (r *relay) serveSTUN() {
	defer r.stunWG.Done()
	buf := make([]byte, 64<<10)
	for {
		n, src, err := r.stun.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || !stun.Is(buf[:n]) {
			continue
		}
		txid, err := stun.ParseBindingRequest(buf[:n])
		if err != nil {
			continue
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		_, _ = r.stun.WriteToUDPAddrPort(stun.Response(txid, src), src)
	}
}

// Close stops DERP and STUN and waits for the STUN loop to end.
func (r *relay) Close() {
	if r.stun != nil {
		r.stun.Close()
		r.stunWG.Wait()
	}
	if r.https != nil {
		r.https.Close()
	}
	r.derp.Close()
}
