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
	"path/filepath"
	"strconv"
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

// ErrSymlinkMountPoint is a mount point whose last component is a symbolic
// link: mount(2) would follow it, and whoever may write the directory that
// holds it could point it anywhere (/etc/cron.d).
var ErrSymlinkMountPoint = errors.New("is a symbolic link: give the directory itself")

// MountPoint is a directory opened to mount a filesystem on: a descriptor of
// the directory itself (O_PATH|O_NOFOLLOW|O_DIRECTORY) and the path it had
// when opened, symbolic links resolved. A filesystem mounted with MountOn lands
// on that very directory, whatever is renamed or replaced along its path
// meanwhile.
type MountPoint struct {
	fd   int
	path string
}

// OpenMountPoint opens dir to mount on, creating it and its missing parents
// with mode perm. Its last component may not be a symbolic link
// (ErrSymlinkMountPoint); symbolic links among its parents are resolved, and
// Path is the result: what mountinfo will show.
func OpenMountPoint(dir string, perm os.FileMode) (*MountPoint, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("mount point: %w", err)
	}
	if abs == "/" {
		return nil, errors.New("mount point: refusing to mount on /")
	}
	parent := filepath.Dir(abs)
	if err := os.MkdirAll(parent, perm); err != nil {
		return nil, fmt.Errorf("mount point: %w", err)
	}
	if parent, err = filepath.EvalSymlinks(parent); err != nil {
		return nil, fmt.Errorf("mount point: %w", err)
	}
	path := filepath.Join(parent, filepath.Base(abs))
	if err := CheckMountPoint(path); err != nil {
		return nil, err
	}
	if err := os.Mkdir(path, perm); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("mount point: %w", err)
	}
	// O_DIRECTORY with O_NOFOLLOW fails (ENOTDIR) on a symbolic link put in
	// the directory's place since the check above.
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOTDIR) {
		if st, lerr := os.Lstat(path); lerr == nil && st.Mode()&os.ModeSymlink != 0 {
			err = ErrSymlinkMountPoint
		}
	}
	if err != nil {
		return nil, fmt.Errorf("mount point %s: %w", path, err)
	}
	m := &MountPoint{fd: fd, path: path}
	// A parent replaced by a link between resolving and opening would have
	// led elsewhere: the kernel says where the descriptor is.
	if at, err := os.Readlink(m.procPath()); err != nil || at != path {
		m.Close()
		return nil, fmt.Errorf("mount point %s changed while it was opened (now %s)", path, at)
	}
	return m, nil
}

// CheckMountPoint reports a mount point that OpenMountPoint would refuse for
// being a symbolic link, without creating or opening anything.
func CheckMountPoint(dir string) error {
	if st, err := os.Lstat(dir); err == nil && st.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("mount point %s %w", dir, ErrSymlinkMountPoint)
	}
	return nil
}

// Path is the mount point's path, symbolic links resolved.
func (m *MountPoint) Path() string { return m.path }

func (m *MountPoint) procPath() string { return "/proc/self/fd/" + strconv.Itoa(m.fd) }

// Close releases the descriptor (a filesystem mounted on it stays).
func (m *MountPoint) Close() error {
	if m.fd < 0 {
		return nil
	}
	err := unix.Close(m.fd)
	m.fd = -1
	return err
}

// Mount mounts the filesystem on the block device dev at dir, creating dir
// (mode 0700) if it is missing: OpenMountPoint and MountOn.
func Mount(dev, dir, fstype string, readOnly bool, options string) error {
	mp, err := OpenMountPoint(dir, 0o700)
	if err != nil {
		return fmt.Errorf("mount %s: %w", dev, err)
	}
	defer mp.Close()
	return MountOn(dev, mp, fstype, readOnly, options)
}

// MountOn mounts the filesystem on the block device dev (or a source such as
// "tmpfs") on the directory mp holds. An empty fstype is found with Probe.
//
// The mount is nosuid and nodev unless options say "suid" or "dev": a volume
// may come from someone else, and a set-uid root program or a device node in
// it must not grant anything on this machine. options is a comma-separated
// list as for mount -o; the generic words (ro, noexec, noatime, sync, ...)
// become mount flags, the rest is passed to the filesystem. readOnly, or "ro"
// in options, mounts read-only.
//
// It uses the mount API of Linux 5.2 (fsopen, fsconfig, fsmount and
// move_mount onto the descriptor), and mount(2) onto /proc/self/fd/N, which
// resolves to the same directory, on kernels without it.
func MountOn(dev string, mp *MountPoint, fstype string, readOnly bool, options string) error {
	return mountOn(dev, mp, fstype, readOnly, options, true)
}

