package mount

import (
	"fmt"

	"github.com/cryptvol/cryptvol/mount/fsys"
	"github.com/cryptvol/cryptvol/mount/fusefile"
	"github.com/cryptvol/cryptvol/mount/userfs"
)

// fuseAttachment is the fuse path: the volume served as the one file of a
// private FUSE mount, and nothing more. Its "device" is that file; the
// filesystem in it is mounted by a userspace driver (package userfs), so
// neither step needs root.
type fuseAttachment struct {
	file *fusefile.File
	// drv is the driver serving the filesystem in the file, once mounted.
	drv *userfs.Mount
}

// fuseCache is how the kernel caches the FUSE file of the fuse path
// (docs/PERFORMANCE.md, "Without root"). fuse2fs reads and writes its image
// one 4 KiB block at a time, each a round trip to this server without a
// cache. With the page cache, reads come from the kernel's readahead in
// 128 KiB requests: sequential reads ran 5.7 times as fast (bench/user.sh).
// With the writeback cache as well, writes are gathered too, for a sixth of
// this server's CPU time, and ran up to 1.3 times as fast (fuse2fs itself
// is their limit). Its cost, written data in the kernel and not yet in the
// vault when the server dies, is the kernel filesystem's on the other paths
// (fusefile.WritebackCache); fsync is as durable as without it.
const fuseCache = fusefile.WritebackCache

// driverSource is the source the mount table shows for the filesystem
// driver's mount of the vault id: a name, not the FUSE file's path. A FUSE
// mount made without allow_other refuses root as well as other users, and
// tools that stat the source of every mount (mkfs.btrfs, before it writes)
// fail on a path they may not reach.
func driverSource(id string) string { return "cryptvol:" + id }

// attachFUSE serves dev as a FUSE file (as root with mount(2), as anyone
// else through fusermount3).
func attachFUSE(dev fusefile.Device, opts loopOptions) (*fuseAttachment, error) {
	f, err := fusefile.Serve(dev, fusefile.Options{BaseDir: opts.BaseDir, ID: opts.ID, ReadOnly: opts.ReadOnly,
		OnError: opts.OnError, LockBuffer: opts.LockBuffer, Cache: fuseCache})
	if err != nil {
		return nil, err
	}
	return &fuseAttachment{file: f}, nil
}

// DevicePath is the FUSE file.
func (a *fuseAttachment) DevicePath() string { return a.file.Path() }

// Close unmounts the FUSE file. It refuses with fsys.ErrDeviceInUse,
// changing nothing, while the driver still runs: after its filesystem is
// unmounted it writes what it holds to the file, and it exits only once
// the last user of a lazily unmounted filesystem has let go.
func (a *fuseAttachment) Close() error {
	if a.drv != nil {
		select {
		case <-a.drv.Done():
		default:
			return fmt.Errorf("%s: %w (its filesystem driver, pid %d, still runs)", a.file.Path(), fsys.ErrDeviceInUse, a.drv.PID())
		}
	}
	return a.file.Close()
}
