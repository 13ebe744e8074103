package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/kdf"
)

// fileOps is how header updates reach the file. Tests substitute a wrapper that
// fails (or tears) the Nth write or sync, to prove the update protocol.
type fileOps interface {
	io.WriterAt
	Sync() error
}

// defaultAEAD wraps new keyslots: a 24-byte random nonce leaves no room for
// nonce reuse, whatever the random source's history.
const defaultAEAD = header.XChaCha20Poly1305

// lockForUpdate takes the header lock exclusively and re-reads both copies; it
// fails with ErrHeaderChanged if either differs from what this Vault read when
// it unlocked. The caller calls the returned function to release the lock.
func (v *v1Vault) lockForUpdate() (func(), error) {
	if err := lockByte(v.f, headerLockByte, true, true); err != nil {
		return nil, err
	}
	release := func() { unlockByte(v.f, headerLockByte) }
	if v.l.winner.raw == nil { // a vault being created, or restored over a damaged header
		return release, nil
	}
	l, err := readLayout(v.f)
	if err != nil || l.backup.offset != v.l.backup.offset ||
		!bytes.Equal(l.primary.raw, v.l.primary.raw) || !bytes.Equal(l.backup.raw, v.l.backup.raw) {
		release()
		return nil, ErrHeaderChanged
	}
	return release, nil
}

// repair writes the winning copy over a damaged, missing or older one
// (docs/FORMAT.md §9). A read-only vault only reports.
func (v *v1Vault) repair() error {
	if !v.l.stale(&v.l.primary) && !v.l.stale(&v.l.backup) {
		return nil
	}
	if v.writable {
		release, err := v.lockForUpdate()
		if errors.Is(err, ErrHeaderChanged) {
			return nil // someone else updated (and so repaired) it
		}
		if err != nil {
			return err
		}
		defer release()
	}
	for _, c := range []*headerCopy{&v.l.primary, &v.l.backup} {
		if !v.l.stale(c) {
			continue
		}
		why := "damaged"
		switch {
		case c.valid() && c.h.Sequence == v.h.Sequence:
			why = "different from the other copy with the same sequence number"
		case c.valid():
			why = fmt.Sprintf("older (sequence %d, current %d)", c.h.Sequence, v.h.Sequence)
		case c.err != nil:
			why = "unusable: " + c.err.Error()
		}
		name := v.copyName(c)
		if !v.writable {
			v.warn(fmt.Sprintf("the %s header copy is %s; not repaired (opened read-only)", name, why))
			continue
		}
		off := int64(0)
		if c == &v.l.backup {
			off = v.h.BackupOffset()
		}
		if err := v.writeCopy(v.l.winner.raw, off); err != nil {
			return fmt.Errorf("repairing the %s header copy: %w", name, err)
		}
		*c = headerCopy{offset: off, raw: v.l.winner.raw, h: v.h}
		v.l.winner = &v.l.primary
		v.warn(fmt.Sprintf("the %s header copy was %s; repaired it from the other copy", name, why))
	}
	return nil
}

func (v *v1Vault) writeCopy(raw []byte, off int64) error {
	if _, err := v.ops.WriteAt(raw, off); err != nil {
		return err
	}
	return v.ops.Sync()
}

// commit writes h as the next header by the update protocol of §9: sealed with
// the MAC, written first over the copy that is not the sole current one, synced,
// then over the other, synced. At every moment one complete valid copy of the
// old or the new header is on disk.
func (v *v1Vault) commit(h *header.Header) error {
	if !v.writable {
		return errReadOnlyVault
	}
	release, err := v.lockForUpdate()
	if err != nil {
		return err
	}
	defer release()
	return v.commitLocked(h)
}

