package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/kdf"
)

// v1Vault is an unlocked cryptvol v1 vault: the verified header and the
// master key, with the key management of docs/FORMAT.md §9.
type v1Vault struct {
	path     string
	f        *os.File
	writable bool
	ops      fileOps // the file, or a fault-injecting wrapper in tests
	l        *layout
	h        *header.Header // the current header, MAC verified
	mk       *memguard.LockedBuffer
	slot     int
	warn     func(string)
}

// deriveFunc derives a keyslot's key-encryption key (kdf.Derive).
type deriveFunc func(ctx context.Context, secret, salt []byte, p kdf.Params) (*memguard.LockedBuffer, error)

// unlockV1 reads the vault's header, opens a keyslot with s, verifies the
// header MAC, and repairs a damaged or stale header copy (unless read-only).
//
// The vault holds no lock while unlocked: every change takes the header lock
// exclusively, re-reads the header and proceeds only if it is still the one
// unlocked (otherwise ErrHeaderChanged), so two processes never interleave
// header writes and a long key derivation blocks no one.
//
// ctx carries the unlock's kdf.Session (see Unlock).
func unlockV1(ctx context.Context, path string, s Secret, opts *UnlockOptions) (*v1Vault, error) {
	// The file first: a vault that may only be read is refused (and retried
	// read-only by the caller) before keyfiles, which may be pipes that can
	// be read once, are read.
	v, err := openVaultFile(path, opts.ReadOnly, opts.Warn)
	if err != nil {
		return nil, err
	}
	secret, _, err := v1Secret(s)
	if err != nil {
		v.close()
		return nil, err
	}
	defer clear(secret)
	if err := v.unlock(ctx, secret, opts.Slots, opts.derive); err != nil {
		v.close()
		if errors.Is(err, ErrWrongPassphrase) || errors.Is(err, kdf.ErrBudget) {
			err = fmt.Errorf("%s: %w", path, err)
		}
		return nil, err
	}
	if err := v.repair(); err != nil {
		v.close()
		return nil, err
	}
	return v, nil
}

