package container

import (
	"errors"
	"fmt"
	"os"

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
