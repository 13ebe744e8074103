package nbdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// PKI is a certificate authority for tests, writing certificates in the
// layout NBD servers and clients read from their TLS directory (nbdkit
// --tls-certificates, qemu tls-creds-x509 dir=, libnbd ?tls-certificates=):
// ca-cert.pem, server-cert.pem and server-key.pem for a server,
// ca-cert.pem, client-cert.pem and client-key.pem for a client. One
// directory may hold both sets.
type PKI struct {
	name   string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	serial atomic.Int64
}

// NewPKI makes a CA named name, with an ECDSA P-256 key.
func NewPKI(name string) (*PKI, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p := &PKI{name: name, cert: cert, key: key}
	p.serial.Store(1)
	return p, nil
}

// WriteCA writes the CA's certificate to dir/ca-cert.pem.
func (p *PKI) WriteCA(dir string) error {
	return writePEM(filepath.Join(dir, "ca-cert.pem"), "CERTIFICATE", p.cert.Raw, 0o644)
}

// WriteServer writes a server certificate for hosts (names or IP addresses)
// and its key to dir/server-cert.pem and dir/server-key.pem.
func (p *PKI) WriteServer(dir string, hosts ...string) error {
	_, err := p.issue(dir, "server", x509.ExtKeyUsageServerAuth, hosts)
	return err
}

// WriteClient writes a client certificate and its key to dir/client-cert.pem
// and dir/client-key.pem, and returns its serial number.
func (p *PKI) WriteClient(dir string) (*big.Int, error) {
	return p.issue(dir, "client", x509.ExtKeyUsageClientAuth, nil)
}

// WriteAll writes the CA certificate, a server certificate for hosts and a
// client certificate, with their keys, to dir.
func (p *PKI) WriteAll(dir string, hosts ...string) error {
	if err := p.WriteCA(dir); err != nil {
		return err
	}
	if err := p.WriteServer(dir, hosts...); err != nil {
		return err
	}
	_, err := p.WriteClient(dir)
	return err
}

// WriteCRL writes a revocation list of serials, signed by the CA, to
// dir/ca-crl.pem.
func (p *PKI) WriteCRL(dir string, serials ...*big.Int) error {
	var entries []x509.RevocationListEntry
	for _, s := range serials {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(1),
		ThisUpdate:                time.Now().Add(-time.Minute),
		NextUpdate:                time.Now().Add(24 * time.Hour),
		RevokedCertificateEntries: entries,
	}, p.cert, p.key)
	if err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, "ca-crl.pem"), "X509 CRL", der, 0o644)
}

func (p *PKI) issue(dir, role string, usage x509.ExtKeyUsage, hosts []string) (*big.Int, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial := big.NewInt(p.serial.Add(1))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: fmt.Sprintf("%s %s %d", p.name, role, serial)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := writePEM(filepath.Join(dir, role+"-cert.pem"), "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	return serial, writePEM(filepath.Join(dir, role+"-key.pem"), "PRIVATE KEY", keyDER, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}
