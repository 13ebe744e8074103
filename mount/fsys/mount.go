// Package fsys handles filesystems on block devices: the catalogue of the
// filesystems cryptvol makes and mounts (Filesystems, Lookup), mkfs, probing
// a device for its filesystem, mount and unmount, /proc/self/mountinfo, the
// holders of a busy mount, and whether a block device is claimed. It imports
// nothing else from cryptvol.
package fsys

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotMounted is returned by Unmount for a directory that is not a mount point.
var ErrNotMounted = errors.New("not mounted")

// mountFlagWords are the options that mount(8) turns into mount(2) flags
// rather than passing to the filesystem; set is true if the word sets the
// flag, false if it clears it.
var mountFlagWords = map[string]struct {
	flag uintptr
	set  bool
}{
	"ro": {unix.MS_RDONLY, true}, "rw": {unix.MS_RDONLY, false},
	"nosuid": {unix.MS_NOSUID, true}, "suid": {unix.MS_NOSUID, false},
	"nodev": {unix.MS_NODEV, true}, "dev": {unix.MS_NODEV, false},
	"noexec": {unix.MS_NOEXEC, true}, "exec": {unix.MS_NOEXEC, false},
	"sync": {unix.MS_SYNCHRONOUS, true}, "async": {unix.MS_SYNCHRONOUS, false},
	"dirsync": {unix.MS_DIRSYNC, true},
	"noatime": {unix.MS_NOATIME, true}, "atime": {unix.MS_NOATIME, false},
	"nodiratime": {unix.MS_NODIRATIME, true}, "diratime": {unix.MS_NODIRATIME, false},
	"relatime": {unix.MS_RELATIME, true}, "norelatime": {unix.MS_RELATIME, false},
	"strictatime": {unix.MS_STRICTATIME, true},
	"lazytime":    {unix.MS_LAZYTIME, true}, "nolazytime": {unix.MS_LAZYTIME, false},
	"silent": {unix.MS_SILENT, true}, "loud": {unix.MS_SILENT, false},
	"defaults": {0, true},
}

// Mount mounts the filesystem on the block device dev at dir, creating dir
// (mode 0700) if it is missing. An empty fstype is found with Probe.
//
// The mount is nosuid and nodev unless options say "suid" or "dev": a volume
// may come from someone else, and a set-uid root program or a device node in
// it must not grant anything on this machine. options is a comma-separated
// list as for mount -o; the generic words (ro, noexec, noatime, sync, ...)
// become mount flags, the rest is passed to the filesystem. readOnly, or "ro"
// in options, mounts read-only.
func Mount(dev, dir, fstype string, readOnly bool, options string) error {
	if fstype == "" {
		var err error
		if fstype, err = Probe(dev); err != nil {
			return fmt.Errorf("mount %s: %w", dev, err)
		}
	}
	flags, data := splitMountOptions(options)
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("mount %s: create mount point: %w", dev, err)
	}
	err := unix.Mount(dev, dir, fstype, flags, data)
	if errors.Is(err, unix.ENODEV) && (fstype == "ext2" || fstype == "ext3") {
		// Kernels without the old drivers mount both with ext4.
		err = unix.Mount(dev, dir, "ext4", flags, data)
	}
	if err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", dev, dir, fstype, err)
	}
	return nil
}

// splitMountOptions separates mount(2) flags from filesystem options.
func splitMountOptions(options string) (flags uintptr, data string) {
	flags = unix.MS_NOSUID | unix.MS_NODEV
	var rest []string
	for _, o := range strings.Split(options, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if w, ok := mountFlagWords[o]; ok {
			if w.set {
				flags |= w.flag
			} else {
				flags &^= w.flag
			}
			continue
		}
		rest = append(rest, o)
	}
	return flags, strings.Join(rest, ",")
}

// Unmount unmounts the filesystem mounted on dir. If it is in use the error is
// a *BusyError naming the processes (and mounts, loop devices) holding it. A
// lazy unmount (MNT_DETACH) never fails for being busy: the mount leaves the
// tree at once and the filesystem is shut down when its last user lets go.
// A dir that is not a mount point gives ErrNotMounted.
func Unmount(dir string, lazy bool) error {
	flags := unix.UMOUNT_NOFOLLOW
	if lazy {
		flags |= unix.MNT_DETACH
	}
	err := unix.Unmount(dir, flags)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EBUSY):
		return Busy(dir, err)
	case errors.Is(err, unix.EINVAL):
		if ok, merr := IsMounted(dir); merr == nil && !ok {
			return fmt.Errorf("unmount %s: %w", dir, ErrNotMounted)
		}
	}
	return fmt.Errorf("unmount %s: %w", dir, err)
}
