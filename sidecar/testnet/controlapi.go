package testnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"tailscale.com/tailcfg"
)

// maxControlBody bounds request bodies of the control API.
const maxControlBody = 1 << 20

// controlAPI is the harness's small HTTP endpoint for changing the tailnet during a test. It is
// bound to 127.0.0.1 and unauthenticated: it is a test fixture, never shipped in production.
//
//	GET  /nodes                            → [{name, nodeKey, fqdn, tags, capMap, unsignedPeerAPIOnly}]
//	POST /caps     {"node","caps":{cap: [values]|null}} merge node caps; null removes a cap
//	POST /app-caps {"caps":{peerCap: [values]}}          replace the global *→* app grants (whois CapMap)
//	POST /tags     {"node","tags":["tag:x"]}             set a node's tags ([] untags it)
//	POST /certs    {"fqdn","stateDir"[,"age","validFor"]} pre-seed <stateDir>/certs/<fqdn>.{crt,key}
//	               age = now - NotBefore, validFor = NotAfter - NotBefore, in seconds; defaults:
//	               NotBefore = now - 1h, NotAfter = now + 30 days (see leafValidity for what
//	               tailscaled does with an expiring, expired or future leaf)
//
// Successful POSTs answer 204. Errors are plain text with 400/404/405.
func (n *Net) controlAPIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /nodes", n.handleNodes)
	mux.HandleFunc("POST /caps", n.handleCaps)
	mux.HandleFunc("POST /app-caps", n.handleAppCaps)
	mux.HandleFunc("POST /tags", n.handleTags)
	mux.HandleFunc("POST /certs", n.handleCerts)
	return mux
}

type nodeView struct {
	Name                string             `json:"name"`
	NodeKey             string             `json:"nodeKey"`
	FQDN                string             `json:"fqdn"`
	Tags                []string           `json:"tags"`
	CapMap              tailcfg.NodeCapMap `json:"capMap"`
	UnsignedPeerAPIOnly bool               `json:"unsignedPeerAPIOnly"`
}

func (n *Net) handleNodes(w http.ResponseWriter, _ *http.Request) {
	out := []nodeView{}
	for _, nd := range n.control.AllNodes() {
		out = append(out, nodeView{
			Name:    nd.Hostinfo.Hostname(),
			NodeKey: nd.Key.String(),
			FQDN:    strings.TrimSuffix(nd.Name, "."),
			Tags:    append([]string{}, nd.Tags...),
			CapMap:  nd.CapMap,
		})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (n *Net) handleCaps(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Node string                     `json:"node"`
		Caps map[string]json.RawMessage `json:"caps"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	nd, ok := n.lookupNode(w, req.Node)
	if !ok {
		return
	}
	n.capsMu.Lock() // serialise read-modify-write of cap maps
	defer n.capsMu.Unlock()
	caps := maps.Clone(nd.CapMap)
	if caps == nil {
		caps = tailcfg.NodeCapMap{}
	}
	for c, raw := range req.Caps {
		if string(raw) == "null" {
			delete(caps, tailcfg.NodeCapability(c))
			continue
		}
		var vals []tailcfg.RawMessage
		if err := json.Unmarshal(raw, &vals); err != nil {
			http.Error(w, fmt.Sprintf("cap %q: want a JSON array or null", c), http.StatusBadRequest)
			return
		}
		caps[tailcfg.NodeCapability(c)] = vals
	}
	// testcontrol sends the self node both CapMap (from SetNodeCapMap) and the deprecated
	// Capabilities list (from the stored node), and clients merge the two: update both.
	nd.CapMap = caps
	nd.Capabilities = slices.Collect(maps.Keys(caps))
	n.control.UpdateNode(nd)
	n.control.SetNodeCapMap(nd.Key, caps)
	w.WriteHeader(http.StatusNoContent)
}

func (n *Net) handleAppCaps(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Caps tailcfg.PeerCapMap `json:"caps"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	n.control.SetGlobalAppCaps(req.Caps)
	w.WriteHeader(http.StatusNoContent)
}

func (n *Net) handleTags(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Node string   `json:"node"`
		Tags []string `json:"tags"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	for _, t := range req.Tags {
		if !strings.HasPrefix(t, "tag:") {
			http.Error(w, fmt.Sprintf("invalid tag %q", t), http.StatusBadRequest)
			return
		}
	}
	nd, ok := n.lookupNode(w, req.Node)
	if !ok {
		return
	}
	nd.Tags = slices.Clone(req.Tags)
	n.control.UpdateNode(nd)
	w.WriteHeader(http.StatusNoContent)
}

func (n *Net) handleCerts(w http.ResponseWriter, r *http.Request) {
	var req struct {
		FQDN     string `json:"fqdn"`
		StateDir string `json:"stateDir"`
		Age      *int64 `json:"age"`      // seconds since NotBefore; negative = not yet valid
		ValidFor *int64 `json:"validFor"` // seconds from NotBefore to NotAfter
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if req.FQDN == "" || strings.ContainsAny(req.FQDN, "/\\") || !filepath.IsAbs(req.StateDir) {
		http.Error(w, "want fqdn (a DNS name) and an absolute stateDir", http.StatusBadRequest)
		return
	}
	v, err := requestedValidity(time.Now(), req.Age, req.ValidFor)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := n.ca.seedWith(req.StateDir, req.FQDN, v); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// lookupNode finds a node by its hostname (first MagicDNS label); it writes 404 when absent.
func (n *Net) lookupNode(w http.ResponseWriter, name string) (*tailcfg.Node, bool) {
	for _, nd := range n.control.AllNodes() {
		if nd.Hostinfo.Hostname() == name || strings.TrimSuffix(nd.Name, ".") == name+"."+n.suffix {
			return nd, true
		}
	}
	http.Error(w, fmt.Sprintf("no node named %q", name), http.StatusNotFound)
	return nil, false
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		msg := err.Error()
		if errors.As(err, &syn) {
			msg = "malformed JSON: " + msg
		}
		http.Error(w, msg, http.StatusBadRequest)
		return false
	}
	return true
}
