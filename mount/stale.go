package mount

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cryptvol/cryptvol/mount/fsys"
	"github.com/cryptvol/cryptvol/mount/fusefile"
	"github.com/cryptvol/cryptvol/mount/loopdev"
)

// CleanupStale undoes what a server that died without closing (SIGKILL, a
// crash) left behind for s: the filesystem mounted on its device, the loop
// device, the FUSE mount of the loop path, and its registry entries. Writes
// the server had flushed are in the vault file already; the vault opens again
// afterwards. The caller must have checked that the server is dead (!s.Alive()).
// A filesystem still in use is refused (*fsys.BusyError) unless lazy.
func (r Registry) CleanupStale(s State, lazy bool) error {
	if s.Alive() {
		return fmt.Errorf("the server of %s (pid %d) is running: close it instead", s.File, s.PID)
	}
	var devices []string
	if s.Device != "" {
		devices = append(devices, s.Device)
	}
	fuseFile := filepath.Join(r.FUSEDir(s.ID), fusefile.FileName)
	if s.Via == ViaLoop {
		if loops, err := loopdev.BackedBy(fuseFile); err == nil {
			for _, l := range loops {
				if l != s.Device {
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
			return err
		}
		for _, m := range mounts {
			if err := fsys.Unmount(m.MountPoint, lazy); err != nil && !errors.Is(err, fsys.ErrNotMounted) {
				return err
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
		return err
	}
	r.Remove(s.ID)
	return nil
}
