package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cryptvol/cryptvol/mount/fsys"
	"github.com/cryptvol/cryptvol/mount/fusefile"
	"github.com/cryptvol/cryptvol/mount/loopdev"
	"github.com/cryptvol/cryptvol/mount/userfs"
)

// CleanupStale undoes what a server that died without closing (SIGKILL, a
// crash) left behind for s: the filesystem mounted on its device, the loop
// device, the FUSE mount of the loop and fuse paths, the fuse path's
// filesystem driver, and its registry entries. Writes
// the server had flushed are in the vault file already; the vault opens again
// afterwards. The caller must have checked that the server is dead (!s.Alive()).
// A filesystem still in use is refused (*fsys.BusyError) unless lazy.
//
// The recorded device may have been reused by someone else since the server
// died (a loop device detaches itself once its filesystem is unmounted, and
// an NBD device is free once let go): before unmounting or detaching it,
// CleanupStale checks that it still is this vault's (ownsDevice). One that is
// not is left alone, and the returned notes say so.
func (r Registry) CleanupStale(s State, lazy bool) (notes []string, err error) {
	if s.Alive() {
		return nil, fmt.Errorf("the server of %s (pid %d) is running: close it instead", s.File, s.PID)
	}
	if s.Via == ViaFUSE {
		if err := r.cleanupStaleFUSE(s, lazy); err != nil {
			return nil, err
		}
		r.Remove(s.ID)
		return nil, nil
	}
	var devices []string
	if s.Device != "" {
		if ok, why := r.ownsDevice(s, sysBlock); ok {
			devices = append(devices, s.Device)
		} else if why != "" {
			notes = append(notes, fmt.Sprintf("%s %s, not by this vault: left alone", s.Device, why))
		}
	}
	fuseFile := filepath.Join(r.FUSEDir(s.ID), fusefile.FileName)
	if s.Via == ViaLoop {
		if loops, err := loopdev.BackedBy(fuseFile); err == nil {
			for _, l := range loops {
				if !slices.Contains(devices, l) {
					devices = append(devices, l)
				}
			}
		}
	}
	// Unmount every filesystem on the devices (the recorded mount point and any
	// other place it was mounted).
	for _, dev := range devices {
		mounts, err := fsys.MountsOfDevice(dev)
		if err != nil {
			return notes, err
		}
		for _, m := range mounts {
			if err := fsys.Unmount(m.MountPoint, lazy); err != nil && !errors.Is(err, fsys.ErrNotMounted) {
				return notes, err
			}
		}
	}
	var errs []error
	for _, dev := range devices {
		switch s.Via {
		case ViaLoop:
			// Autoclear detaches the device once unmounted; this covers a
			// device that was never mounted. A lazily unmounted filesystem
			// still in use keeps it attached until its last user leaves.
			if err := loopdev.DetachPath(dev); err != nil && !(lazy && errors.Is(err, fsys.ErrDeviceInUse)) {
				errs = append(errs, err)
			}
		case ViaNBD:
			if err := disconnectKernelNBD(dev); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if s.Via == ViaLoop {
		if err := fusefile.UnmountStale(r.FUSEDir(s.ID)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return notes, err
	}
	r.Remove(s.ID)
	return notes, nil
}

// ownsDevice reports whether s.Device still is the device s's server attached
// and, if not, what it is now ("" when it is not attached at all, which
// needs no note): a loop device still backed by this vault's FUSE file (by
// device and inode where recorded, and by path), or an NBD device still
// served by the task recorded (where an older server recorded none: by no
// task that is alive).
func (r Registry) ownsDevice(s State, sysBlock string) (bool, string) {
	switch s.Via {
	case ViaLoop:
		b, err := loopdev.BackingOf(s.Device)
		switch {
		case errors.Is(err, loopdev.ErrNotAttached):
			return false, ""
		case err != nil:
			return false, fmt.Sprintf("could not be checked (%v)", err)
		case s.Backing != nil && (b.Dev != s.Backing.Dev || b.Ino != s.Backing.Ino),
			!slices.Contains(r.fuseFileNames(s.ID), strings.TrimSuffix(b.Path, " (deleted)")):
			return false, "is backed by " + b.Path + " now"
		}
		return true, ""
	case ViaNBD:
		task, err := nbdTask(sysBlock, s.Device)
		switch {
		case err != nil:
			return false, fmt.Sprintf("could not be checked (%v)", err)
		case task == 0:
			return false, ""
		case s.NBDPid != 0 && task != s.NBDPid,
			s.NBDPid == 0 && taskAlive(task):
			return false, fmt.Sprintf("is served by task %d now", task)
		}
		return true, ""
	}
	return false, ""
}

// fuseFileNames are the names the kernel may give the FUSE file of the vault
// id: under the registry as configured, and with its symbolic links resolved.
func (r Registry) fuseFileNames(id string) []string {
	names := []string{filepath.Join(r.FUSEDir(id), fusefile.FileName)}
	if abs, err := filepath.Abs(r.Dir); err == nil {
		names = append(names, filepath.Join(abs, id, fusefile.FileName))
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			names = append(names, filepath.Join(real, id, fusefile.FileName))
		}
	}
	return names
}

// taskAlive reports whether a process or thread with id task exists.
func taskAlive(task int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(task))
	return err == nil
}

// staleDriverWait is how long the cleanup of a dead server waits for its
// filesystem driver to exit once the filesystem is unmounted (its writes
// fail at once: the FUSE file under it is dead).
const staleDriverWait = 10 * time.Second

// cleanupStaleFUSE undoes the fuse path of a dead server: the driver's
// mount on the mount point (refused if busy, unless lazy), the driver
// itself, then the dead FUSE file's mount.
func (r Registry) cleanupStaleFUSE(s State, lazy bool) error {
	if mp := s.MountPoint; mp != "" {
		// Only the driver's mount of this vault's file is unmounted;
		// whatever else is mounted there now is left alone.
		m, ok, err := fsys.MountAt(mp)
		if err != nil {
			return err
		}
		// Its source is driverSource, or the FUSE file's path where an
		// earlier cryptvol mounted it.
		if ok && strings.HasPrefix(m.FSType, "fuse") &&
			(m.Source == driverSource(s.ID) || slices.Contains(r.fuseFileNames(s.ID), m.Source)) {
			if err := fsys.UnmountFUSE(mp, lazy); err != nil && !errors.Is(err, fsys.ErrNotMounted) {
				return err
			}
		}
	}
	if s.DriverPID > 0 {
		alive := func() bool {
			start, err := processStart(s.DriverPID)
			return err == nil && start == s.DriverStart
		}
		wait := staleDriverWait
		if lazy {
			wait = time.Second // it may serve a busy filesystem for long
		}
		if alive() {
			userfs.WaitExit(s.DriverPID, alive, wait)
		}
	}
	return fusefile.UnmountStale(r.FUSEDir(s.ID))
}
