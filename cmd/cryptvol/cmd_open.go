package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/mount"
	"github.com/cryptvol/cryptvol/mount/fsys"
	"github.com/cryptvol/cryptvol/mount/nbd"
)

// openFlags are the options of `cryptvol open`, passed on to the server.
type openFlags struct {
	testOnly     bool
	slot         int
	via          string
	readOnly     bool
	noMount      bool
	mountOptions string
	allowDiscard bool
	pf           secretFlags
}

func newOpenCommand(u *ui) *cobra.Command {
	var o openFlags
	c := &cobra.Command{
		Use:   "open FILE MOUNTPOINT",
		Short: "Unlock a vault and mount its filesystem",
		Long: `Ask for the passphrase, unlock the vault, and expose its decrypted contents as a
block device from a background server process that holds the keys; then mount
its filesystem on MOUNTPOINT (created if missing). Returns once the filesystem
is mounted. Plaintext exists only in memory: it never reaches the disk, swap or
a core dump. Close it with 'cryptvol close MOUNTPOINT'.

The block device is a kernel NBD device (/dev/nbdN) when the nbd module is
loaded, or else a loop device over the decrypted volume served as a file by a
private FUSE mount under /run/cryptvol (--via chooses). Needs root.

With --no-mount only the device is made (MOUNTPOINT is not needed); with
--test-passphrase nothing is opened: the exit code says whether the passphrase
is right (0) or not (3).`,
		Example: `  cryptvol open vault.cv /mnt/secret
  cryptvol open vault.cv /mnt/secret --read-only
  cryptvol open vault.cv --no-mount
  cryptvol open vault.cv --test-passphrase`,
		Args: func(c *cobra.Command, args []string) error {
			if o.testOnly || o.noMount {
				return exactArgs(1, "one vault file")(c, args)
			}
			if len(args) == 1 {
				return &usageError{"a mount point is needed: cryptvol open FILE MOUNTPOINT (or --no-mount)"}
			}
			return exactArgs(2, "a vault file and a mount point")(c, args)
		},
		RunE: func(c *cobra.Command, args []string) error {
			if o.testOnly {
				return testPassphrase(u, args[0], &o)
			}
			mp := ""
			if len(args) == 2 {
				mp = args[1]
			}
			return openVault(u, args[0], mp, &o)
		},
	}
	f := c.Flags()
	f.BoolVar(&o.testOnly, "test-passphrase", false, "only check the passphrase: exit 0 if it opens a keyslot, 3 if not")
	f.IntVar(&o.slot, "slot", -1, "try only this keyslot")
	f.StringVar(&o.via, "via", "auto", "block device: auto (nbd if the module is loaded, else loop), nbd or loop")
	f.BoolVar(&o.readOnly, "read-only", false, "open and mount read-only")
	f.BoolVar(&o.noMount, "no-mount", false, "only make the block device; do not mount")
	f.StringVar(&o.mountOptions, "mount-options", "", "filesystem mount options, comma-separated (e.g. noatime)")
	f.BoolVar(&o.allowDiscard, "allow-discard", false, "pass TRIM through to the vault file (reveals which sectors are free; see SECURITY.md)")
	o.pf.register(c, false)
	return c
}

func testPassphrase(u *ui, path string, o *openFlags) error {
	v, err := u.unlock(path, &o.pf, slotList(o.slot), true)
	if err != nil {
		return err
	}
	defer v.Close()
	u.printf("the passphrase opens keyslot %d\n", v.Slot())
	return nil
}

// resolveVia picks the block path; a requested NBD path that cannot work says
// why instead of falling back silently.
func resolveVia(via string) (string, error) {
	err := nbd.KernelAvailable()
	switch via {
	case "auto":
		if err == nil {
			return mount.ViaNBD, nil
		}
		return mount.ViaLoop, nil
	case "loop":
		return mount.ViaLoop, nil
	case "nbd":
		if err != nil {
			return "", withHint(err, "load it with `modprobe nbd`, or use --via loop")
		}
		return mount.ViaNBD, nil
	}
	return "", &usageError{fmt.Sprintf("--via %q: must be auto, nbd or loop", via)}
}

func needRoot(what string) error {
	if os.Geteuid() == 0 {
		return nil
	}
	return withHint(fmt.Errorf("%s needs root: it attaches a block device and mounts a filesystem", what),
		"run it with sudo; `cryptvol serve FILE --listen unix:PATH` exposes a vault over NBD without root")
}

func openVault(u *ui, path, mountPoint string, o *openFlags) error {
	if err := needRoot("opening a vault"); err != nil {
		return err
	}
	via, err := resolveVia(o.via)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if _, err := o.pf.learn(abs); err != nil {
		return err
	}
	if o.pf.header != "" {
		if o.pf.header, err = filepath.Abs(o.pf.header); err != nil {
			return err
		}
	}
	reg := mount.DefaultRegistry()
	if err := checkNotOpen(u, reg, abs); err != nil {
		return err
	}
	if mountPoint != "" {
		if mountPoint, err = filepath.Abs(mountPoint); err != nil {
			return err
		}
		if ok, _ := fsys.IsMounted(mountPoint); ok {
			return withHint(fmt.Errorf("%s is already a mount point", mountPoint), "choose an empty directory")
		}
	}
	v, err := u.unlock(abs, &o.pf, slotList(o.slot), o.readOnly)
	if err != nil {
		return err
	}
	defer v.Close()
	cfg := mount.Config{File: abs, Header: o.pf.header, MountPoint: mountPoint, Via: via, ReadOnly: o.readOnly,
		MountOptions: o.mountOptions, AllowDiscard: o.allowDiscard}
	if owner := sudoOwner(); owner != nil && mountPoint != "" && !strings.Contains(o.mountOptions, "uid=") {
		// vfat has no owners: its files belong to whoever the mount says.
		// The server adds these only if the filesystem turns out to be vfat.
		cfg.VFATOptions = fmt.Sprintf("uid=%d,gid=%d", owner.UID, owner.GID)
	}
	st, err := mount.Start(reg, v, cfg)
	var se *mount.ServerError
	if errors.As(err, &se) && se.Hint != "" {
		err = withHint(err, se.Hint)
	}
	if err != nil {
		return err
	}
	mode := "read-write"
	if st.ReadOnly {
		mode = "read-only"
	}
	if st.MountPoint != "" {
		u.printf("opened %s (%s) on %s, mounted at %s\n", path, mode, st.Device, st.MountPoint)
	} else {
		u.printf("opened %s (%s) on %s\n", path, mode, st.Device)
	}
	return nil
}

// checkNotOpen refuses a vault that is already open, and cleans up after a
// server of it that died.
func checkNotOpen(u *ui, reg mount.Registry, abs string) error {
	st, err := reg.Find(abs)
	if err == nil {
		if st.Alive() {
			where := st.Device
			if st.MountPoint != "" {
				where = st.MountPoint
			}
			return withHint(fmt.Errorf("%s is already open (%s, server pid %d)", abs, where, st.PID), "close it first: cryptvol close "+where)
		}
		u.warnf("%s: the server of an earlier open (pid %d) died; cleaning up after it", abs, st.PID)
		if err := reg.CleanupStale(st, false); err != nil {
			return withHint(err, "cryptvol close --force "+abs)
		}
	}
	if open, err := container.InUse(abs); err == nil && open {
		return withHint(fmt.Errorf("%s: %w", abs, container.ErrInUse), "another cryptvol (open or serve) has it open")
	}
	return nil
}