func openVaultFile(path string, readOnly bool, warn func(string)) (*v1Vault, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	if warn == nil {
		warn = func(string) {}
	}
	v := &v1Vault{path: path, f: f, writable: !readOnly, ops: f, warn: warn, slot: -1}
	if err := lockByte(f, headerLockByte, false, true); err != nil {
		f.Close()
		return nil, err
	}
	v.l, err = readLayout(f)
	unlockByte(f, headerLockByte)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// unlock tries the slots on the winning header, then verifies its MAC. When the
// winner fails authentication but the other copy passes with the same master
// key, the other copy is used (and repaired over the bad one later). The same
// holds when no slot of the winner opens but the other copy, valid with the
// same sequence number and different (which no update produces: one of them
// was tampered with), has a slot that does.
func (v *v1Vault) unlock(ctx context.Context, passphrase []byte, slots []int, derive deriveFunc) error {
	other := &v.l.primary
	if v.l.winner == other {
		other = &v.l.backup
	}
	h := v.l.winner.h
	mk, slot, err := openSlots(ctx, h, passphrase, slots, derive)
	if errors.Is(err, ErrWrongPassphrase) && v.l.sameSequenceDifferent(other) {
		var alt *memguard.LockedBuffer
		alt, slot, err = openSlots(ctx, other.h, passphrase, changedSlots(h, other.h, slots), derive)
		if err == nil {
			if ok, merr := verifyMAC(other.h, alt); merr != nil || !ok {
				alt.Destroy()
				return fmt.Errorf("%s: %w", v.path, damaged("header authentication failed: the header was modified without the master key (tampered or damaged)"))
			}
			v.warn(fmt.Sprintf("the %s header copy's keyslots differ from the %s copy's with the same sequence number (tampered or damaged); using the %s copy", v.copyName(v.l.winner), v.copyName(other), v.copyName(other)))
			v.mk, v.slot, v.l.winner, v.h = alt, slot, other, other.h
			return nil
		}
		if !errors.Is(err, ErrWrongPassphrase) {
			return err
		}
	}
	if err != nil {
		return err
	}
	v.mk, v.slot = mk, slot
	ok, err := verifyMAC(h, mk)
	if err != nil {
		return err
	}
	if !ok {
		if alt, err := verifyMAC(other.h, mk); err != nil || !alt {
			return fmt.Errorf("%s: %w", v.path, damaged("header authentication failed: the header was modified without the master key (tampered or damaged)"))
		}
		v.warn(fmt.Sprintf("the %s header copy fails authentication (tampered or damaged); using the %s copy", v.copyName(v.l.winner), v.copyName(other)))
		v.l.winner = other
	}
	v.h = v.l.winner.h
	return nil
}

// changedSlots returns the active slots of b (among want, if not nil) whose
// contents differ from the same slot of a: only those can open where a's did
// not.
func changedSlots(a, b *header.Header, want []int) []int {
	changed := []int{}
	for _, i := range b.ActiveSlots() {
		if a.Slots[i] != b.Slots[i] && (want == nil || slices.Contains(want, i)) {
			changed = append(changed, i)
		}
	}
	return changed
}

func (v *v1Vault) copyName(c *headerCopy) string {
	if c == &v.l.primary {
		return "primary"
	}
	return "backup"
}

// openSlots tries every requested active slot and returns the master key from
// the first that opens. Every slot is tried before giving up (§4), also past a
// slot whose key cannot be derived here (too little memory: the passphrase may
// well belong to another slot) or whose derivation would take the unlock over
// its budget (a cheaper slot after it is still tried), and the error does not
// say which failed how. ctx carries the unlock's kdf.Session, which derives
// each distinct (salt, parameters) once however many slots share it, and
// cancelling ctx stops it within milliseconds.
func openSlots(ctx context.Context, h *header.Header, passphrase []byte, slots []int, derive deriveFunc) (*memguard.LockedBuffer, int, error) {
	if derive == nil {
		derive = kdf.Derive
	}
	active := h.ActiveSlots()
	if slots != nil {
		for _, s := range slots {
			if s < 0 || s >= header.SlotCount {
				return nil, -1, &SlotError{s, fmt.Sprintf("does not exist (slots are 0-%d)", header.SlotCount-1)}
			}
			if !slices.Contains(active, s) {
				return nil, -1, &SlotError{s, "is not active"}
			}
		}
		active = slots
	}
	mk := memguard.NewBuffer(header.MasterKeySize)
	var deriveErr error
	var over *BudgetError
	for _, i := range active {
		s := &h.Slots[i]
		var err error
		// The key-encryption key exists outside locked memory only in the
		// stack frames and registers of the hash and the AEAD: on a stack
		// that is wiped afterwards.
		kdf.OnCleanStack(func() {
			var kek *memguard.LockedBuffer
			if kek, err = derive(ctx, passphrase, s.Salt[:], slotParams(s)); err == nil {
				err = s.Unwrap(mk.Bytes(), kek.Bytes(), h.UUID)
				kek.Destroy()
			}
		})
		var be *kdf.BudgetError
		switch {
		case err == nil:
			if equalHalves(mk.Bytes()) {
				mk.Destroy()
				return nil, -1, damaged("keyslot %d holds an invalid master key (equal XTS halves)", i)
			}
			return mk, i, nil
		case ctx.Err() != nil:
			mk.Destroy()
			return nil, -1, ctx.Err()
		case errors.As(err, &be):
			if over == nil {
				over = &BudgetError{Budget: be.Budget}
			}
			over.Slots = append(over.Slots, i)
			over.Need += slotParams(s).Work()
		case errors.Is(err, header.ErrUnwrap):
		default:
			if deriveErr == nil {
				deriveErr = fmt.Errorf("keyslot %d: %w", i, err)
			}
		}
	}
	mk.Destroy()
	if over != nil {
		return nil, -1, over
	}
	if deriveErr != nil {
		// The passphrase may be this slot's: not "wrong", but untried.
		return nil, -1, deriveErr
	}
	return nil, -1, ErrWrongPassphrase
}

func equalHalves(k []byte) bool {
	var d byte
	for i := 0; i < len(k)/2; i++ {
		d |= k[i] ^ k[i+len(k)/2]
	}
	return d == 0
}

// verifyMAC checks the header MAC with a MAC key derived from mk (§7).
func verifyMAC(h *header.Header, mk *memguard.LockedBuffer) (ok bool, err error) {
	if h == nil {
		return false, nil
	}
	mac := memguard.NewBuffer(header.MACKeySize)
	defer mac.Destroy()
	kdf.OnCleanStack(func() {
		if err = header.MACKey(mac.Bytes(), mk.Bytes(), h.UUID); err == nil {
			ok = h.VerifyMAC(mac.Bytes())
		}
	})
	return ok, err
}

func (v *v1Vault) masterKey() *memguard.LockedBuffer { return v.mk }
func (v *v1Vault) keyslot() int                      { return v.slot }
func (v *v1Vault) uuid() string                      { return FormatUUID(v.h.UUID) }
func (v *v1Vault) geometry() Geometry                { return v1Geometry(v.h) }

// close wipes the master key and releases the file and its lock.
func (v *v1Vault) close() error {
	if v.mk != nil {
		v.mk.Destroy()
		v.mk = nil
	}
	if v.f == nil {
		return nil
	}
	err := v.f.Close()
	v.f = nil
	return err
}
