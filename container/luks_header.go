package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cryptvol/cryptvol/luks"
)

// MaxLUKSBackup bounds a LUKS header backup: two 4 MiB metadata copies and
// 128 MiB of keyslot areas, the largest LUKS2 defines.
const MaxLUKSBackup = 2*4<<20 + 128<<20

// IsLUKSBackup reports whether b starts like a LUKS header (backup).
func IsLUKSBackup(b []byte) bool {
	_, err := luks.Detect(bytes.NewReader(b))
	return err == nil || errors.Is(err, luks.ErrUnsupported)
}

// backupLUKS is BackupHeader for a LUKS volume or header file: cryptsetup's
// luksHeaderBackup file.
func backupLUKS(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := readLUKSHeader(f, path)
	if err != nil {
		return nil, err
	}
	if err := lockByte(f, headerLockByte, false, true); err != nil {
		return nil, err
	}
	defer unlockByte(f, headerLockByte)
	var b bytes.Buffer
	if err := h.WriteBackup(&b, f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b.Bytes(), nil
}

// restoreLUKS is RestoreHeader for a LUKS backup (cryptsetup's format or
// this package's): s must open a keyslot of the backup, whose uuid must be the
// volume's when the volume still has a readable header; package luks refuses
// a backup of another layout. The volume must not be open.
func restoreLUKS(ctx context.Context, path string, backup []byte, s Secret, opts *UnlockOptions, wrap func(luksDevice) luksDevice) error {
	r := bytes.NewReader(backup)
	b, err := luks.Read(r, int64(len(backup)))
	if err != nil {
		return luksError("the header backup", err)
	}
	if err := b.Supported(); err != nil {
		return luksError("the header backup", err)
	}
	secret, err := luksSecret(s)
	if err != nil {
		return err
	}
	defer clear(secret)
	slots := opts.Slots
	if slots == nil {
		slots = []int{luks.AnySlot}
	}
	for _, slot := range slots {
		vk, _, uerr := b.Unlock(ctx, r, secret, slot)
		if err = uerr; err == nil {
			vk.Destroy()
			break
		}
		if !errors.Is(err, luks.ErrWrongPassphrase) {
			break
		}
	}
	if err != nil {
		return luksError("the header backup", err)
	}
	target := headerPath(path, opts.Header)
	f, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lockByte(f, headerLockByte, true, true); err != nil {
		return err
	}
	defer unlockByte(f, headerLockByte)
	if err := lockByte(f, dataLockByte, true, false); err != nil {
		return fmt.Errorf("%s: %w (close it before restoring its header)", path, err)
	}
	defer unlockByte(f, dataLockByte)
	size, err := fileSize(f)
	if err != nil {
		return err
	}
	if cur, err := luks.Read(f, size); err == nil && cur.UUID() != b.UUID() {
		return fmt.Errorf("%w (backup uuid %s, volume uuid %s)", ErrOtherVault, b.UUID(), cur.UUID())
	}
	var dev luksDevice = f
	if wrap != nil {
		dev = wrap(f)
	}
	if _, err := luks.Restore(dev, size, r, int64(len(backup))); err != nil {
		return luksError(target, err)
	}
	return nil
}
