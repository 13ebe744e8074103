package container

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Advisory open-file-description locks of docs/FORMAT.md §9 "Locking". They
// belong to the open file, so they are released when it is closed, and a killed
// process cannot leave one behind.
const (
	headerLockByte = 0 // exclusive while changing the header, shared while reading it
	dataLockByte   = 1 // exclusive while open read-write, shared while open read-only
)

// lockByte takes a lock on one byte of f. Header locks wait; the data lock does
// not (a vault open elsewhere is an error, not a reason to wait).
func lockByte(f *os.File, b int64, exclusive, wait bool) error {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: b, Len: 1}
	if exclusive {
		lk.Type = unix.F_WRLCK
	}
	cmd := unix.F_OFD_SETLK
	if wait {
		cmd = unix.F_OFD_SETLKW
	}
	for {
		err := unix.FcntlFlock(f.Fd(), cmd, &lk)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES):
			return ErrInUse
		case errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS):
			// Filesystems without lock support (some FUSE and network ones):
			// go on unprotected rather than refuse the vault.
			return nil
		}
		return fmt.Errorf("locking %s: %w", f.Name(), err)
	}
}

func unlockByte(f *os.File, b int64) {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: b, Len: 1}
	_ = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

// InUse reports whether another process has the vault at path open (its data
// area locked by Open, as the background server and `cryptvol serve` do).
func InUse(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: dataLockByte, Len: 1}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false, nil // no lock support: cannot tell
	}
	return lk.Type != unix.F_UNLCK, nil
}

// holdReplaced takes the data lock of the vault that a forced Create is about
// to replace, and keeps it (until the returned file is closed) so that no one
// opens it meanwhile. A vault that is open already is ErrInUse. A path that
// does not exist, is not a regular file or cannot be opened for writing
// (then the lock is only tested) gives a nil file.
func holdReplaced(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		if open, _ := InUse(path); open {
			return nil, fmt.Errorf("%s: %w: close it before replacing it", path, ErrInUse)
		}
		return nil, nil
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, nil
	}
	if err := lockByte(f, dataLockByte, true, false); err != nil {
		f.Close()
		if errors.Is(err, ErrInUse) {
			return nil, fmt.Errorf("%s: %w: close it before replacing it", path, err)
		}
		return nil, err
	}
	return f, nil
}
