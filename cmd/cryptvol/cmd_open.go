package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/mount"
	"github.com/cryptvol/cryptvol/mount/fsys"
	"github.com/cryptvol/cryptvol/mount/fusefile"
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
	check        string // auto, always or never
	pf           secretFlags
	ff           formatFlags
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

As root, the block device is a kernel NBD device (/dev/nbdN) when the nbd
module is loaded, or else a loop device over the decrypted volume served as a
file by a private FUSE mount under /run/cryptvol; the kernel mounts the
filesystem (--via chooses).

Any other user gets the userspace path, --via fuse (root may choose it too):
the decrypted volume is served as a file on a private FUSE mount under
$XDG_RUNTIME_DIR/cryptvol (else /run/user/UID/cryptvol, else
/tmp/cryptvol-UID), which no other user can read, and a userspace driver
mounts the filesystem in it: fuse2fs for ext2/3/4, fusefat for vfat. xfs and
btrfs have no such driver: open them as root, or give the decrypted disk to a
VM or a tool with 'cryptvol serve'. The user needs read-write access to
/dev/fuse (Debian gives it to everyone).

With --no-mount only the device is made (MOUNTPOINT is not needed); with
--test-passphrase nothing is opened: the exit code says whether the passphrase
is right (0) or not (3).

Mounting makes the kernel parse the filesystem inside, as root, and whoever
could write the vault file could have shaped it (see SECURITY.md). --check runs
the filesystem's own read-only check first (e2fsck -n -f, xfs_repair -n,
btrfs check --readonly, fsck.vfat -n) and does not mount a filesystem that
fails it. By default (--check=auto) it runs when someone other than root could
have written the vault: the file belongs to another user or is writable by its
group or others, or its directory lets someone other than root replace it. For
an ordinary user, whose filesystem driver parses the filesystem as that user,
that is someone other than root or that user. --check=never skips it.

