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
	// maxShift bounds the age and lifetime a control-API caller may ask for (ten years): enough
	// for any expiry scenario, far from time.Duration overflow.
	maxShift = 10 * 365 * 24 * time.Hour
)

// leafValidity is a leaf's validity window. POST /certs may ask for any window, e.g. an 85-day-old
// 90-day leaf (5 days left) for doctor's expiry check. What tailscale v1.102.3 does with a
// pre-seeded leaf (feature/acme/cert.go getCertPEMWithValidity, certstore.go certFileStore.Read and
// validateLeaf; traced for the tests in validity_test.go):
//   - the cached files are re-read on every cert request, and the leaf must pass x509 Verify for
//     the domain at the current time (an unknown CA is forgiven only because
//     TS_DEBUG_ACME_DIRECTORY_URL is non-default); expired or not yet valid ⇒ errCertExpired ⇒ a
//     synchronous ACME order, which fails offline ⇒ the LocalAPI answers 500: the leaf is refused;
//   - a leaf that verifies is served as is. With min_validity=0 (the LocalAPI default, the serve
//     TLS path and the hourly refresh loop) renewal is decided by ARI, which fails at once against
//     the dead directory URL, then by expiry: renew after NotBefore + 2/3 of the lifetime; the
//     decision is cached per domain (renewCertAt) until a renewal succeeds. When due, an async
//     renewal starts ("starting async renewal"), fails ("async renewal failed") and the cached
//     leaf keeps being served until it expires.
//   - So a near-expiry leaf is served offline as long as NotBefore <= now <= NotAfter; only an
//     explicit ?min_validity= longer than the time left makes tailscaled refuse it.
type leafValidity struct{ notBefore, notAfter time.Time }

// defaultValidity is the window every node starts with.
func defaultValidity(now time.Time) leafValidity {
	return leafValidity{notBefore: now.Add(-backdate), notAfter: now.Add(leafLifetime)}
}

// requestedValidity is the window for an age (now - NotBefore; negative = not yet valid) and a
// lifetime (NotAfter - NotBefore), both in seconds; nil means the default for that end.
func requestedValidity(now time.Time, age, validFor *int64) (leafValidity, error) {
	v := defaultValidity(now)
	if age != nil {
		a := time.Duration(*age) * time.Second
		if a > maxShift || a < -maxShift {
			return v, fmt.Errorf("age %ds out of range (|age| <= %ds)", *age, int64(maxShift/time.Second))
		}
		v.notBefore = now.Add(-a)
	}
	if validFor != nil {
		d := time.Duration(*validFor) * time.Second
		if *validFor <= 0 || d > maxShift {
			return v, fmt.Errorf("validFor %ds out of range (0 < validFor <= %ds)", *validFor, int64(maxShift/time.Second))
		}
		v.notAfter = v.notBefore.Add(d)
	}
	if !v.notAfter.After(v.notBefore) {
		return v, fmt.Errorf("NotAfter %v is not after NotBefore %v", v.notAfter, v.notBefore)
	}
	return v, nil
}

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

// issue returns PEM (leaf certificate, SEC 1 "EC PRIVATE KEY") for fqdn, valid for v: the key type
// and encoding tailscale itself writes for an ACME certificate (feature/acme encodeECDSAKey), so
// Serve's per-handshake certificate load costs what it costs in a real deployment.
func (ca *testCA) issue(fqdn string, v leafValidity) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: fqdn},
		DNSNames:     []string{fqdn},
		NotBefore:    v.notBefore,
		NotAfter:     v.notAfter,
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
// certificates (feature/acme certstore, varRoot = state dir), with the default validity.
func (ca *testCA) seed(stateDir, fqdn string) error {
	return ca.seedWith(stateDir, fqdn, defaultValidity(time.Now()))
}

// seedWith is seed with the validity window v.
func (ca *testCA) seedWith(stateDir, fqdn string, v leafValidity) error {
	certPEM, keyPEM, err := ca.issue(fqdn, v)
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
