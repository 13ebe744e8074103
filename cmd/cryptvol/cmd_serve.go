package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

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
		pf           secretFlags
	)
	c := &cobra.Command{
		Use:   "serve FILE --listen unix:PATH|tcp:HOST:PORT",
		Short: "Serve a vault's decrypted contents over NBD (no root needed)",
		Long: `Unlock a vault and serve its decrypted contents as a Network Block Device export
until interrupted (Ctrl-C), for virtual machines and NBD tools: qemu, qemu-img,
nbdcopy, nbdinfo, nbdfuse, nbd-client. It runs in the foreground and needs no
root. Interrupting it finishes the requests in flight, flushes and wipes the
keys.

A unix socket is created with mode 0600. The NBD stream is plaintext: TCP is used
only when asked, and a warning is printed unless it is a loopback address.`,
		Example: `  cryptvol serve vault.cv --listen unix:/tmp/vault.sock
  qemu-system-x86_64 -drive file=nbd+unix:///?socket=/tmp/vault.sock,format=raw ...
  nbdcopy nbd+unix:///?socket=/tmp/vault.sock backup.img`,
		Args: exactArgs(1, "one vault file"),
		RunE: func(c *cobra.Command, args []string) error {
			network, addr, err := parseListen(listen)
			if err != nil {
				return err
			}
			budget, err := pf.unlockBudget()
			if err != nil {
				return err
			}
			if _, err := container.Inspect(args[0]); err != nil {
				return err
			}
			pass, err := u.secret(&pf, args[0])
			if err != nil {
				return err
			}
			warnings, err := mount.Harden(false)
			if err != nil {
				wipeSecret(pass)
				return err
			}
			for _, w := range warnings {
				u.warnf("%s", w)
			}
			vol, err := container.Open(args[0], pass, &container.OpenOptions{ReadOnly: readOnly, Slots: slotList(slot),
				Warn:    func(m string) { u.warnf("%s: %s", args[0], m) },
				Context: c.Context(), Budget: budget})
			wipeSecret(pass)
			if err != nil {
				return err
			}
			defer vol.Close()
			srv, err := nbd.NewServer(vol, nbd.Options{
				Name: strings.TrimSuffix(filepath.Base(args[0]), filepath.Ext(args[0])), Description: args[0],
				ReadOnly: readOnly, AllowDiscard: allowDiscard,
				OnError: func(err error) { u.warnf("%v", err) },
			})
			if err != nil {
				return err
			}
			l, uri, err := listenNBD(u, network, addr)
			if err != nil {
				return err
			}
			mode := "read-write"
			if readOnly {
				mode = "read-only"
			}
			u.printf("serving %s (%s, %s) on %s\n", args[0], humanBytes(vol.Size()), mode, uri)
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
	pf.register(c, false)
	pf.registerBudget(c)
	return c
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

// listenNBD listens where asked and returns the NBD URI clients use. A unix
// socket is created with mode 0600 (umask set around its creation, so there is
// no moment when others could connect); a stale socket is replaced, any other
// file is not.
func listenNBD(u *ui, network, addr string) (net.Listener, string, error) {
	if network == "unix" {
		l, err := nbd.ListenUnix(addr)
		if err != nil {
			return nil, "", err
		}
		return l, "nbd+unix:///?socket=" + l.Addr().String(), nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	host, port, _ := net.SplitHostPort(l.Addr().String())
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		u.warnf("serving plaintext over TCP on %s: anyone who can reach it reads and writes the vault's contents", l.Addr())
		u.hintf("prefer --listen unix:PATH, or listen on 127.0.0.1 and tunnel it (ssh -L)")
	}
	return l, "nbd://" + net.JoinHostPort(host, port), nil
}