VeraCrypt and TrueCrypt volumes open with --type veracrypt (TrueCrypt 6 and 7
volumes too) or --type truecrypt: the passphrase finds the header by trying
every PRF and cipher (--prf and --pim narrow the search); a hidden volume's
passphrase opens the hidden volume. --protect-hidden opens the outer volume
and refuses every write that would reach the hidden one. See VERACRYPT.md.`,
		Example: `  cryptvol open vault.cv /mnt/secret
  cryptvol open vault.cv /mnt/secret --read-only
  cryptvol open vault.cv --no-mount
  cryptvol open vault.cv /mnt/secret --check
  cryptvol open vault.cv --test-passphrase
  cryptvol open --type veracrypt volume.hc /mnt/vc
  cryptvol open --type veracrypt volume.hc /mnt/vc --protect-hidden`,
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
				return testPassphrase(c, u, args[0], &o)
			}
			mp := ""
			if len(args) == 2 {
				mp = args[1]
			}
			return openVault(c, u, args[0], mp, &o)
		},
	}
	f := c.Flags()
	f.BoolVar(&o.testOnly, "test-passphrase", false, "only check the passphrase: exit 0 if it opens a keyslot, 3 if not")
	f.IntVar(&o.slot, "slot", -1, "try only this keyslot")
	f.StringVar(&o.via, "via", "auto", "how to expose it: auto (root: nbd if the module is loaded, else loop; anyone else: fuse), nbd, loop or fuse")
	f.BoolVar(&o.readOnly, "read-only", false, "open and mount read-only")
	f.BoolVar(&o.noMount, "no-mount", false, "only make the block device; do not mount")
	f.StringVar(&o.mountOptions, "mount-options", "", "filesystem mount options, comma-separated (e.g. noatime)")
	f.BoolVar(&o.allowDiscard, "allow-discard", false, "pass TRIM through to the vault file (reveals which sectors are free; see SECURITY.md)")
	f.StringVar(&o.check, "check", "auto", "check the filesystem (read-only, with its own tool) before mounting it: auto (when someone other than root could have written the vault), always (--check alone) or never")
	f.Lookup("check").NoOptDefVal = "always"
	o.pf.register(c, false)
	o.pf.registerBudget(c)
	o.ff.register(c, true)
	return c
}

func testPassphrase(c *cobra.Command, u *ui, path string, o *openFlags) error {
	v, err := u.unlockAs(c.Context(), c, path, &o.pf, slotList(o.slot), accessAny, &o.ff)
	if err != nil {
		return err
	}
	defer v.Close()
	if ti, ok := v.TCryptInfo(); ok {
		u.printf("the passphrase opens the %s\n", describeTCryptHeader(ti))
		return nil
	}
	u.printf("the passphrase opens keyslot %d\n", v.Slot())
	return nil
}

// resolveVia picks the path; a requested one that cannot work says why
// instead of falling back silently.
func resolveVia(via string) (string, error) {
	if os.Geteuid() != 0 {
		switch via {
		case "auto", mount.ViaFUSE:
			return mount.ViaFUSE, fuseAvailable()
		case mount.ViaLoop, mount.ViaNBD:
			return "", withHint(fmt.Errorf("--via %s needs root: it attaches a kernel block device", via),
				"as an ordinary user only --via fuse (the default) works")
		}
		return "", &usageError{fmt.Sprintf("--via %q: must be auto, nbd, loop or fuse", via)}
	}
	err := nbd.KernelAvailable()
	switch via {
	case "auto":
		if err == nil {
			return mount.ViaNBD, nil
		}
		return mount.ViaLoop, nil
	case mount.ViaLoop:
		return mount.ViaLoop, nil
	case mount.ViaNBD:
		if err != nil {
			return "", withHint(err, "load it with `modprobe nbd`, or use --via loop")
		}
		return mount.ViaNBD, nil
	case mount.ViaFUSE:
		return mount.ViaFUSE, fuseAvailable()
	}
	return "", &usageError{fmt.Sprintf("--via %q: must be auto, nbd, loop or fuse", via)}
}

// fuseAvailable checks, before the passphrase is asked, that this user can
// serve a FUSE file.
func fuseAvailable() error {
	err := fusefile.Available()
	if err == nil {
		return nil
	}
	if errors.Is(err, fsys.ErrNoFusermount) {
		return withHint(err, "install the fuse3 package")
	}
	return withHint(err, "ask the administrator for read-write access to /dev/fuse (Debian's udev rule makes it 0666), or open the vault as root")
}

func openVault(c *cobra.Command, u *ui, path, mountPoint string, o *openFlags) error {
	via, err := resolveVia(o.via)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	typ, _, err := o.ff.resolve(c)
	if err != nil {
		return err
	}
	if o.ff.system {
		o.readOnly = true // system encryption opens read-only
	}
	if !isTCrypt(typ) {
		if _, err := o.pf.learn(abs); err != nil {
			return err
		}
	}
	if o.pf.header != "" {
		if o.pf.header, err = filepath.Abs(o.pf.header); err != nil {
			return err
		}
	}
	check, why, err := checkBeforeMount(abs, o.check, mountPoint != "")
	if err != nil {
		return err
	}
	reg := mount.DefaultRegistry()
	if err := checkNotOpen(u, abs); err != nil {
		return err
	}
	if mountPoint != "" {
		if mountPoint, err = filepath.Abs(mountPoint); err != nil {
			return err
		}
		// Checked again, race-free, where the server opens it.
		if err := fsys.CheckMountPoint(mountPoint); err != nil {
			return withHint(err, "mount on the directory it points to, if that is where you want the vault: a mount point that is a link could be pointed elsewhere by whoever may change it")
		}
		if ok, _ := fsys.IsMounted(mountPoint); ok {
			return withHint(fmt.Errorf("%s is already a mount point", mountPoint), "choose an empty directory")
		}
	}
	acc := accessWrite
	if o.readOnly {
		acc = accessAny
	}
	v, err := u.unlockAs(c.Context(), c, abs, &o.pf, slotList(o.slot), acc, &o.ff)
	if err != nil {
		return err
	}
	defer v.Close()
	cfg := mount.Config{File: abs, Header: o.pf.header, MountPoint: mountPoint, Via: via, ReadOnly: o.readOnly,
		MountOptions: o.mountOptions, AllowDiscard: o.allowDiscard, Check: check}
	if why != "" {
		u.hintf("checking %s's filesystem before mounting it: %s (--check=never skips it)", path, why)
	}
	if owner := sudoOwner(); owner != nil && mountPoint != "" && !strings.Contains(o.mountOptions, "uid=") {
		// vfat has no owners: its files belong to whoever the mount says.
		// The server adds these only if the filesystem turns out to be vfat.
		cfg.VFATOptions = fmt.Sprintf("uid=%d,gid=%d", owner.UID, owner.GID)
	}
	st, err := mount.Start(reg, v, cfg, func(w string) { u.warnf("%s", w) })
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
	switch {
	case st.MountPoint != "" && st.Driver != "":
		u.printf("opened %s (%s) via %s on %s, mounted at %s by %s\n", path, mode, st.Via, st.Device, st.MountPoint, st.Driver)
	case st.MountPoint != "":
		u.printf("opened %s (%s) via %s on %s, mounted at %s\n", path, mode, st.Via, st.Device, st.MountPoint)
	default:
		u.printf("opened %s (%s) via %s on %s\n", path, mode, st.Via, st.Device)
	}
	if st.Checked != "" {
		u.printf("checked its filesystem before mounting (%s): no problems found\n", st.Checked)
	}
	return nil
}

// checkNotOpen refuses a vault that is already open, and cleans up after a
// server of it that died.
func checkNotOpen(u *ui, abs string) error {
	e, err := mount.FindAll(mount.Registries(), abs)
	if err == nil {
		reg, st := e.Registry, e.State
		if st.Alive() {
			where := st.Device
			if st.MountPoint != "" {
				where = st.MountPoint
			}
			return withHint(fmt.Errorf("%s is already open (%s, server pid %d)", abs, where, st.PID), "close it first: cryptvol close "+where)
		}
		u.warnf("%s: the server of an earlier open (pid %d) died; cleaning up after it", abs, st.PID)
		notes, err := reg.CleanupStale(st, false)
		for _, n := range notes {
			u.warnf("%s: %s", abs, n)
		}
		if err != nil {
			return withHint(err, "cryptvol close --force "+abs)
		}
		reg.RemoveLog(st.ID) // as close does after a cleanup
	}
	if open, err := container.InUse(abs); err == nil && open {
		return withHint(fmt.Errorf("%s: %w", abs, container.ErrInUse), "another cryptvol (open or serve) has it open")
	}
	return nil
}

// checkBeforeMount decides whether open checks the filesystem before mounting
// it (--check), and with auto says why it does. The rule of auto: when
// someone other than root could have written the vault file — it belongs to
// another user, its group or others may write it, or its directory lets
// someone other than root replace it — and so shaped the filesystem the
// kernel is about to parse as root (SECURITY.md "Foreign filesystems"). For
// an ordinary user, whose driver parses it as that user, the user is trusted
// as root is.
func checkBeforeMount(path, mode string, mounting bool) (check bool, why string, err error) {
	switch mode {
	case "never":
		return false, "", nil
	case "always":
		if !mounting {
			return false, "", &usageError{"--check checks the filesystem before it is mounted: it needs a mount point (not --no-mount)"}
		}
		return true, "", nil
	case "auto":
		if !mounting {
			return false, "", nil
		}
		why := foreignWriter(path, os.Geteuid())
		return why != "", why, nil
	}
	return false, "", &usageError{fmt.Sprintf("--check=%q: must be auto, always or never", mode)}
}

// foreignWriter says who other than root and the user uid could have written
// the file at path, or "" if no one. For root that is anyone but root; an
// ordinary user's vault is theirs to shape, and the filesystem in it is
// parsed by a driver running as them (the fuse path).
func foreignWriter(path string, uid int) string {
	var st, dir unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	switch {
	case st.Uid != 0 && int(st.Uid) != uid:
		return fmt.Sprintf("the vault file belongs to uid %d", st.Uid)
	case st.Mode&0o022 != 0:
		return fmt.Sprintf("the vault file's mode %#o lets others write it", st.Mode&0o777)
	}
	if err := unix.Stat(filepath.Dir(path), &dir); err != nil {
		return ""
	}
	switch {
	case dir.Uid != 0 && int(dir.Uid) != uid:
		return fmt.Sprintf("its directory belongs to uid %d, who could replace it", dir.Uid)
	case dir.Mode&0o022 != 0 && dir.Mode&unix.S_ISVTX == 0:
		return fmt.Sprintf("its directory's mode %#o lets others replace it", dir.Mode&0o7777)
	}
	return ""
}
