package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/mount"
	"github.com/cryptvol/cryptvol/mount/fsys"
)

func newCloseCommand(u *ui) *cobra.Command {
	var all, force bool
	c := &cobra.Command{
		Use:   "close MOUNTPOINT|FILE|DEVICE",
		Short: "Unmount, flush and lock an open vault",
		Long: `Close an open vault: unmount its filesystem, flush everything to the vault
file, detach the block device, and stop its server, which wipes the keys.

A filesystem in use is not unmounted: the error names the processes using it,
and nothing is lost. --force unmounts it lazily instead: it disappears at once,
and the vault is locked when the last file on it is closed.

A vault whose server died (killed, crashed) is cleaned up: its mount, device
and private FUSE mount are removed; everything it had flushed is in the file.

A user closes their own vaults; root closes anyone's, and with --all every
vault 'cryptvol list' shows it, every user's.`,
		Example: `  cryptvol close /mnt/secret
  cryptvol close vault.cv
  cryptvol close --all`,
		ValidArgsFunction: completeOpenVaults,
		Args: func(c *cobra.Command, args []string) error {
			if all {
				return exactArgs(0, "no argument with --all")(c, args)
			}
			return exactArgs(1, "a mount point, vault file or device (or --all)")(c, args)
		},
		RunE: func(c *cobra.Command, args []string) error {
			regs := mount.Registries()
			var entries []mount.Entry
			if all {
				var err error
				if entries, err = mount.ListAll(regs); err != nil {
					return err
				}
				if len(entries) == 0 {
					u.printf("no open vaults\n")
					return nil
				}
			} else {
				e, err := mount.FindAll(regs, args[0])
				if err != nil {
					return withHint(err, "`cryptvol list` shows the open vaults")
				}
				entries = []mount.Entry{e}
			}
			var errs []error
			for _, e := range entries {
				if err := closeOne(c.Context(), u, e.Registry, e.State, force); err != nil {
					errs = append(errs, err)
				}
			}
			if len(errs) == 1 {
				return errs[0]
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().BoolVar(&all, "all", false, "close every open vault")
	c.Flags().BoolVar(&force, "force", false, "unmount lazily if the filesystem is in use")
	return c
}

func closeOne(ctx context.Context, u *ui, reg mount.Registry, st mount.State, force bool) error {
	res, notes, err := mount.Close(ctx, reg, st, force)
	for _, n := range notes {
		u.warnf("%s: %s", st.File, n)
	}
	var be *fsys.BusyError
	switch {
	case errors.As(err, &be):
		holders := make([]string, len(be.Holders))
		for i, h := range be.Holders {
			holders[i] = h.String()
		}
		msg := fmt.Sprintf("%s is busy: not closed, nothing lost", st.MountPoint)
		if len(holders) > 0 {
			msg += " (in use by " + strings.Join(holders, "; ") + ")"
		}
		return withHint(errors.New(msg), "close those files or leave the directory and try again; or `cryptvol close --force` to unmount lazily")
	case errors.Is(err, mount.ErrServerGone):
		return withHint(fmt.Errorf("%s: %w", st.File, err),
			fmt.Sprintf("if it is stuck, stop it with `kill %d` and run close again", st.PID))
	case err != nil:
		return fmt.Errorf("%s: %w", st.File, err)
	}
	switch res {
	case mount.Deferred:
		u.printf("unmounted %s lazily: %s stays open until its last user closes its files, then locks itself\n", st.MountPoint, st.File)
		return nil
	case mount.CleanedUp:
		u.warnf("the server of %s (pid %d) had died; cleaned up what it left", st.File, st.PID)
	}
	u.printf("closed %s (%s)\n", st.File, describe(st))
	return nil
}

func describe(st mount.State) string {
	if st.MountPoint != "" {
		return st.Device + " on " + st.MountPoint
	}
	return st.Device
}
