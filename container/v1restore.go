package container

import (
	"errors"
	"fmt"
	"os"
)

// ErrOtherVault means a header backup belongs to a different vault (uuid).
var ErrOtherVault = errors.New("the header backup belongs to another vault")

// BackupHeader returns the vault's current header block (the winning copy), as
// `cryptvol header backup` stores it. It holds the keyslots: every passphrase
// valid now opens the vault's data with it.
func BackupHeader(path string) ([]byte, error) {
	if typ, err := detectFile(path); err != nil {
		return nil, err
	} else if isLUKS(typ) {
		return backupLUKS(path)
	}
	l, err := readLayoutOf(path)
	if err != nil {
		return nil, err
	}
	return l.winner.raw, nil
}

// RestoreHeader writes a header backup over both header copies of the vault at
// path, by the update procedure of docs/FORMAT.md §9. passphrase must open a slot
// of the backup, whose MAC must verify; its uuid must match the vault's (when the
// vault still has a valid header) and its layout must match the file's size.
// The vault must not be open. opts.Slots restricts the slots tried; the
// unlock of the backup has the context and budget of opts, as Unlock.
func RestoreHeader(path string, backup []byte, s Secret, opts *UnlockOptions) error {
	return restoreHeader(path, backup, s, opts, nil)
}

// restoreHeader is RestoreHeader; wrap, if set, interposes on the header writes
// (tests inject faults with it).
func restoreHeader(path string, backup []byte, s Secret, opts *UnlockOptions, wrap func(fileOps) fileOps) error {
	if opts == nil {
		opts = &UnlockOptions{}
	}
	ctx, done := opts.session()
	defer done()
	if IsLUKSBackup(backup) {
		return restoreLUKS(ctx, path, backup, s, opts, nil)
	}
	passphrase, _, err := v1Secret(s)
	if err != nil {
		return err
	}
	defer clear(passphrase)
	hb, err := validate(backup)
	if err != nil {
		return &damagedError{fmt.Errorf("the header backup is not a valid cryptvol header: %w", err)}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lockByte(f, headerLockByte, true, true); err != nil {
		return err
	}
	if err := lockByte(f, dataLockByte, true, false); err != nil {
		return fmt.Errorf("%s: %w (close it before restoring its header)", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if size := st.Size(); st.Mode().IsRegular() && size != hb.FileSize() {
		return fmt.Errorf("the header backup describes a vault of %d bytes, but %s has %d (a backup from before a resize, or of another vault?)", hb.FileSize(), path, size)
	}
	cur, curErr := readLayout(f)
	seq := hb.Sequence
	if curErr == nil {
		if cur.winner.h.UUID != hb.UUID {
			return fmt.Errorf("%w (backup uuid %s, vault uuid %s)", ErrOtherVault, FormatUUID(hb.UUID), FormatUUID(cur.winner.h.UUID))
		}
		seq = max(seq, cur.winner.h.Sequence)
	} else {
		cur = &layout{}
		cur.winner = &cur.backup
	}
	mk, slot, err := openSlots(ctx, hb, passphrase, opts.Slots, opts.derive)
	if err != nil {
		return err
	}
	v := &v1Vault{path: path, f: f, writable: true, ops: f, l: cur, h: hb, mk: mk, slot: slot, warn: func(string) {}}
	defer mk.Destroy()
	if wrap != nil {
		v.ops = wrap(f)
	}
	if ok, err := verifyMAC(hb, mk); err != nil {
		return err
	} else if !ok {
		return &damagedError{errors.New("the header backup fails authentication (tampered or damaged)")}
	}
	h := *hb
	h.Sequence = seq + 1
	return v.commit(&h)
}

// FormatUUID renders a uuid in the usual 8-4-4-4-12 form.
func FormatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
