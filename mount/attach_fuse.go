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
// one 4 KiB block at a time. Without a cache each of those is a round trip
// to this server; with the page cache, reads come from the kernel's
// readahead in 128 KiB requests, and sequential reads ran 5.7 times as fast
// (177 against 31 MiB/s, bench/user.sh), random 4 KiB reads 1.7 times. A
// writeback cache as well did not make writes faster (fuse2fs itself is
// their limit: 34 MiB/s with or without it, as on a plaintext image) and
// made reads slower (64 MiB/s), and it would keep written data in the
// kernel, not yet in the vault file, until written back: so writes go
// through (fusefile.PageCache).
const fuseCache = fusefile.PageCache

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
