package testnet

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const day = 24 * 60 * 60 // seconds

func ptr(v int64) *int64 { return &v }

func TestRequestedValidity(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	v, err := requestedValidity(now, nil, nil)
	if err != nil || v != defaultValidity(now) {
		t.Fatalf("default: %+v %v", v, err)
	}
	v, err = requestedValidity(now, ptr(85*day), ptr(90*day))
	if err != nil || !v.notBefore.Equal(now.Add(-85*24*time.Hour)) || !v.notAfter.Equal(now.Add(5*24*time.Hour)) {
		t.Fatalf("85 of 90 days: %+v %v", v, err)
	}
	v, err = requestedValidity(now, ptr(-3600), nil)
	if err != nil || !v.notBefore.Equal(now.Add(time.Hour)) || !v.notAfter.Equal(now.Add(leafLifetime)) {
		t.Fatalf("future NotBefore: %+v %v", v, err)
	}
	for _, bad := range []struct{ age, validFor *int64 }{
		{nil, ptr(0)}, {nil, ptr(-1)}, {ptr(11 * 365 * day), nil}, {nil, ptr(11 * 365 * day)},
		{ptr(-40 * day), nil}, // NotBefore after the default NotAfter
	} {
		if _, err := requestedValidity(now, bad.age, bad.validFor); err == nil {
			t.Errorf("age %v validFor %v accepted", deref(bad.age), deref(bad.validFor))
		}
	}
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// seededLeaf reads the leaf tailscaled will find in <stateDir>/certs/<fqdn>.crt.
func seededLeaf(t *testing.T, stateDir, fqdn string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, "certs", fqdn+".crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("no PEM in %s.crt", fqdn)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func TestControlAPICertsValidityWindow(t *testing.T) {
	dir, fqdn := t.TempDir(), "x."+DefaultSuffix
	before := time.Now()
	if code := postAPI(t, "/certs", map[string]any{"fqdn": fqdn, "stateDir": dir, "age": 85 * day, "validFor": 90 * day}); code != 204 {
		t.Fatalf("POST /certs: HTTP %d", code)
	}
	leaf := seededLeaf(t, dir, fqdn)
	left := leaf.NotAfter.Sub(before)
	if left < 5*24*time.Hour-time.Minute || left > 5*24*time.Hour+time.Minute {
		t.Errorf("NotAfter %v: %v left, want 5 days", leaf.NotAfter, left)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life != 90*24*time.Hour {
		t.Errorf("lifetime %v, want 90 days", life)
	}
	for _, body := range []map[string]any{
		{"fqdn": fqdn, "stateDir": dir, "validFor": 0},
		{"fqdn": fqdn, "stateDir": dir, "age": "old"},
		{"fqdn": fqdn, "stateDir": dir, "age": 100 * 365 * day},
	} {
		if code := postAPI(t, "/certs", body); code != 400 {
			t.Errorf("%v: HTTP %d, want 400", body, code)
		}
	}
}

// getCert asks node's LocalAPI for its own certificate; it returns the served leaf or the error.
func getCert(t *testing.T, node, fqdn string) (*x509.Certificate, error) {
	t.Helper()
	res, err := client(t, node).Do(testCtx(t), "GET", "cert/"+fqdn+"?type=cert", nil, nil)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("HTTP %d: %s", res.StatusCode, bytes.TrimSpace(body))
	}
	block, _ := pem.Decode(body)
	if block == nil {
		return nil, fmt.Errorf("no PEM in %.80q", body)
	}
	return x509.ParseCertificate(block.Bytes)
}

// TestNodeServesNearExpiryLeaf pins the behaviour leafValidity documents, on the "tagged" node
// (no other test asks for its certificate, so its renewal decision is not cached yet): a leaf
// with 5 of 90 days left is served as is while the async renewal fails against the dead ACME
// URL; an expired or future leaf is refused.
func TestNodeServesNearExpiryLeaf(t *testing.T) {
	m := shared.Manifest()
	info, fqdn := m.Nodes[NodeTagged], NodeTagged+"."+DefaultSuffix
	seed := func(body map[string]any) *x509.Certificate {
		t.Helper()
		body["fqdn"], body["stateDir"] = fqdn, info.StateDir
		if code := postAPI(t, "/certs", body); code != 204 {
			t.Fatalf("POST /certs %v: HTTP %d", body, code)
		}
		return seededLeaf(t, info.StateDir, fqdn)
	}
	t.Cleanup(func() { seed(map[string]any{}) })

	want := seed(map[string]any{"age": 85 * day, "validFor": 90 * day})
	got, err := getCert(t, NodeTagged, fqdn)
	if err != nil || !got.Equal(want) {
		t.Fatalf("near-expiry leaf not served as seeded: %v (got NotAfter %v)", err, notAfter(got))
	}
	logPath := filepath.Join(info.StateDir, "backend.log")
	if err := eventually(testCtx(t), func() error {
		b, _ := os.ReadFile(logPath)
		if !strings.Contains(string(b), "async renewal failed") {
			return fmt.Errorf("no failed async renewal in %s yet", logPath)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := getCert(t, NodeTagged, fqdn); err != nil || !got.Equal(want) {
		t.Fatalf("after the failed renewal: %v (NotAfter %v)", err, notAfter(got))
	}

	for name, body := range map[string]map[string]any{
		"expired":       {"age": 91 * day, "validFor": 90 * day},
		"not yet valid": {"age": -3600},
	} {
		seed(body)
		if got, err := getCert(t, NodeTagged, fqdn); err == nil {
			t.Errorf("%s leaf was served (NotAfter %v)", name, got.NotAfter)
		}
	}
}

func notAfter(c *x509.Certificate) any {
	if c == nil {
		return nil
	}
	return c.NotAfter
}
