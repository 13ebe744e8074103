package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/mount"
	"github.com/cryptvol/cryptvol/mount/nbd"
)

func newServeCommand(u *ui) *cobra.Command {
	var (
		listen       string
		readOnly     bool
		allowDiscard bool
		slot         int
		tlsDir       string
		verifyPeer   bool
		insecure     bool
		limits       serveLimits
		pf           secretFlags
		ff           formatFlags
	)
	c := &cobra.Command{
		Use:   "serve FILE --listen unix:PATH|tcp:HOST:PORT",
		Short: "Serve a vault's decrypted contents over NBD (no root needed)",
		Long: `Unlock a vault and serve its decrypted contents as a Network Block Device export
until interrupted (Ctrl-C), for virtual machines and NBD tools: qemu, qemu-img,
nbdcopy, nbdinfo, nbdfuse, nbd-client. It runs in the foreground and needs no
root. Interrupting it finishes the requests in flight, flushes and wipes the
keys.

Whoever completes the NBD handshake reads and writes the whole disk. A unix
socket is created with mode 0600, so only you (and root) can connect. TCP needs
TLS: --tls-certificates DIR names a directory with ca-cert.pem, server-cert.pem
and server-key.pem (the names nbdkit and qemu-nbd use), and every client must
present a certificate signed by ca-cert.pem (--tls-verify-peer, on by default).
Plaintext TCP, loopback included, is refused unless --insecure-no-tls.

serve prints the URI clients use (nbds://... for libnbd's nbdinfo, nbdcopy and
nbdfuse) and the options qemu takes; a client's certificate directory holds
ca-cert.pem, client-cert.pem and client-key.pem.

VeraCrypt and TrueCrypt volumes are served with --type veracrypt or truecrypt
(see 'cryptvol open' and VERACRYPT.md); with --protect-hidden, writes that
would reach the hidden volume fail with an I/O error and are reported here.`,
		Example: `  cryptvol serve vault.cv --listen unix:/tmp/vault.sock
  qemu-system-x86_64 -drive file=nbd+unix:///?socket=/tmp/vault.sock,format=raw ...
  nbdcopy nbd+unix:///?socket=/tmp/vault.sock backup.img

  cryptvol serve vault.cv --listen tcp:myhost:10809 --tls-certificates /etc/pki/cryptvol
  nbdinfo 'nbds://myhost:10809/?tls-certificates=/path/to/client-pki'`,
		Args: exactArgs(1, "one vault file"),
		RunE: func(c *cobra.Command, args []string) error {
			network, addr, err := parseListen(listen)
			if err != nil {
				return err
			}
			if err := limits.check(); err != nil {
				return err
			}
			tlsCfg, err := serveTLS(c, network, tlsDir, verifyPeer, insecure)
			if err != nil {
				return err
			}
			if _, _, err := ff.resolve(c); err != nil {
				return err
			}
			if ff.system {
				readOnly = true // system encryption opens read-only
			}
			warnings, err := mount.Harden(false)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				u.warnf("%s", w)
			}
			acc := accessWrite
			if readOnly {
				acc = accessRead
			}
			v, err := u.unlockAs(c.Context(), c, args[0], &pf, slotList(slot), acc, &ff)
			if err != nil {
				return err
			}
			vol, err := v.Open(&container.OpenOptions{ReadOnly: readOnly, Header: pf.header})
			v.Close()
			if err != nil {
				return err
			}
			defer vol.Close()
			opts := limits.options()
			// The name is the file's base name; the description says what
			// it is, not where: no path goes to clients.
			opts.Name = strings.TrimSuffix(filepath.Base(args[0]), filepath.Ext(args[0]))
			opts.Description = "decrypted cryptvol vault"
			opts.ReadOnly, opts.AllowDiscard, opts.TLS = readOnly, allowDiscard, tlsCfg
			opts.OnError = func(err error) { u.warnf("%v", err) }
			srv, err := nbd.NewServer(vol, opts)
			if err != nil {
				return err
			}
			l, err := listenNBD(network, addr)
			if err != nil {
				return err
			}
			uri, qemu := clientURIs(addr, l.Addr(), tlsDir, tlsCfg)
			access := "reads and writes"
			if readOnly {
				access = "reads"
			}
			if network == "tcp" && tlsCfg == nil {
				u.warnf("serving plaintext over TCP on %s: anyone who can reach it %s the vault's contents", l.Addr(), access)
				u.hintf("use --tls-certificates DIR, or --listen unix:PATH")
			}
			if tlsCfg != nil && !verifyPeer {
				u.warnf("clients are not asked for certificates: anyone who can reach %s %s the vault's contents", l.Addr(), access)
			}
			mode := "read-write"
			if readOnly {
				mode = "read-only"
			}
			u.printf("serving %s (%s, %s) on %s\n", args[0], humanBytes(vol.Size()), mode, uri)
			u.printf("qemu: %s\n", qemu)
			ctx := c.Context() // cancelled by SIGINT and SIGTERM (see run)
			go func() { <-ctx.Done(); srv.Close() }()
			err = srv.Serve(ctx, l)
			if errors.Is(err, nbd.ErrServerClosed) || ctx.Err() != nil {
				err = nil
			}
			err = errors.Join(err, srv.Close(), vol.Sync(), vol.Close())
			if network == "unix" {
				os.Remove(addr)
			}
			if err != nil {
				return err
			}
			u.printf("stopped; %s is flushed and locked\n", args[0])
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&listen, "listen", "", "where to listen: unix:PATH or tcp:HOST:PORT (required)")
	f.BoolVar(&readOnly, "read-only", false, "serve read-only")
	f.BoolVar(&allowDiscard, "allow-discard", false, "honour TRIM by punching holes in the vault (reveals which sectors are free; see SECURITY.md)")
	f.IntVar(&slot, "slot", -1, "try only this keyslot")
	f.StringVar(&tlsDir, "tls-certificates", "", "serve over TLS with DIR/server-cert.pem and DIR/server-key.pem (needed for TCP)")
	f.BoolVar(&verifyPeer, "tls-verify-peer", true, "require a client certificate signed by DIR/ca-cert.pem (=false lets any client in)")
	f.BoolVar(&insecure, "insecure-no-tls", false, "allow plaintext TCP: anyone who can reach the port reads and writes the vault's contents")
	limits.register(c)
	pf.register(c, false)
	pf.registerBudget(c)
	ff.register(c, true)
	return c
}

