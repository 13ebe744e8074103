package container

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/header"
)

// ErrShrink is returned for a size smaller than the vault's: shrinking would
// cut off the end of the filesystem inside.
var ErrShrink = errors.New("shrinking a vault is not supported: it would cut off the end of its filesystem")

// grow enlarges the vault's data area to newSize plaintext bytes, by the
// procedure of docs/FORMAT.md §9 "Growing": the file is extended, the new space
// (and the old backup header, now inside it) is overwritten, and then the new
// header is written at the new end before the primary copy, so that a crash
// leaves either the old size or the new one. The vault must not be open.
// progress, if set, follows the random fill of the new space.
func (v *v1Vault) grow(ctx context.Context, newSize int64, fill Fill, progress func(done, total int64)) error {
	if !v.writable {
		return errReadOnlyVault
	}
	old := v.h
	ss := int64(old.SectorSize)
	switch {
	case newSize < int64(old.DataSize):
		return ErrShrink
	case newSize == int64(old.DataSize):
		return fmt.Errorf("%s is already %d bytes", v.path, newSize)
	case newSize%ss != 0:
		return fmt.Errorf("size %d: must be a multiple of the sector size (%d)", newSize, ss)
	case uint64(newSize) > header.MaxDataSize:
		return fmt.Errorf("size %d: above the maximum of 2^60 bytes", newSize)
	}
	if st, err := v.f.Stat(); err != nil {
		return err
	} else if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file: only vault files can grow", v.path)
	}
	if err := lockByte(v.f, dataLockByte, true, false); err != nil {
		return fmt.Errorf("%s: %w (close it before resizing)", v.path, err)
	}
	defer unlockByte(v.f, dataLockByte)
	release, err := v.lockForUpdate()
	if err != nil {
		return err
	}
	defer release()

	h := *old
	h.Sequence++
	h.DataSize = uint64(newSize)
	if err := v.f.Truncate(h.FileSize()); err != nil {
		return err
	}
	// The old backup header becomes data: overwrite it (it holds the keyslots)
	// together with the new space, before any header names the new size.
	start := int64(old.DataSize)
	end := start + header.Size
	if fill == FillRandom {
		end = newSize
	}
	if err := v.overwrite(ctx, start, end, progress); err != nil {
		return err
	}
	if err := fdatasync(v.f); err != nil {
		return err
	}
	// The old backup is gone; the primary copy is the only valid one, so the
	// new header goes to the new end first (commit's order), then the primary.
	v.l.backup = headerCopy{offset: h.BackupOffset(), err: errors.New("not written yet")}
	return v.commitLocked(&h)
}

// overwrite writes the XTS encryption of random data over the plaintext range
// [start, end) (whole sectors) of the data area.
func (v *v1Vault) overwrite(ctx context.Context, start, end int64, progress func(done, total int64)) error {
	keys := memguard.NewBuffer(cipher.StateSize)
	defer keys.Destroy()
	x, err := cipher.New(v.mk.Bytes(), keys.Bytes(), int(v.h.SectorSize))
	if err != nil {
		return err
	}
	buf := make([]byte, chunkSize)
	ss := int64(v.h.SectorSize)
	for off := start; off < end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := buf[:min(int64(len(buf)), end-off)]
		b = b[:int64(len(b))/ss*ss]
		rand.Read(b)
		x.Encrypt(b, b, uint64(off/ss))
		if _, err := v.f.WriteAt(b, int64(v.h.DataOffset)+off); err != nil {
			return err
		}
		off += int64(len(b))
		if progress != nil {
			progress(off-start, end-start)
		}
	}
	return nil
}
