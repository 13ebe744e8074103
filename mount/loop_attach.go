package mount

import (
	"errors"
	"fmt"
)

// LoopOptions says where the FUSE file of a loop attachment is mounted and
// whether the attachment is read-only.
type LoopOptions struct {
	// BaseDir and ID place the FUSE mount at BaseDir/ID (see FUSEOptions).
	BaseDir string
	ID      string
	// ReadOnly makes the FUSE file and the loop device read-only.
	ReadOnly bool
	// OnError, if set, is told about every failed Device call.
	OnError func(op string, off int64, err error)
}

// LoopAttachment is a Device made into a kernel block device: served as a
// FUSE file, which is attached to a loop device. Plaintext stays in memory:
// the vault file on disk only ever receives what the Device writes.
type LoopAttachment struct {
	fuse *FUSEFile
	loop *LoopDevice
}

// AttachLoop serves dev as a FUSE file and attaches it to a free loop device
// whose block size is dev.SectorSize(). DevicePath is then ready for Mkfs and
// Mount. It needs root.
func AttachLoop(dev Device, opts LoopOptions) (*LoopAttachment, error) {
	ss := dev.SectorSize()
	if ss <= 0 || dev.Size()%int64(ss) != 0 {
		return nil, fmt.Errorf("attach: device size %d is not a multiple of its sector size %d", dev.Size(), ss)
	}
	f, err := ServeFUSEFile(dev, FUSEOptions{BaseDir: opts.BaseDir, ID: opts.ID, ReadOnly: opts.ReadOnly, OnError: opts.OnError})
	if err != nil {
		return nil, err
	}
	l, err := AttachLoopDevice(f.Path(), LoopConfig{BlockSize: ss, ReadOnly: opts.ReadOnly})
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return &LoopAttachment{fuse: f, loop: l}, nil
}

// DevicePath is the loop device, such as /dev/loop3.
func (a *LoopAttachment) DevicePath() string { return a.loop.Path() }

// Loop is the loop device.
func (a *LoopAttachment) Loop() *LoopDevice { return a.loop }

// FUSE is the FUSE file behind the loop device.
func (a *LoopAttachment) FUSE() *FUSEFile { return a.fuse }

// Close detaches the loop device, then unmounts the FUSE file and waits for
// its server to stop. The order matters: the loop device holds the FUSE file
// open, so the FUSE mount cannot go first, and a FUSE server stopped under a
// live loop device would turn its I/O into errors.
//
// Close refuses with ErrDeviceInUse, changing nothing, while a filesystem on the
// loop device is mounted: detaching would only mark the device to go away
// once that filesystem is unmounted, and the FUSE file could not be unmounted
// until then. Unmount it and call Close again.
func (a *LoopAttachment) Close() error {
	if err := a.loop.Detach(); err != nil {
		return err
	}
	return a.fuse.Close()
}