// serveLimits are serve's flags for nbd.Options' resource limits.
type serveLimits struct {
	maxConnections int
	handshake      time.Duration
	idle           time.Duration
	write          time.Duration
}

func (l *serveLimits) register(c *cobra.Command) {
	f := c.Flags()
	f.IntVar(&l.maxConnections, "max-connections", 100, "serve at most N clients at once; more are turned away")
	f.DurationVar(&l.handshake, "handshake-timeout", 10*time.Second, "drop a client that has not finished the NBD and TLS handshake by then (0: never)")
	f.DurationVar(&l.idle, "idle-timeout", 0, "drop a client that sends no request for this long (0: never)")
	f.DurationVar(&l.write, "write-timeout", 30*time.Second, "drop a client that takes no data of a reply for this long (0: never)")
}

func (l *serveLimits) check() error {
	if l.maxConnections < 1 {
		return &usageError{fmt.Sprintf("--max-connections %d: must be at least 1", l.maxConnections)}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--handshake-timeout", l.handshake}, {"--idle-timeout", l.idle}, {"--write-timeout", l.write}} {
		if d.v < 0 {
			return &usageError{fmt.Sprintf("%s %v: must not be negative", d.name, d.v)}
		}
	}
	return nil
}

// options turns the flags into nbd.Options, where 0 means the default and
// "never" is negative.
func (l *serveLimits) options() nbd.Options {
	never := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	return nbd.Options{
		MaxConnections:   l.maxConnections,
		HandshakeTimeout: never(l.handshake),
		IdleTimeout:      l.idle,
		WriteTimeout:     never(l.write),
	}
}

