package nbd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/mount/nbd/nbdtest"
)

// TLS: proto.md's FORCEDTLS mode with a Go client driving it byte by byte,
// and libnbd's and qemu's clients with their own certificate directories.

// pkiDirs are certificate directories in the nbdkit/qemu/libnbd layout.
type pkiDirs struct {
	server    string // ca-cert.pem, server-cert.pem, server-key.pem, ca-crl.pem
	client    string // ca-cert.pem, client-cert.pem, client-key.pem (and a server's)
	anonymous string // ca-cert.pem only: trusts the server, has no certificate
	otherCA   string // a complete set from another CA
	foreign   string // trusts the server, with a client certificate of another CA
	revoked   string // a client set whose certificate the server's ca-crl.pem revokes
}

var (
	testPKIOnce sync.Once
	testPKIRoot string // removed by TestMain
	testPKI     pkiDirs
	testPKIErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if testPKIRoot != "" {
		os.RemoveAll(testPKIRoot)
	}
	os.Exit(code)
}

// testCertificates makes the directories once per test binary.
func testCertificates(t testing.TB) pkiDirs {
	t.Helper()
	testPKIOnce.Do(func() {
		testPKIRoot, testPKIErr = os.MkdirTemp("", "nbd-pki-")
		if testPKIErr == nil {
			testPKIErr = makeTestPKI(testPKIRoot)
		}
	})
	if testPKIErr != nil {
		t.Fatal(testPKIErr)
	}
	return testPKI
}

