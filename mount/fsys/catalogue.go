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

	// mkfs is the program; mkfsArgs its arguments before the label and the
	// device; labelOpt its label option; labelMax the longest label it
	// takes (bytes). Discard is off everywhere: mkfs would otherwise try to
	// discard the whole device first, and the devices do not do TRIM.
	mkfs     string
	mkfsArgs []string
	labelOpt string
	labelMax int

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
		mkfs: "mkfs.ext4", mkfsArgs: []string{"-q", "-F", "-E", "nodiscard"}, labelOpt: "-L", labelMax: 16,
		check: "e2fsck", checkArgs: []string{"-n", "-f"}},
	{Name: "xfs", MinSize: 300 << 20, Package: "xfsprogs", Owners: true,
		mkfs: "mkfs.xfs", mkfsArgs: []string{"-q", "-f", "-K"}, labelOpt: "-L", labelMax: 12,
		check: "xfs_repair", checkArgs: []string{"-n"}},
	{Name: "btrfs", MinSize: 110 << 20, Package: "btrfs-progs", Owners: true,
		mkfs: "mkfs.btrfs", mkfsArgs: []string{"-q", "-f", "--nodiscard"}, labelOpt: "-L", labelMax: 255,
		check: "btrfs", checkArgs: []string{"check", "--readonly"}, statsMounts: true},
	// mkfs.fat has no quiet option; its output is only shown on failure.
	{Name: "vfat", MinSize: 1 << 20, Package: "dosfstools", Owners: false,
		mkfs: "mkfs.vfat", labelOpt: "-n", labelMax: 11,
		check: "fsck.vfat", checkArgs: []string{"-n"}},
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
