package mount

import (
	"errors"
	"fmt"

	"github.com/cryptvol/cryptvol/mount/fusefile"
	"github.com/cryptvol/cryptvol/mount/loopdev"
)

// loopOptions says where the FUSE file of a loop attachment is mounted and
// whether the attachment is read-only.
type loopOptions struct {
	// BaseDir and ID place the FUSE mount at BaseDir/ID (see fusefile.Options).
	BaseDir string
	ID      string
	// ReadOnly makes the FUSE file and the loop device read-only.
	ReadOnly bool
	// OnError, if set, is told about every failed Device call.
	OnError func(op string, off int64, err error)
	// LockBuffer, if set, locks buffers of decrypted data
	// (fusefile.Options).
	LockBuffer func([]byte)
}

// loopAttachment is a Device made into a kernel block device: served as a
// FUSE file, which is attached to a loop device. Plaintext stays in memory:
// the vault file on disk only ever receives what the Device writes.
type loopAttachment struct {
	fuse *fusefile.File
	loop *loopdev.Device
}

// attachLoop serves dev as a FUSE file and attaches it to a free loop device
// whose block size is dev.SectorSize(). DevicePath is then ready for Mkfs and
// Mount. It needs root.
func attachLoop(dev fusefile.Device, opts loopOptions) (*loopAttachment, error) {
	ss := dev.SectorSize()
	if ss <= 0 || dev.Size()%int64(ss) != 0 {
		return nil, fmt.Errorf("attach: device size %d is not a multiple of its sector size %d", dev.Size(), ss)
	}
	f, err := fusefile.Serve(dev, fusefile.Options{BaseDir: opts.BaseDir, ID: opts.ID, ReadOnly: opts.ReadOnly, OnError: opts.OnError, LockBuffer: opts.LockBuffer})
	if err != nil {
		return nil, err
	}
	l, err := loopdev.Attach(f.Path(), loopdev.Config{BlockSize: ss, ReadOnly: opts.ReadOnly})
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return &loopAttachment{fuse: f, loop: l}, nil
}

// DevicePath is the loop device, such as /dev/loop3.
func (a *loopAttachment) DevicePath() string { return a.loop.Path() }

// Loop is the loop device.
func (a *loopAttachment) Loop() *loopdev.Device { return a.loop }

// FUSE is the FUSE file behind the loop device.
func (a *loopAttachment) FUSE() *fusefile.File { return a.fuse }

// Close detaches the loop device, then unmounts the FUSE file and waits for
// its server to stop. The order matters: the loop device holds the FUSE file
// open, so the FUSE mount cannot go first, and a FUSE server stopped under a
// live loop device would turn its I/O into errors.
//
// Close refuses with fsys.ErrDeviceInUse, changing nothing, while a filesystem on the
// loop device is mounted: detaching would only mark the device to go away
// once that filesystem is unmounted, and the FUSE file could not be unmounted
// until then. Unmount it and call Close again.
func (a *loopAttachment) Close() error {
	if err := a.loop.Detach(); err != nil {
		return err
	}
	return a.fuse.Close()
}