// serveTLS checks the TLS flags against where serve listens and loads the
// certificates (before the passphrase is asked for). TCP without TLS is
// refused unless --insecure-no-tls: loopback is no boundary on a machine
// with other users or containers sharing its network.
func serveTLS(c *cobra.Command, network, dir string, verifyPeer, insecure bool) (*tls.Config, error) {
	switch {
	case dir != "" && insecure:
		return nil, &usageError{"--tls-certificates and --insecure-no-tls contradict each other"}
	case dir == "" && c.Flags().Changed("tls-verify-peer"):
		return nil, &usageError{"--tls-verify-peer needs --tls-certificates DIR"}
	case dir == "" && network == "tcp" && !insecure:
		return nil, withHint(&usageError{"--listen tcp: needs TLS: --tls-certificates DIR"},
			"DIR holds ca-cert.pem, server-cert.pem and server-key.pem (docs/GUIDE.md shows how to make them); "+
				"--insecure-no-tls serves plaintext to anyone who can reach the port")
	case dir == "":
		return nil, nil
	}
	cfg, err := nbd.TLSConfig(dir, verifyPeer)
	if err != nil {
		return nil, withHint(err, fmt.Sprintf("%s needs %s and %s, and %s unless --tls-verify-peer=false",
			dir, nbd.TLSServerCert, nbd.TLSServerKey, nbd.TLSCACert))
	}
	return cfg, nil
}
func parseListen(s string) (network, addr string, err error) {
	switch {
	case s == "":
		return "", "", &usageError{"--listen is required: unix:PATH or tcp:HOST:PORT"}
	case strings.HasPrefix(s, "unix:") && len(s) > len("unix:"):
		return "unix", s[len("unix:"):], nil
	case strings.HasPrefix(s, "tcp:"):
		if _, _, err := net.SplitHostPort(s[len("tcp:"):]); err != nil {
			return "", "", &usageError{fmt.Sprintf("--listen %q: %v", s, err)}
		}
		return "tcp", s[len("tcp:"):], nil
	}
	return "", "", &usageError{fmt.Sprintf("--listen %q: want unix:PATH or tcp:HOST:PORT", s)}
}

// listenNBD listens where asked. A unix socket is created with mode 0600
// (umask set around its creation, so there is no moment when others could
// connect); a stale socket is replaced, any other file is not.
func listenNBD(network, addr string) (net.Listener, error) {
	if network == "unix" {
		return nbd.ListenUnix(addr)
	}
	return net.Listen("tcp", addr)
}

// clientURIs returns what clients of the listener at addr, asked for as
// listen, use: the NBD URI (libnbd's, which qemu also reads without TLS) and
// qemu's options. The host is the one --listen named, since that is what a
// certificate names; the machine's name when it named none or all addresses.
// With TLS, tlsDir (made absolute) stands for the client's certificate
// directory. qemu checks the server's certificate against a host name, which
// a unix socket does not have: it is given the first name the certificate has.
func clientURIs(listen string, addr net.Addr, tlsDir string, cfg *tls.Config) (uri, qemu string) {
	var host, port, sock string
	if addr.Network() == "unix" {
		sock = addr.String()
	} else {
		host, _, _ = net.SplitHostPort(listen)
		_, port, _ = net.SplitHostPort(addr.String())
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			if name, err := os.Hostname(); err == nil {
				host = name
			}
		}
	}
	if tlsDir == "" {
		if sock != "" {
			uri = "nbd+unix:///?socket=" + uriEscape(sock)
			return uri, "-drive file=" + uri + ",format=raw"
		}
		uri = "nbd://" + net.JoinHostPort(host, port)
		return uri, "-drive file=" + uri + ",format=raw"
	}
	if abs, err := filepath.Abs(tlsDir); err == nil {
		tlsDir = abs
	}
	object := "--object tls-creds-x509,id=tls0,dir=" + qemuEscape(tlsDir) + ",endpoint=client"
	if sock != "" {
		uri = "nbds+unix:///?socket=" + uriEscape(sock) + "&tls-certificates=" + uriEscape(tlsDir)
		qemu = object + " -drive driver=nbd,path=" + qemuEscape(sock) + ",tls-creds=tls0"
		if name := certificateName(cfg); name != "" {
			qemu += ",tls-hostname=" + qemuEscape(name)
		}
		return uri, qemu
	}
	uri = "nbds://" + net.JoinHostPort(host, port) + "/?tls-certificates=" + uriEscape(tlsDir)
	return uri, object + " -drive driver=nbd,host=" + host + ",port=" + port + ",tls-creds=tls0"
}

// certificateName returns the first host name (or address) of the server's
// certificate, or "".
func certificateName(cfg *tls.Config) string {
	if cfg == nil || len(cfg.Certificates) == 0 {
		return ""
	}
	leaf := cfg.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cfg.Certificates[0].Certificate[0]); err != nil {
			return ""
		}
	}
	switch {
	case len(leaf.DNSNames) > 0:
		return leaf.DNSNames[0]
	case len(leaf.IPAddresses) > 0:
		return leaf.IPAddresses[0].String()
	}
	return leaf.Subject.CommonName
}

// uriEscape escapes a path for an NBD URI's query, keeping slashes readable.
func uriEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '/' || c == '-' || c == '.' || c == '_' || c == '~' ||
			'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// qemuEscape doubles the commas of a value in qemu's option syntax.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