func makeTestPKI(root string) error {
	d := pkiDirs{}
	for _, p := range []*string{&d.server, &d.client, &d.anonymous, &d.otherCA, &d.foreign, &d.revoked} {
		dir, err := os.MkdirTemp(root, "")
		if err != nil {
			return err
		}
		*p = dir
	}
	ca, err := nbdtest.NewPKI("nbd test CA")
	if err != nil {
		return err
	}
	other, err := nbdtest.NewPKI("another CA")
	if err != nil {
		return err
	}
	var revoked *big.Int
	steps := []func() error{
		func() error { return ca.WriteCA(d.server) },
		func() error { return ca.WriteServer(d.server, "localhost", "127.0.0.1") },
		func() error { return ca.WriteAll(d.client, "localhost", "127.0.0.1") },
		func() error { return ca.WriteCA(d.anonymous) },
		func() error { return other.WriteAll(d.otherCA, "localhost", "127.0.0.1") },
		func() error { return ca.WriteCA(d.foreign) },
		func() error { _, err := other.WriteClient(d.foreign); return err },
		func() error { return ca.WriteCA(d.revoked) },
		func() (err error) { revoked, err = ca.WriteClient(d.revoked); return err },
		func() error { return ca.WriteCRL(d.server, revoked) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	testPKI = d
	return nil
}

// clientTLS is a Go client's TLS configuration from a client directory.
func clientTLS(t testing.TB, dir string) *tls.Config {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(dir, "ca-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client-cert.pem"), filepath.Join(dir, "client-key.pem")); err == nil {
		// Presented even if the server asks for another CA's
		// certificates, which crypto/tls (and GnuTLS) would not do.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return cfg
}

// startNBDTLS serves dev with TLS (the test certificates, client certificates
// verified if verifyPeer) on a loopback TCP port and returns the server and
// its host:port.
func startNBDTLS(t testing.TB, dev Device, opts Options, verifyPeer bool) (*Server, string) {
	t.Helper()
	checkNBDLeaks(t)
	cfg, err := TLSConfig(testCertificates(t).server, verifyPeer)
	if err != nil {
		t.Fatal(err)
	}
	opts.TLS = cfg
	var mu sync.Mutex
	var errs []error
	if opts.OnError == nil {
		opts.OnError = func(err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	srv, err := NewServer(dev, opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, srv, l, func() []error {
		mu.Lock()
		defer mu.Unlock()
		return errs
	})
	return srv, l.Addr().String()
}

func dialTCP(t testing.TB, addr string) *testClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	return &testClient{conn: conn, r: bufio.NewReader(conn)}
}

// startTLS sends NBD_OPT_STARTTLS and, on NBD_REP_ACK, runs the client's
// handshake; the client then speaks through TLS.
func (c *testClient) startTLS(cfg *tls.Config) error {
	if err := c.sendOption(nbdOptStartTLS, nil); err != nil {
		return err
	}
	r, err := c.readOptReply()
	if err != nil {
		return err
	}
	if r.opt != nbdOptStartTLS || r.typ != nbdRepAck {
		return fmt.Errorf("NBD_OPT_STARTTLS: reply option %d type %#x", r.opt, r.typ)
	}
	if c.r.Buffered() != 0 {
		return errors.New("data after the NBD_OPT_STARTTLS reply")
	}
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	// TLS 1.3 sends the verdict on a client certificate after the client's
	// handshake ends: a refused client learns it on its first read.
	c.conn, c.r = tc, bufio.NewReader(tc)
	return nil
}

func (c *testClient) expectOption(t testing.TB, what string, opt uint32, data []byte, want uint32) {
	t.Helper()
	if err := c.sendOption(opt, data); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	r, err := c.readOptReply()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.opt != opt || r.typ != want {
		t.Fatalf("%s: reply option %d type %#x, want %d %#x", what, r.opt, r.typ, opt, want)
	}
}

// TestNBDTLSForced: with TLS configured nothing is served before
// NBD_OPT_STARTTLS, and everything is after it.
func TestNBDTLSForced(t *testing.T) {
	dev := nbdtest.New(1<<20, 4096)
	_, addr := startNBDTLS(t, dev, Options{Name: "vol", Description: "test"}, true)
	pki := testCertificates(t)

	c := dialTCP(t, addr)
	if err := c.hello(nbdFlagCFixedNewstyle | nbdFlagCNoZeroes); err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		name string
		opt  uint32
		data []byte
	}{
		{"GO", nbdOptGo, infoRequest("")},
		{"INFO", nbdOptInfo, infoRequest("vol")},
		{"LIST", nbdOptList, nil},
		{"STRUCTURED_REPLY", nbdOptStructuredReply, nil},
		{"unknown", 1000, []byte("x")},
	} {
		c.expectOption(t, o.name+" before TLS", o.opt, o.data, nbdRepErrTLSReqd)
	}
	c.expectOption(t, "STARTTLS with data", nbdOptStartTLS, []byte{0}, nbdRepErrInvalid)
	if err := c.startTLS(clientTLS(t, pki.client)); err != nil {
		t.Fatal(err)
	}
	c.expectOption(t, "STARTTLS again", nbdOptStartTLS, nil, nbdRepErrInvalid)
	if typ, err := c.info(nbdOptGo, "vol", nbdInfoDescription); err != nil || typ != nbdRepAck {
		t.Fatalf("GO over TLS: %#x %v", typ, err)
	}
	if c.desc != "test" {
		t.Errorf("description %q", c.desc)
	}
	data := bytes.Repeat([]byte("tls!"), 2048)
	errno, err := c.write(4096, data, nbdCmdFlagFUA)
	mustErrno(t, "write", errno, err, 0)
	errno, got, err := c.read(4096, uint32(len(data)))
	mustErrno(t, "read", errno, err, 0)
	if !bytes.Equal(got, data) || !bytes.Equal(dev.Durable()[4096:4096+len(data)], data) {
		t.Fatal("data read back over TLS differs")
	}
	if err := c.disc(); err != nil {
		t.Fatal(err)
	}
	c.expectClosed(t)

	t.Run("abort before TLS", func(t *testing.T) {
		c := dialTCP(t, addr)
		if err := c.hello(nbdFlagCFixedNewstyle); err != nil {
			t.Fatal(err)
		}
		c.expectOption(t, "ABORT", nbdOptAbort, nil, nbdRepAck)
		c.expectClosed(t)
	})
	t.Run("export name before TLS", func(t *testing.T) {
		c := dialTCP(t, addr)
		if err := c.hello(nbdFlagCFixedNewstyle | nbdFlagCNoZeroes); err != nil {
			t.Fatal(err)
		}
		c.sendOption(nbdOptExportName, nil)
		c.expectClosed(t)
	})
	t.Run("not fixed newstyle", func(t *testing.T) {
		c := dialTCP(t, addr)
		if err := c.hello(0); err != nil {
			t.Fatal(err)
		}
		c.expectClosed(t)
	})
	t.Run("plaintext after STARTTLS", func(t *testing.T) {
		c := dialTCP(t, addr)
		if err := c.hello(nbdFlagCFixedNewstyle); err != nil {
			t.Fatal(err)
		}
		// An option sent in plaintext right behind NBD_OPT_STARTTLS
		// (as a man in the middle would inject it) is not served: it
		// is read as the start of a TLS handshake, which fails.
		b := appendOption(nil, nbdOptStartTLS, nil)
		b = appendOption(b, nbdOptGo, infoRequest(""))
		c.conn.Write(b)
		if r, err := c.readOptReply(); err != nil || r.typ != nbdRepAck {
			t.Fatalf("STARTTLS: %+v %v", r, err)
		}
		c.expectEOF(t)
	})
}

// TestNBDTLSRefused: each client that must not get in is refused during the
// handshake, before any option is served.
func TestNBDTLSRefused(t *testing.T) {
	dev := nbdtest.New(1<<20, 4096)
	pki := testCertificates(t)
	tls12 := clientTLS(t, pki.client)
	tls12.MaxVersion = tls.VersionTLS12
	for _, tc := range []struct {
		name       string
		verifyPeer bool
		cfg        *tls.Config
		serverSide string // what the server reports
	}{
		{"client trusts another CA", false, clientTLS(t, pki.otherCA), "bad certificate"},
		{"no client certificate", true, clientTLS(t, pki.anonymous), "didn't provide a certificate"},
		{"client certificate of another CA", true, clientTLS(t, pki.foreign), "unknown authority"},
		{"revoked client certificate", true, clientTLS(t, pki.revoked), "is revoked"},
		{"TLS 1.2", false, tls12, "unsupported versions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reported := make(chan error, 4)
			_, addr := startNBDTLS(t, dev, Options{OnError: func(err error) { reported <- err }}, tc.verifyPeer)
			c := dialTCP(t, addr)
			if err := c.hello(nbdFlagCFixedNewstyle); err != nil {
				t.Fatal(err)
			}
			err := c.startTLS(tc.cfg)
			if err == nil {
				// The client's side finished; the server's verdict
				// comes with the first read.
				_, err = c.info(nbdOptGo, "")
			}
			if err == nil {
				t.Fatal("client got in")
			}
			select {
			case r := <-reported:
				if !strings.Contains(r.Error(), "TLS handshake") || !strings.Contains(r.Error(), tc.serverSide) {
					t.Errorf("server reported %v, want a failed TLS handshake with %q", r, tc.serverSide)
				}
			case <-time.After(10 * time.Second):
				t.Error("server reported nothing")
			}
		})
	}
	t.Run("without verify-peer, any client", func(t *testing.T) {
		_, addr := startNBDTLS(t, dev, Options{}, false)
		c := dialTCP(t, addr)
		if err := c.hello(nbdFlagCFixedNewstyle); err != nil {
			t.Fatal(err)
		}
		if err := c.startTLS(clientTLS(t, pki.anonymous)); err != nil {
			t.Fatal(err)
		}
		if typ, err := c.info(nbdOptGo, ""); err != nil || typ != nbdRepAck {
			t.Fatalf("GO: %#x %v", typ, err)
		}
	})
}

// TestNBDTLSHandshakeTimeout: a client that asks for TLS and then sends
// nothing is dropped by the handshake timeout.
func TestNBDTLSHandshakeTimeout(t *testing.T) {
	dev := nbdtest.New(1<<20, 4096)
	_, addr := startNBDTLS(t, dev, Options{HandshakeTimeout: time.Second}, true)
	c := dialTCP(t, addr)
	if err := c.hello(nbdFlagCFixedNewstyle); err != nil {
		t.Fatal(err)
	}
	c.expectOption(t, "STARTTLS", nbdOptStartTLS, nil, nbdRepAck)
	c.expectEOF(t)
}

func TestNBDTLSConfigErrors(t *testing.T) {
	pki := testCertificates(t)
	if _, err := TLSConfig(t.TempDir(), false); err == nil || !strings.Contains(err.Error(), "server-cert.pem") {
		t.Errorf("empty directory: %v", err)
	}
	// A client directory has no server certificate.
	if _, err := TLSConfig(pki.foreign, false); err == nil {
		t.Error("client directory accepted as a server's")
	}
	// verify-peer needs the CA.
	dir := t.TempDir()
	for _, f := range []string{"server-cert.pem", "server-key.pem"} {
		b, _ := os.ReadFile(filepath.Join(pki.server, f))
		os.WriteFile(filepath.Join(dir, f), b, 0o600)
	}
	if _, err := TLSConfig(dir, false); err != nil {
		t.Errorf("without a CA, not verifying: %v", err)
	}
	if _, err := TLSConfig(dir, true); err == nil || !strings.Contains(err.Error(), "ca-cert.pem") {
		t.Errorf("verifying without a CA: %v", err)
	}
	// A CRL from another CA is refused.
	b, _ := os.ReadFile(filepath.Join(pki.client, "ca-cert.pem"))
	os.WriteFile(filepath.Join(dir, "ca-cert.pem"), b, 0o644)
	other, err := nbdtest.NewPKI("crl signer")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.WriteCRL(dir, big.NewInt(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := TLSConfig(dir, true); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("foreign CRL: %v", err)
	}
}

// tlsURI is libnbd's URI of the default export at addr with the client
// certificates of dir.
func tlsURI(addr, dir string) string {
	return "nbds://" + addr + "/?tls-certificates=" + dir
}

// TestNBDTLSClients: libnbd (nbdinfo, nbdcopy) and qemu-img over TLS with
// client certificates, and each of them refused without TLS, with a CA that
// did not sign the server, or without a client certificate.
func TestNBDTLSClients(t *testing.T) {
	e2e.Tools(t, "nbdinfo", "nbdcopy", "qemu-img")
	pki := testCertificates(t)
	const size = 8 << 20
	dev := nbdtest.New(size, 4096)
	_, addr := startNBDTLS(t, dev, Options{Name: "vol"}, true)
	host, port, _ := net.SplitHostPort(addr)

	exports := nbdinfo(t, tlsURI(addr, pki.client))
	if len(exports) != 1 || exports[0].Size != size || exports[0].Name != "vol" {
		t.Fatalf("nbdinfo over TLS: %+v", exports)
	}

	dir := t.TempDir()
	img := testImage(size)
	in := filepath.Join(dir, "in.img")
	if err := os.WriteFile(in, img, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "nbdcopy", "--flush", in, tlsURI(addr, pki.client))
	if !bytes.Equal(dev.Durable(), img) {
		t.Fatal("nbdcopy over TLS: device differs")
	}
	out := filepath.Join(dir, "out.img")
	run(t, "nbdcopy", tlsURI(addr, pki.client), out)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, img) {
		t.Fatal("nbdcopy over TLS: image read back differs")
	}

	qemu := func(certs string) ([]byte, error) {
		return runErr("qemu-img", "compare",
			"--object", "tls-creds-x509,id=tls0,dir="+certs+",endpoint=client",
			"--image-opts", "driver=raw,file.filename="+in,
			"driver=raw,file.driver=nbd,file.host="+host+",file.port="+port+",file.export=vol,file.tls-creds=tls0")
	}
	if out, err := qemu(pki.client); err != nil {
		t.Fatalf("qemu-img compare over TLS: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"nbdinfo without TLS", []string{"nbdinfo", "nbd://" + addr}},
		{"nbdinfo trusting another CA", []string{"nbdinfo", tlsURI(addr, pki.otherCA)}},
		{"nbdinfo without a client certificate", []string{"nbdinfo", tlsURI(addr, pki.anonymous)}},
		{"nbdinfo with another CA's client certificate", []string{"nbdinfo", tlsURI(addr, pki.foreign)}},
		{"nbdcopy without TLS", []string{"nbdcopy", "nbd://" + addr, out}},
		{"qemu-img without TLS", []string{"qemu-img", "info", "nbd://" + addr + "/vol"}},
	} {
		if out, err := runErr(tc.args[0], tc.args[1:]...); err == nil {
			t.Errorf("%s: got in\n%s", tc.name, out)
		} else {
			t.Logf("%s: refused: %v", tc.name, err)
		}
	}
	if out, err := qemu(pki.anonymous); err == nil {
		t.Errorf("qemu-img without a client certificate: got in\n%s", out)
	}
	if out, err := qemu(pki.otherCA); err == nil {
		t.Errorf("qemu-img trusting another CA: got in\n%s", out)
	}
}

// TestNBDTLSUnix: TLS over a unix socket, when asked for.
func TestNBDTLSUnix(t *testing.T) {
	e2e.Tools(t, "nbdinfo")
	pki := testCertificates(t)
	cfg, err := TLSConfig(pki.server, true)
	if err != nil {
		t.Fatal(err)
	}
	dev := nbdtest.New(1<<20, 4096)
	_, sock := startNBD(t, dev, Options{TLS: cfg})
	exports := nbdinfo(t, "nbds+unix:///?socket="+sock+"&tls-certificates="+pki.client)
	if len(exports) != 1 || exports[0].Size != 1<<20 {
		t.Fatalf("nbdinfo over TLS on a unix socket: %+v", exports)
	}
	if _, err := runErr("nbdinfo", nbdURI(sock)); err == nil {
		t.Error("nbdinfo without TLS got in on the unix socket")
	}
}
