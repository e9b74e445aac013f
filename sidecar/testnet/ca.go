package testnet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Certificate lifetimes: the leaf must be valid now and far from renewal (tailscale renews at 2/3
// of its lifetime once ARI fails, which it does fast against the dead ACME URL), so 30 days with a
// one-hour backdate to absorb clock skew (tailscale.md §8.4).
const (
	leafLifetime = 30 * 24 * time.Hour
	caLifetime   = 90 * 24 * time.Hour
	backdate     = time.Hour
)

// testCA is an in-memory ECDSA root used to pre-seed node certificates (tailscale.md §8.4 option 2):
// tailscale serves a cached certificate from <stateDir>/certs/<fqdn>.{crt,key} when
// TS_DEBUG_ACME_DIRECTORY_URL is set to a non-Let's-Encrypt URL, even though the CA is unknown.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA() (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "clawgate testnet CA", Organization: []string{"clawgate tests"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// issue returns PEM (leaf certificate, SEC 1 "EC PRIVATE KEY") for fqdn: the key type and encoding
// tailscale itself writes for an ACME certificate (feature/acme encodeECDSAKey), so Serve's
// per-handshake certificate load costs what it costs in a real deployment.
func (ca *testCA) issue(fqdn string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: fqdn},
		DNSNames:     []string{fqdn},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: pk}), nil
}

// seed writes <stateDir>/certs/<fqdn>.crt and .key where tailscaled/tsnet look for cached
// certificates (feature/acme certstore, varRoot = state dir).
func (ca *testCA) seed(stateDir, fqdn string) error {
	certPEM, keyPEM, err := ca.issue(fqdn)
	if err != nil {
		return err
	}
	dir := filepath.Join(stateDir, "certs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, fqdn+".key"), keyPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, fqdn+".crt"), certPEM, 0o644); err != nil {
		return fmt.Errorf("seed cert: %w", err)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}
