package fsys

import (
	"fmt"
	"slices"
	"strings"
)

// Filesystem is one filesystem cryptvol can make inside a vault and mount:
// the one catalogue that create, open, shell completion and help all read.
type Filesystem struct {
	// Name is the type as mount(2) and Probe name it, and as --filesystem
	// takes it.
	Name string
	// MinSize is the smallest volume its mkfs accepts (measured with the
	// versions in Debian 12), checked before anything is asked or written.
	MinSize int64
	// Package is the Debian package with its mkfs.
	Package string
	// Owners is false for a filesystem without file owners (vfat): its
	// files belong to whoever the mount options (uid=, gid=) say.
	Owners bool
	// Driver is the userspace driver that mounts it without root (the fuse
	// path, package userfs), and DriverPackage the Debian package with it;
	// both "" when there is none (xfs, btrfs: only the kernel mounts them,
	// so only root can open them; `cryptvol serve` gives anyone the
	// decrypted disk over NBD, for a VM or a tool to use).
	Driver        string
	DriverPackage string

	// mkfs is the program; mkfsArgs its arguments before the label and the
	// device; labelOpt its label option; labelMax the longest label it
	// takes (bytes). Discard is off everywhere: mkfs would otherwise try to
	// discard the whole device first, and the devices do not do TRIM.
	mkfs     string
	mkfsArgs []string
	labelOpt string
	labelMax int
	// deviceArgs are added for a block device (Mkfs), imageArgs for a
	// regular file (MkfsImage).
	deviceArgs []string
	// imageArgs tell mkfs what it would have learnt from a block device,
	// the sector size, and the owner of the root directory (uid -1: leave
	// it to mkfs).
	imageArgs func(sectorSize, uid, gid int) []string
	// driverArgs are the driver's arguments: the image file, the directory,
	// the mount's source as the mount table shows it (DriverCommand),
	// read-only, and the owner files are shown with when the filesystem has
	// none (uid < 0: the driver's default).
	driverArgs func(file, dir, fsname string, readOnly bool, uid, gid int) []string

	// check is the program that checks the filesystem without changing
	// anything (Check), and checkArgs its arguments before the device.
	check     string
	checkArgs []string

	// statsMounts is true for tools that refuse to run when any mount's
	// source cannot be stat'ed (btrfs-progs; see unstatableMounts).
	statsMounts bool
}

