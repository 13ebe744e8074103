package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/mount"
)

// serverCommandName is the hidden command `cryptvol open` starts as the
// background server. It is not for users: it reads the master key from fd 3
// and reports readiness on fd 4.
const serverCommandName = "__server"

func newServerCommand(u *ui) *cobra.Command {
	var cfg mount.ServerConfig
	c := &cobra.Command{
		Use:    serverCommandName,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			keyPipe, status := os.NewFile(3, "key"), os.NewFile(4, "status")
			if _, err := status.Stat(); err != nil {
				return errors.New("this command is started by `cryptvol open`")
			}
			return runServer(cfg, keyPipe, status)
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.ID, "id", "", "")
	f.StringVar(&cfg.File, "file", "", "")
	f.StringVar(&cfg.MountPoint, "mount-point", "", "")
	f.StringVar(&cfg.Via, "via", mount.ViaLoop, "")
	f.BoolVar(&cfg.ReadOnly, "read-only", false, "")
	f.StringVar(&cfg.MountOptions, "mount-options", "", "")
	f.BoolVar(&cfg.AllowDiscard, "allow-discard", false, "")
	f.StringVar(&cfg.VFATOptions, "vfat-options", "", "")
	f.StringVar(&cfg.Registry.Dir, "registry", mount.DefaultRegistry.Dir, "")
	return c
}

// runServer is the background server process: harden, take the key, expose
// the vault, report readiness, serve until closed or signalled.
func runServer(cfg mount.ServerConfig, keyPipe, status *os.File) error {
	logger := log.New(os.Stderr, fmt.Sprintf("cryptvol[%d] ", os.Getpid()), log.LstdFlags)
	cfg.Log = logger.Printf
	report := func(st serverStatus) {
		json.NewEncoder(status).Encode(st)
		status.Close()
	}
	fail := func(err error) error {
		cfg.Log("failed: %v", err)
		st := serverStatus{Error: err.Error(), Code: exitCode(err)}
		var h *hinted
		if errors.As(err, &h) {
			st.Hint = h.hint
		} else {
			st.Hint = defaultHint(err)
		}
		report(st)
		return err
	}
	// Before the key arrives: no core dumps, no swapping.
	warnings, err := mount.Harden(true)
	if err != nil {
		keyPipe.Close()
		return fail(err)
	}
	for _, w := range warnings {
		cfg.Log("warning: %s", w)
	}
	vol, err := container.OpenWithKey(cfg.File, keyPipe, &container.OpenOptions{ReadOnly: cfg.ReadOnly})
	keyPipe.Close()
	if err != nil {
		return fail(err)
	}
	// Signals from now on close the vault cleanly instead of killing us.
	sctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	srv, err := mount.StartServer(vol, cfg)
	if err != nil {
		return fail(err)
	}
	st := srv.State()
	report(serverStatus{OK: true, State: &st})
	cfg.Log("ready: %s on %s", cfg.File, st.Device)
	return srv.Wait(sctx)
}
