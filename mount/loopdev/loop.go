// Package loopdev attaches files to kernel loop devices and detaches them:
// with direct I/O (the FUSE file's plaintext never enters the page cache), a
// block size matching the volume's sectors, and autoclear, so a killed server
// leaves no device behind once its filesystem is unmounted. It needs root.
package loopdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/mount/fsys"
)

// Config says how a file is attached to a loop device.
type Config struct {
	// BlockSize is the logical block size of the loop device: a power of
	// two from 512 to 4096; 512 when 0. Use Device.SectorSize so that the
	// filesystem's I/O is sector-aligned.
	BlockSize int
	// ReadOnly attaches read-only: the device refuses writes.
	ReadOnly bool
}

// Device is a loop device attached to a backing file. It is attached with
// LO_FLAGS_AUTOCLEAR, so the kernel detaches it by itself when its last user
// closes it: this Device holds it open until Detach, and a process that
// dies without detaching leaves no loop device behind once the mounts on it
// are gone.
type Device struct {
	path    string
	num     int
	backing string

	mu   sync.Mutex
	hold *os.File // read-only, keeps the device attached; nil once detached
}

const (
	loopAttachTries = 16               // LOOP_CTL_GET_FREE races with other attachers
	loopDetachWait  = 10 * time.Second // for the kernel to finish a detach
)

// Attach attaches the file backing to a free loop device, with direct
// I/O (the loop device does not keep a second page cache of the file; the
// kernel silently falls back to buffered I/O if the file does not support it,
// see DirectIO) and autoclear.
func Attach(backing string, cfg Config) (*Device, error) {
	return attachLoop(backing, cfg, false)
}

// attachLoop is Attach; legacy forces the pre-5.8 ioctls (tests).
func attachLoop(backing string, cfg Config, legacy bool) (*Device, error) {
	bs := cfg.BlockSize
	if bs == 0 {
		bs = 512
	}
	if bs < 512 || bs > os.Getpagesize() || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("loop: block size %d is not a power of two from 512 to %d", bs, os.Getpagesize())
	}
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, fmt.Errorf("loop: %w", err)
	}
	mode := os.O_RDWR
	if cfg.ReadOnly {
		mode = os.O_RDONLY
	}
	file, err := os.OpenFile(backing, mode|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loop: open backing file: %w", err)
	}
	defer file.Close() // the loop device holds its own reference

	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loop: %w", err)
	}
	defer ctl.Close()

	for try := 0; ; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("loop: find a free device: %w", err)
		}
		l, err := attachLoopNumber(n, file, backing, bs, cfg.ReadOnly, legacy)
		if errors.Is(err, unix.EBUSY) && try < loopAttachTries {
			continue // someone else took loop n between GET_FREE and us
		}
		return l, err
	}
}

// attachLoopNumber binds file to /dev/loopN. legacy forces the pre-5.8 path.
func attachLoopNumber(n int, file *os.File, backing string, bs int, readOnly, legacy bool) (*Device, error) {
	path := "/dev/loop" + strconv.Itoa(n)
	// The loop driver makes the device read-only if it is opened without
	// write access at configure time, so a writable attach needs O_RDWR.
	mode := os.O_RDWR
	if readOnly {
		mode = os.O_RDONLY
	}
	dev, err := os.OpenFile(path, mode|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loop: %w", err)
	}
	defer dev.Close()

	flags := uint32(unix.LO_FLAGS_AUTOCLEAR | unix.LO_FLAGS_DIRECT_IO)
	if readOnly {
		flags |= unix.LO_FLAGS_READ_ONLY
	}
	if !legacy {
		err = loopConfigure(dev, file, backing, bs, flags)
	}
	if legacy || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		err = loopSetFD(dev, file, backing, bs, flags)
	}
	if err != nil {
		return nil, fmt.Errorf("loop: attach %s to %s: %w", backing, path, err)
	}

	// Keep the device open read-only from now on and let go of the
	// writable descriptor: on kernels built without
	// CONFIG_BLK_DEV_WRITE_MOUNTED a writer would keep the filesystem on
	// the device from being mounted. Open before closing, or autoclear
	// would detach the device in between.
	hold, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
		return nil, fmt.Errorf("loop: reopen %s: %w", path, err)
	}
	// Remember the backing file as the kernel names it, to recognise
	// this attachment when waiting for its end.
	if b, err := fsys.LoopBackingFile(n); err == nil && b != "" {
		backing = b
	}
	return &Device{path: path, num: n, backing: backing, hold: hold}, nil
}

