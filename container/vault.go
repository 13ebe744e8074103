package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/kdf"
)

// Vault is an unlocked vault opened for key management: it holds the master key
// and the verified header. It does not give access to the data (see Volume).
// Close wipes the master key.
type Vault struct {
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

// UnlockOptions tune Unlock. The zero value tries every slot, opens the file
// read-write and repairs a damaged or stale header copy.
type UnlockOptions struct {
	// Slots restricts the keyslots tried (nil: every active slot).
	Slots []int
	// ReadOnly opens the file read-only; nothing is repaired or changed.
	ReadOnly bool
	// Warn receives notices such as a header copy repaired or found damaged.
	Warn func(msg string)

	// derive replaces kdf.Derive for this call: a test seam that counts the
	// slots tried or makes one fail. Nil in production.
	derive deriveFunc
}

// deriveFunc derives a keyslot's key-encryption key (kdf.Derive).
type deriveFunc func(secret, salt []byte, p kdf.Params) (*memguard.LockedBuffer, error)

// Unlock reads the vault's header, opens a keyslot with passphrase, verifies the
// header MAC, and repairs a damaged or stale header copy (unless read-only).
//
// The Vault holds no lock while open: every change takes the header lock
// exclusively, re-reads the header and proceeds only if it is still the one
// unlocked (otherwise ErrHeaderChanged), so two processes never interleave
// header writes and a long key derivation blocks no one.
func Unlock(path string, passphrase []byte, opts *UnlockOptions) (*Vault, error) {
	if opts == nil {
		opts = &UnlockOptions{}
	}
	v, err := openVaultFile(path, opts.ReadOnly, opts.Warn)
	if err != nil {
		return nil, err
	}
	if err := v.unlock(passphrase, opts.Slots, opts.derive); err != nil {
		v.Close()
		if errors.Is(err, ErrWrongPassphrase) {
			err = fmt.Errorf("%s: %w", path, err)
		}
		return nil, err
	}
	if err := v.repair(); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

func openVaultFile(path string, readOnly bool, warn func(string)) (*Vault, error) {
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
	v := &Vault{path: path, f: f, writable: !readOnly, ops: f, warn: warn, slot: -1}
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
func (v *Vault) unlock(passphrase []byte, slots []int, derive deriveFunc) error {
	other := &v.l.primary
	if v.l.winner == other {
		other = &v.l.backup
	}
	h := v.l.winner.h
	mk, slot, err := openSlots(h, passphrase, slots, derive)
	if errors.Is(err, ErrWrongPassphrase) && v.l.sameSequenceDifferent(other) {
		var alt *memguard.LockedBuffer
		alt, slot, err = openSlots(other.h, passphrase, changedSlots(h, other.h, slots), derive)
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

func (v *Vault) copyName(c *headerCopy) string {
	if c == &v.l.primary {
		return "primary"
	}
	return "backup"
}

// openSlots tries every requested active slot and returns the master key from
// the first that opens. Every slot is tried before giving up (§4), also past a
// slot whose key cannot be derived here (too little memory: the passphrase may
// well belong to another slot), and the error does not say which failed how.
func openSlots(h *header.Header, passphrase []byte, slots []int, derive deriveFunc) (*memguard.LockedBuffer, int, error) {
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
	for _, i := range active {
		s := &h.Slots[i]
		kek, err := derive(passphrase, s.Salt[:], slotParams(s))
		if err != nil {
			if deriveErr == nil {
				deriveErr = fmt.Errorf("keyslot %d: %w", i, err)
			}
			continue
		}
		err = s.Unwrap(mk.Bytes(), kek.Bytes(), h.UUID)
		kek.Destroy()
		if err == nil {
			if equalHalves(mk.Bytes()) {
				mk.Destroy()
				return nil, -1, damaged("keyslot %d holds an invalid master key (equal XTS halves)", i)
			}
			return mk, i, nil
		}
	}
	mk.Destroy()
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
func verifyMAC(h *header.Header, mk *memguard.LockedBuffer) (bool, error) {
	if h == nil {
		return false, nil
	}
	mac := memguard.NewBuffer(header.MACKeySize)
	defer mac.Destroy()
	if err := header.MACKey(mac.Bytes(), mk.Bytes(), h.UUID); err != nil {
		return false, err
	}
	return h.VerifyMAC(mac.Bytes()), nil
}

// Path returns the vault file's path.
func (v *Vault) Path() string { return v.path }

// Slot returns the keyslot that opened the vault.
func (v *Vault) Slot() int { return v.slot }

// Header returns a copy of the current (verified) header.
func (v *Vault) Header() header.Header { return *v.h }

// WriteKey writes the master key to w, for handing an unlocked vault to another
// process over a pipe (never a file, argv or the environment); OpenWithKey reads
// it back.
func (v *Vault) WriteKey(w io.Writer) error {
	if v.mk == nil {
		return ErrClosed
	}
	_, err := w.Write(v.mk.Bytes())
	return err
}

// Close wipes the master key and releases the file and its lock.
func (v *Vault) Close() error {
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

var errReadOnlyVault = errors.New("vault was unlocked read-only")

// ErrHeaderChanged means another process changed the header since this one
// read it; the operation was not done and can be retried.
var ErrHeaderChanged = errors.New("the vault header was changed by another process meanwhile; try again")