func mountOn(dev string, mp *MountPoint, fstype string, readOnly bool, options string, newAPI bool) error {
	if fstype == "" {
		var err error
		if fstype, err = Probe(dev); err != nil {
			return fmt.Errorf("mount %s: %w", dev, err)
		}
	}
	flags, data := splitMountOptions(withDefaults(fstype, options))
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	try := func(fstype string) error {
		if newAPI {
			err := fsmountOn(dev, mp, fstype, flags, data)
			if !errors.Is(err, unix.ENOSYS) {
				return err
			}
		}
		return unix.Mount(dev, mp.procPath(), fstype, flags, data)
	}
	err := try(fstype)
	if errors.Is(err, unix.ENODEV) && (fstype == "ext2" || fstype == "ext3") {
		// Kernels without the old drivers mount both with ext4.
		err = try("ext4")
	}
	if err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", dev, mp.path, fstype, err)
	}
	return nil
}

// fsmountOn mounts with the new mount API: flags are split into the
// superblock's flags (fsconfig) and the mount's attributes (fsmount), data
// into fsconfig parameters. Its error carries the filesystem's own message,
// where it gave one.
func fsmountOn(dev string, mp *MountPoint, fstype string, flags uintptr, data string) error {
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(fsfd)
	set := func(key, value string) error {
		var err error
		if value == "" {
			err = unix.FsconfigSetFlag(fsfd, key)
		} else {
			err = unix.FsconfigSetString(fsfd, key, value)
		}
		if err != nil {
			return fmt.Errorf("%s: %w%s", key, err, fsMessages(fsfd))
		}
		return nil
	}
	if err := set("source", dev); err != nil {
		return err
	}
	var attrs int
	for _, f := range []struct {
		flag uintptr
		sb   string // superblock flag, for fsconfig
		attr int    // mount attribute, for fsmount
	}{
		{unix.MS_RDONLY, "ro", unix.MOUNT_ATTR_RDONLY},
		{unix.MS_NOSUID, "", unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, "", unix.MOUNT_ATTR_NODEV},
		{unix.MS_NOEXEC, "", unix.MOUNT_ATTR_NOEXEC},
		{unix.MS_NOATIME, "", unix.MOUNT_ATTR_NOATIME},
		{unix.MS_STRICTATIME, "", unix.MOUNT_ATTR_STRICTATIME},
		{unix.MS_NODIRATIME, "", unix.MOUNT_ATTR_NODIRATIME},
		{unix.MS_SYNCHRONOUS, "sync", 0},
		{unix.MS_DIRSYNC, "dirsync", 0},
		{unix.MS_LAZYTIME, "lazytime", 0},
		{unix.MS_SILENT, "silent", 0},
	} {
		if flags&f.flag == 0 {
			continue
		}
		attrs |= f.attr
		if f.sb != "" {
			if err := set(f.sb, ""); err != nil {
				return err
			}
		}
	}
	for _, o := range strings.Split(data, ",") {
		if o == "" {
			continue
		}
		k, v, _ := strings.Cut(o, "=")
		if err := set(k, v); err != nil {
			return err
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("%w%s", err, fsMessages(fsfd))
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fmt.Errorf("%w%s", err, fsMessages(fsfd))
	}
	defer unix.Close(mfd)
	return unix.MoveMount(mfd, "", mp.fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

// fsMessages reads what the filesystem logged into its fs context ("e ext4:
// ..."), for an error message.
func fsMessages(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 8 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

// withDefaults adds cryptvol's own defaults for fstype to options, where
// options do not choose otherwise. ext4: noinit_itable. mkfs.ext4 leaves the
// inode tables unwritten (cryptvol's mkfs cannot discard, so they are not
// known to read as zeroes), and on every mount the kernel's ext4lazyinit
// thread would write them in the background: 16 MiB of zeroes per GiB of
// vault, which fills a sparse vault (16 GiB of a 1 TiB one, in about an
// hour open; docs/PERFORMANCE.md, "A 1 TiB vault"). Unwritten tables read
// as the decryption of zeroes; ext4 and e2fsck
// skip them by the group descriptors' itable_unused counts, which are
// checksummed (docs/GUIDE.md, "Make a vault"). init_itable in options keeps
// the zeroing.
func withDefaults(fstype, options string) string {
	if fstype != "ext4" {
		return options
	}
	for _, o := range strings.Split(options, ",") {
		o = strings.TrimSpace(o)
		if o == "noinit_itable" || o == "init_itable" || strings.HasPrefix(o, "init_itable=") {
			return options
		}
	}
	return strings.TrimPrefix(options+",noinit_itable", ",")
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