// loopConfigure attaches with LOOP_CONFIGURE (Linux 5.8): file, block size and
// flags in one ioctl, so the device is never visible half set up.
func loopConfigure(dev, file *os.File, backing string, bs int, flags uint32) error {
	cfg := unix.LoopConfig{Fd: uint32(file.Fd()), Size: uint32(bs)}
	cfg.Info.Flags = flags
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], backing)
	return unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
}

// loopSetFD is the pre-5.8 sequence: LOOP_SET_FD, then LOOP_SET_BLOCK_SIZE
// (4.14), LOOP_SET_DIRECT_IO (4.10) and LOOP_SET_STATUS64 for autoclear.
// Read-only follows from the file's open mode.
func loopSetFD(dev, file *os.File, backing string, bs int, flags uint32) error {
	fd := int(dev.Fd())
	if err := unix.IoctlSetInt(fd, unix.LOOP_SET_FD, int(file.Fd())); err != nil {
		return err
	}
	err := unix.IoctlSetInt(fd, unix.LOOP_SET_BLOCK_SIZE, bs)
	if err == nil {
		// Best effort, as with LOOP_CONFIGURE: the kernel refuses
		// direct I/O the file cannot do.
		unix.IoctlSetInt(fd, unix.LOOP_SET_DIRECT_IO, 1)
		var info unix.LoopInfo64
		info.Flags = flags & unix.LO_FLAGS_AUTOCLEAR
		copy(info.File_name[:len(info.File_name)-1], backing)
		err = unix.IoctlLoopSetStatus64(fd, &info)
	}
	if err != nil {
		unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
		return err
	}
	return nil
}

// ErrNotAttached is a loop device with no backing file.
var ErrNotAttached = errors.New("loop device is not attached")

// BackingFile is the file behind a loop device: its device and inode numbers
// as the kernel reports them (LOOP_GET_STATUS64), which tell it apart from
// any other file whatever its name, and its path as the kernel names it.
type BackingFile struct {
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
	Path string `json:"-"`
}

// Backing returns the file behind l.
func (l *Device) Backing() (BackingFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hold == nil {
		return BackingFile{}, ErrNotAttached
	}
	return backingOf(int(l.hold.Fd()), l.num)
}

// BackingOf returns the file behind the loop device at path (such as
// /dev/loop3), or ErrNotAttached: to check, before touching a device that a
// dead process recorded, that it still is the one it attached.
func BackingOf(path string) (BackingFile, error) {
	n, err := loopNumber(path)
	if err != nil {
		return BackingFile{}, err
	}
	if b, err := fsys.LoopBackingFile(n); err != nil {
		return BackingFile{}, err
	} else if b == "" {
		return BackingFile{}, ErrNotAttached
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return BackingFile{}, fmt.Errorf("loop: %w", err)
	}
	defer f.Close()
	return backingOf(int(f.Fd()), n)
}

func backingOf(fd, n int) (BackingFile, error) {
	info, err := unix.IoctlLoopGetStatus64(fd)
	if errors.Is(err, unix.ENXIO) {
		return BackingFile{}, ErrNotAttached
	}
	if err != nil {
		return BackingFile{}, fmt.Errorf("loop: LOOP_GET_STATUS64 on /dev/loop%d: %w", n, err)
	}
	path, err := fsys.LoopBackingFile(n)
	if err != nil {
		return BackingFile{}, err
	}
	return BackingFile{Dev: info.Device, Ino: info.Inode, Path: path}, nil
}

// Path is the device node, such as /dev/loop3.
func (l *Device) Path() string { return l.path }

// Number is N in /dev/loopN.
func (l *Device) Number() int { return l.num }

