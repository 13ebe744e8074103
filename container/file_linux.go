package container

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rename moves the finished vault into place: atomically replacing an existing
// file with force, and never replacing one without.
func rename(from, to string, force bool) error {
	if force {
		return os.Rename(from, to)
	}
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%s: %w", to, ErrExists)
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS):
		// Filesystems without RENAME_NOREPLACE: link fails if the name exists.
		if err := os.Link(from, to); err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s: %w", to, ErrExists)
			}
			return err
		}
		return os.Remove(from)
	}
	return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
}

// writeBehind starts writing back n bytes of f at off without waiting
// (sync_file_range SYNC_FILE_RANGE_WRITE; see Volume.pwrite). Errors are
// ignored: it only changes when the kernel writes.
func writeBehind(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// fdatasync makes f's data durable.
func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

// punchHole releases n bytes of f at off; they read back as zeros.
func punchHole(f *os.File, off, n int64) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// directAlign is what O_DIRECT asks of a read's buffer address, offset and
// length on any block device (logical blocks of 512 or 4096 bytes).
const directAlign = 4096

// directAligned reports whether p can be read at off with O_DIRECT.
func directAligned(p []byte, off int64) bool {
	return len(p) > 0 && len(p)%directAlign == 0 && off%directAlign == 0 &&
		uintptr(unsafe.Pointer(&p[0]))%directAlign == 0
}

// openDirect opens f's file again, read-only with O_DIRECT (by its
// /proc/self/fd link: the same file even if its name has changed since), or
// returns nil where direct reads are not known to be coherent with f's
// buffered writes. ext4, XFS and btrfs write a range's dirty pages back
// before a direct read of it, so it sees every write that has returned.
func openDirect(f *os.File) *os.File {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return nil
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC:
	default:
		return nil
	}
	d, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Fstat(int(d.Fd()), &b) != nil || a.Dev != b.Dev || a.Ino != b.Ino {
		d.Close()
		return nil
	}
	return d
}

// noCachestat is set when the kernel has no cachestat (before Linux 6.5):
// then cachedAll is false without asking again.
var noCachestat atomic.Bool

// cachedAll reports whether every page of f in [off, off+n) is in the page
// cache (cachestat, Linux 6.5; false where it is missing, so that before 6.5
// ReadAtDirect reads even cached ciphertext from the disk).
func cachedAll(f *os.File, off, n int64) bool {
	if noCachestat.Load() {
		return false
	}
	var cs unix.Cachestat_t
	r := unix.CachestatRange{Off: uint64(off), Len: uint64(n)}
	if err := unix.Cachestat(uint(f.Fd()), &r, &cs, 0); err != nil {
		if errors.Is(err, unix.ENOSYS) {
			noCachestat.Store(true)
		}
		return false
	}
	pg := int64(os.Getpagesize())
	return cs.Cache >= uint64((off+n+pg-1)/pg-off/pg)
}