// catalogue lists the filesystems in the order help shows them; the first is
// the default.
var catalogue = []Filesystem{
	// The checks: e2fsck -n opens read-only and answers no to every
	// question, -f checks a filesystem marked clean too (a forged one says
	// it is); xfs_repair -n and btrfs check --readonly modify nothing;
	// fsck.vfat -n neither.
	{Name: "ext4", MinSize: 1 << 20, Package: "e2fsprogs", Owners: true,
		mkfs: "mkfs.ext4", mkfsArgs: []string{"-q", "-F"}, deviceArgs: []string{"-E", "nodiscard"},
		labelOpt: "-L", labelMax: 16,
		check: "e2fsck", checkArgs: []string{"-n", "-f"},
		imageArgs: func(ss, uid, gid int) []string {
			// mke2fs takes one -E; nodiscard is in it for a device too.
			ext := "nodiscard"
			if uid >= 0 {
				ext += fmt.Sprintf(",root_owner=%d:%d", uid, gid)
			}
			if ss > 1024 {
				// On a small device mke2fs picks 1 KiB blocks, but
				// never less than the device's sector size, which a
				// file does not have.
				return []string{"-b", fmt.Sprint(ss), "-E", ext}
			}
			return []string{"-E", ext}
		},
		Driver: "fuse2fs", DriverPackage: "fuse2fs",
		driverArgs: func(file, dir, fsname string, ro bool, _, _ int) []string {
			// fuse2fs adds its default options after the user's, and
			// with them fsname=FILE, which would win over ours: they
			// are left out (no_default_opts) and given here, as
			// fuse2fs 1.47 gives them, but fsname. It does not write
			// ext4's journal: after a crash the filesystem wants e2fsck.
			mode := "rw"
			if ro {
				mode = "ro"
			}
			return []string{file, dir, "-f", "-o", mode + ",no_default_opts," +
				"kernel_cache,subtype=ext4,use_ino,attr_timeout=0,big_writes,fsname=" + fsname}
		}},
	{Name: "xfs", MinSize: 300 << 20, Package: "xfsprogs", Owners: true,
		mkfs: "mkfs.xfs", mkfsArgs: []string{"-q", "-f", "-K"}, labelOpt: "-L", labelMax: 12,
		check: "xfs_repair", checkArgs: []string{"-n"},
		imageArgs: func(ss, _, _ int) []string { return []string{"-s", fmt.Sprintf("size=%d", ss)} }},
	{Name: "btrfs", MinSize: 110 << 20, Package: "btrfs-progs", Owners: true,
		mkfs: "mkfs.btrfs", mkfsArgs: []string{"-q", "-f", "--nodiscard"}, labelOpt: "-L", labelMax: 255,
		check: "btrfs", checkArgs: []string{"check", "--readonly"}, statsMounts: true,
		// Its 4 KiB sectors suit both vault sector sizes.
		imageArgs: func(_, _, _ int) []string { return nil }},
	// mkfs.fat has no quiet option; its output is only shown on failure.
	{Name: "vfat", MinSize: 1 << 20, Package: "dosfstools", Owners: false,
		mkfs: "mkfs.vfat", labelOpt: "-n", labelMax: 11,
		check: "fsck.vfat", checkArgs: []string{"-n"},
		imageArgs: func(ss, _, _ int) []string { return []string{"-S", fmt.Sprint(ss)} },
		Driver:    "fusefat", DriverPackage: "fusefat",
		driverArgs: func(file, dir, fsname string, ro bool, uid, gid int) []string {
			// fusefat wants to be told either way: ro, or rw+ (writing
			// is "experimental"). It runs single-threaded (-s): it is
			// not known to be safe otherwise.
			mode := "rw+"
			if ro {
				mode = "ro"
			}
			args := []string{file, dir, "-f", "-s", "-o", mode + ",fsname=" + fsname}
			if uid >= 0 {
				args = append(args, "-o", fmt.Sprintf("uid=%d,gid=%d", uid, gid))
			}
			return args
		}},
}

// Filesystems returns the catalogue, the default first.
func Filesystems() []Filesystem { return slices.Clone(catalogue) }

// Names returns the names of the filesystems in the catalogue, the default
// first.
func Names() []string {
	names := make([]string, len(catalogue))
	for i, f := range catalogue {
		names[i] = f.Name
	}
	return names
}

// Lookup returns the filesystem called name, or an error listing the ones
// there are.
func Lookup(name string) (Filesystem, error) {
	i := slices.IndexFunc(catalogue, func(f Filesystem) bool { return f.Name == name })
	if i < 0 {
		return Filesystem{}, fmt.Errorf("unsupported filesystem type %q (supported: %s)", name, strings.Join(Names(), ", "))
	}
	return catalogue[i], nil
}

// MkfsProgram is the program that makes the filesystem, e.g. "mkfs.ext4".
func (f Filesystem) MkfsProgram() string { return f.mkfs }

// CheckCommand is the read-only check Check runs, without the device, e.g.
// "e2fsck -n -f".
func (f Filesystem) CheckCommand() string {
	return strings.Join(append([]string{f.check}, f.checkArgs...), " ")
}

// ForType returns the catalogue's filesystem for a type Probe reports: ext2
// and ext3 are ext4's (its tools and the kernel's ext4 driver handle them).
func ForType(fstype string) (Filesystem, error) {
	if fstype == "ext2" || fstype == "ext3" {
		fstype = "ext4"
	}
	return Lookup(fstype)
}

// DriverCommand is the command line that makes Driver serve the filesystem
// in the image file on dir, in the foreground. fsname is the mount's source
// in the mount table (the drivers' default, the image's path, would break
// root's tools: see userfs.Options.FSName); it must not hold a comma or
// backslash. uid and gid own the files of a filesystem without owners
// (vfat); -1 for the driver's default. options are the user's mount
// options, passed on with -o.
func (f Filesystem) DriverCommand(file, dir, fsname string, readOnly bool, uid, gid int, options string) []string {
	if f.Driver == "" {
		return nil
	}
	args := append([]string{f.Driver}, f.driverArgs(file, dir, fsname, readOnly, uid, gid)...)
	if o := strings.Trim(options, ","); o != "" {
		args = append(args, "-o", o)
	}
	return args
}