// DirectIO reports whether the kernel actually does direct I/O on the backing
// file (/sys/block/loopN/loop/dio): it silently uses buffered I/O when the
// file does not support O_DIRECT.
func (l *Device) DirectIO() (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/sys/block/loop%d/loop/dio", l.num))
	if err != nil {
		return false, fmt.Errorf("loop: %w", err)
	}
	return strings.TrimSpace(string(b)) == "1", nil
}

// Detach flushes the loop device to its backing file and detaches it, and
// waits until the kernel has let go of the file. It refuses with fsys.ErrDeviceInUse
// while a filesystem on the device is mounted (unmount it first); calling it
// again after success does nothing.
func (l *Device) Detach() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hold == nil {
		return nil
	}
	if err := loopCheckUnused(l.path); err != nil {
		return err
	}
	// fsync of a block device writes its dirty pages and sends a flush,
	// which reaches the backing file's fsync. It also reports, once, any
	// write to the device that failed since it was opened, even one that
	// the filesystem on it saw fail and reported long ago (a full disk
	// under the vault): so a failed flush is tried again, and only a
	// second failure, a write failing now, keeps the device attached, with
	// what it still holds, for a close after space is freed.
	if err := l.hold.Sync(); err != nil {
		if err := l.hold.Sync(); err != nil {
			return fmt.Errorf("loop: flush %s: %w", l.path, err)
		}
	}
	err := unix.IoctlSetInt(int(l.hold.Fd()), unix.LOOP_CLR_FD, 0)
	if err != nil && !errors.Is(err, unix.ENXIO) { // ENXIO: already detached
		return fmt.Errorf("loop: detach %s: %w", l.path, err)
	}
	l.hold.Close() // the last close does the detach (autoclear)
	l.hold = nil
	return loopWaitDetached(l.num, l.path, l.backing)
}

// DetachPath detaches the loop device at path (such as /dev/loop3) that
// this process did not attach, for example one left behind by a process that
// was killed. Like Device.Detach it refuses while the device is mounted.
func DetachPath(path string) error {
	n, err := loopNumber(path)
	if err != nil {
		return err
	}
	backing, err := fsys.LoopBackingFile(n)
	if err != nil {
		return err
	}
	if backing == "" {
		return nil // not attached
	}
	if err := loopCheckUnused(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loop: %w", err)
	}
	err = unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0)
	f.Close()
	if err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("loop: detach %s: %w", path, err)
	}
	return loopWaitDetached(n, path, backing)
}

// loopCheckUnused fails with an error wrapping fsys.ErrDeviceInUse if the device
// is claimed exclusively, which a mounted filesystem always does.
func loopCheckUnused(path string) error {
	if err := fsys.CheckUnclaimed(path); err != nil {
		return fmt.Errorf("loop: %w", err)
	}
	return nil
}

// loopWaitDetached waits until /sys/block/loopN/loop is gone, which happens
// when the last opener of the device has closed it.
func loopWaitDetached(n int, path, backing string) error {
	deadline := time.Now().Add(loopDetachWait)
	for {
		b, err := fsys.LoopBackingFile(n)
		if err != nil {
			return err
		}
		if b != backing {
			return nil // detached (and maybe already reused)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("loop: %s is still attached to %s after %v: %w (open by %s)",
				path, backing, loopDetachWait, fsys.ErrDeviceInUse, loopOpeners(path))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// loopOpeners names the processes with path open, for error messages.
func loopOpeners(path string) string {
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	var who []string
	for _, fd := range fds {
		if t, err := os.Readlink(fd); err == nil && t == path {
			pid := strings.Split(fd, "/")[2]
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			who = append(who, fmt.Sprintf("pid %s (%s)", pid, strings.TrimSpace(string(comm))))
		}
	}
	if len(who) == 0 {
		return "no process found"
	}
	return strings.Join(who, ", ")
}

func loopNumber(path string) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("loop: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(path), "loop"))
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || err != nil || !strings.HasPrefix(filepath.Base(path), "loop") {
		return 0, fmt.Errorf("loop: %s is not a loop device", path)
	}
	return n, nil
}
