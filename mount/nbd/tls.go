package nbd

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// TLS as the NBD ecosystem does it. proto.md's "TLS support": the client asks
// for TLS with NBD_OPT_STARTTLS during option haggling, the server answers
// NBD_REP_ACK, and the handshake and everything after it run inside TLS. A
// server with Options.TLS operates in FORCEDTLS mode, as nbdkit --tls=require
// and qemu-nbd with tls-creds do: until TLS is up, every option but
// NBD_OPT_STARTTLS and NBD_OPT_ABORT gets NBD_REP_ERR_TLS_REQD, and
// NBD_OPT_EXPORT_NAME, which cannot fail, ends the session. Nothing is
// negotiated before TLS, so nothing a man in the middle injected in plaintext
// survives into the TLS session. Without Options.TLS the server is NOTLS and
// answers NBD_OPT_STARTTLS with NBD_REP_ERR_POLICY.
//
// Certificates come from one directory with the file names nbdkit's
// --tls-certificates and qemu's tls-creds-x509 dir= read, so the same
// directory (made by certtool or openssl, as their manuals show) serves
// either. Clients read ca-cert.pem, client-cert.pem and client-key.pem from
// theirs: libnbd's nbds:// URIs with ?tls-certificates=DIR, qemu's
// --object tls-creds-x509,dir=DIR,endpoint=client.
//
// No pre-shared-key mode: libnbd and qemu offer TLS-PSK through GnuTLS, but
// Go's crypto/tls implements neither TLS 1.3 external PSKs nor TLS 1.2 PSK
// cipher suites, and a TLS handshake of our own is not something to write
// here.
const (
	// TLSCACert holds the certificates of the CA that signs client
	// certificates; read only when clients are verified.
	TLSCACert = "ca-cert.pem"
	// TLSServerCert holds the server's certificate, optionally followed by
	// the intermediate certificates between it and the CA clients trust.
	TLSServerCert = "server-cert.pem"
	// TLSServerKey holds the private key of TLSServerCert.
	TLSServerKey = "server-key.pem"
	// TLSCACRL, if present, is a revocation list signed by the CA of
	// TLSCACert: a client certificate listed in it is refused.
	TLSCACRL = "ca-crl.pem"
)

// TLSConfig returns the server's TLS configuration for Options.TLS, from the
// files in dir (TLSServerCert, TLSServerKey; with verifyPeer also TLSCACert
// and, if present, TLSCACRL). With verifyPeer every client must present a
// certificate that chains to TLSCACert, is meant for client authentication
// (or names no purpose) and is not revoked; without it any client that can
// connect gets in, and TLS only keeps the stream from being read or changed
// on the way.
//
// It allows TLS 1.3 only. proto.md asks NBD implementations to support 1.2,
// but every client with NBD TLS (libnbd, qemu, nbd-client, all on GnuTLS
// 3.6.5 or newer, from 2018) negotiates 1.3, whose handshake encrypts the
// certificates and has no weak cipher suites or renegotiation to configure.
func TLSConfig(dir string, verifyPeer bool) (*tls.Config, error) {
	certFile := filepath.Join(dir, TLSServerCert)
	keyFile := filepath.Join(dir, TLSServerKey)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("nbd: TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS13,
		// Full-size records from the start: the stream is bulk data,
		// not a web page whose first bytes should arrive early.
		DynamicRecordSizingDisabled: true,
	}
	if !verifyPeer {
		return cfg, nil
	}
	caFile := filepath.Join(dir, TLSCACert)
	cas, pool, err := loadCertificates(caFile)
	if err != nil {
		return nil, err
	}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = pool
	crlFile := filepath.Join(dir, TLSCACRL)
	revoked, err := loadRevoked(crlFile, cas)
	if err != nil {
		return nil, err
	}
	if revoked != nil {
		// VerifyConnection, unlike VerifyPeerCertificate, also runs
		// when a session is resumed.
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			for _, chain := range cs.VerifiedChains {
				for _, c := range chain {
					if revoked.has(c) {
						return fmt.Errorf("certificate of %q (serial %s) is revoked by %s", c.Subject, c.SerialNumber, crlFile)
					}
				}
			}
			return nil
		}
	}
	return cfg, nil
}

// loadCertificates reads every certificate of a PEM file.
func loadCertificates(file string) ([]*x509.Certificate, *x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("nbd: TLS CA certificate: %w", err)
	}
	var certs []*x509.Certificate
	pool := x509.NewCertPool()
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("nbd: TLS CA certificate %s: %w", file, err)
		}
		certs = append(certs, c)
		pool.AddCert(c)
	}
	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("nbd: TLS CA certificate %s: no PEM certificate in it", file)
	}
	return certs, pool, nil
}

// revokedSet is the serial numbers a CRL lists, with the issuer that listed them.
type revokedSet struct {
	issuer  []byte // raw subject of the CRL's issuer
	serials map[string]bool
}

func (r *revokedSet) has(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, r.issuer) && r.serials[c.SerialNumber.String()]
}

// loadRevoked reads a CRL file if it exists (nil, nil if it does not) and
// checks that one of cas signed it: a list signed by anyone else would let
// its maker decide which clients are refused, but never who gets in.
func loadRevoked(file string, cas []*x509.Certificate) (*revokedSet, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nbd: TLS revocation list: %w", err)
	}
	der := data
	if block, _ := pem.Decode(data); block != nil {
		der = block.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("nbd: TLS revocation list %s: %w", file, err)
	}
	var signer *x509.Certificate
	for _, ca := range cas {
		if crl.CheckSignatureFrom(ca) == nil {
			signer = ca
			break
		}
	}
	if signer == nil {
		return nil, fmt.Errorf("nbd: TLS revocation list %s is not signed by a CA of %s", file, TLSCACert)
	}
	set := &revokedSet{issuer: signer.RawSubject, serials: make(map[string]bool)}
	for _, e := range crl.RevokedCertificateEntries {
		set.serials[e.SerialNumber.String()] = true
	}
	return set, nil
}