// commitLocked is commit for a caller that holds the header lock.
func (v *v1Vault) commitLocked(h *header.Header) error {
	mac := memguard.NewBuffer(header.MACKeySize)
	if err := header.MACKey(mac.Bytes(), v.mk.Bytes(), h.UUID); err != nil {
		mac.Destroy()
		return err
	}
	h.Seal(mac.Bytes())
	mac.Destroy()
	raw := h.Encode()
	if _, err := validate(raw); err != nil {
		return fmt.Errorf("internal error: refusing to write an invalid header: %w", err)
	}

	offs := [2]int64{h.BackupOffset(), 0}
	if v.l.stale(&v.l.primary) {
		offs = [2]int64{0, h.BackupOffset()}
	}
	for _, off := range offs {
		if err := v.writeCopy(raw, off); err != nil {
			return fmt.Errorf("writing the header: %w", err)
		}
	}
	v.l.primary = headerCopy{offset: 0, raw: raw, h: h}
	v.l.backup = headerCopy{offset: h.BackupOffset(), raw: raw, h: h}
	v.l.winner = &v.l.primary
	v.h = h
	return nil
}

// next returns a copy of the current header with the sequence number advanced.
func (v *v1Vault) next() *header.Header {
	h := *v.h
	h.Sequence++
	return &h
}

// newSlot wraps the master key under the secret ns with parameters p. A
// secret that is empty as a whole (ErrEmptySecret) is refused.
func (v *v1Vault) newSlot(ctx context.Context, ns Secret, p kdf.Params) (header.Slot, error) {
	if err := p.Validate(); err != nil {
		return header.Slot{}, err
	}
	passphrase, empty, err := v1Secret(ns)
	if err != nil {
		return header.Slot{}, err
	}
	defer clear(passphrase)
	if empty {
		return header.Slot{}, ErrEmptySecret
	}
	s, err := header.NewSlot(p.Memory, p.Iterations, p.Threads, defaultAEAD)
	if err != nil {
		return header.Slot{}, err
	}
	kdf.OnCleanStack(func() { // see openSlots
		var kek *memguard.LockedBuffer
		if kek, err = kdf.Derive(ctx, passphrase, s.Salt[:], p); err == nil {
			err = s.Wrap(kek.Bytes(), v.mk.Bytes(), v.h.UUID)
			kek.Destroy()
		}
	})
	return s, err
}

func (v *v1Vault) checkSlot(slot int, wantActive bool) error {
	if slot < 0 || slot >= header.SlotCount {
		return &SlotError{slot, fmt.Sprintf("does not exist (slots are 0-%d)", header.SlotCount-1)}
	}
	if active := v.h.Slots[slot].Active; active != wantActive {
		if active {
			return &SlotError{slot, "is already in use"}
		}
		return &SlotError{slot, "is not active"}
	}
	return nil
}

// addKey wraps the master key under a new secret in slot (or in the lowest
// free slot if slot < 0) and returns the slot used.
func (v *v1Vault) addKey(ctx context.Context, ns Secret, p kdf.Params, slot int) (int, error) {
	if slot < 0 {
		if slot = v.h.FreeSlot(); slot < 0 {
			return -1, ErrNoFreeSlot
		}
	}
	if err := v.checkSlot(slot, false); err != nil {
		return -1, err
	}
	s, err := v.newSlot(ctx, ns, p)
	if err != nil {
		return -1, err
	}
	h := v.next()
	h.Slots[slot] = s
	return slot, v.commit(h)
}

// changeKey replaces the secret of an active slot, keeping its number. The
// new one goes into a free slot first (both work after that step), and then
// moves into slot, clearing the free one (§9). With no free slot the
// replacement is one update, still atomic through the two header copies.
func (v *v1Vault) changeKey(ctx context.Context, slot int, ns Secret, p kdf.Params) error {
	if err := v.checkSlot(slot, true); err != nil {
		return err
	}
	s, err := v.newSlot(ctx, ns, p)
	if err != nil {
		return err
	}
	if free := v.h.FreeSlot(); free >= 0 {
		h := v.next()
		h.Slots[free] = s
		if err := v.commit(h); err != nil {
			return err
		}
		h = v.next()
		h.Slots[slot], h.Slots[free] = s, header.Slot{}
		return v.commit(h)
	}
	h := v.next()
	h.Slots[slot] = s
	return v.commit(h)
}

// removeKey clears an active slot in both header copies. Removing the last
// active slot is refused.
func (v *v1Vault) removeKey(slot int) error {
	if err := v.checkSlot(slot, true); err != nil {
		return err
	}
	if len(v.h.ActiveSlots()) == 1 {
		return ErrLastSlot
	}
	h := v.next()
	h.Slots[slot] = header.Slot{}
	return v.commit(h)
}
