// Package hostile generates hostile vaults: damaged, truncated, tampered and
// out-of-bounds variants of a healthy vault, in the spirit of cryptsetup's
// tests/generators and luks2-validation-test. Each Case copies a base vault
// and changes bytes of it — fixing the header checksum where the case needs
// a copy that passes it, and re-sealing the header MAC with the master key
// where it needs an authentic one — and says what cryptvol must make of it:
// open it (repairing the other copy where one is bad), refuse the passphrase
// (exit 3), or refuse the vault as damaged or unsupported (exit 4), always
// with a message that names the problem, never with a panic, a hang or a
// large allocation.
//
// The tests of package container (library) and cmd/cryptvol (CLI) run every
// case; testvectors/README.md lists them.
package hostile

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/kdf"
	"github.com/cryptvol/cryptvol/testvectors/gen/internal/sparse"
)

// Outcome is what opening a hostile vault with the base passphrase must give.
type Outcome int

const (
	// Opens: the vault opens and nothing needs repair.
	Opens Outcome = iota
	// Repaired: the vault opens, and the bad copy is rewritten from the
	// good one with a warning (exit 0). Read-only, it is only reported.
	Repaired
	// WrongPassphrase: no keyslot opens (exit 3): a slot was made unusable.
	WrongPassphrase
	// Damaged: refused as damaged or unsupported (exit 4).
	Damaged
)

func (o Outcome) String() string {
	return [...]string{"opens", "repaired", "wrong passphrase", "damaged"}[o]
}

// ExitCode is the CLI's exit code for the outcome (README.md "Exit codes").
func (o Outcome) ExitCode() int {
	return [...]int{0, 0, 3, 4}[o]
}

// Case is one hostile vault.
type Case struct {
	Name string
	// Inspect says whether reading the header without a passphrase
	// (container.Inspect, `cryptvol info`) succeeds; it fails exactly when
	// no header copy is usable.
	Inspect bool
	// Unlock is the outcome of unlocking with the base passphrase.
	Unlock Outcome
	// Message is a regular expression the error (or, for Repaired, the
	// warning) must match.
	Message string
	mutate  func(m *mutator) error
}

// Base is the healthy vault the cases are made from. Its header must be
// exactly as container.Create wrote it: one keyslot, 0, opened by Passphrase.
type Base struct {
	Path       string
	Passphrase []byte
}

// Make writes the case's vault to path (a sparse copy of the base, changed).
func (c *Case) Make(b Base, path string) error {
	if err := sparse.Copy(b.Path, path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	m := &mutator{f: f, base: b}
	if err := c.mutate(m); err != nil {
		return fmt.Errorf("hostile case %s: %w", c.Name, err)
	}
	return f.Close()
}

// Header field offsets (docs/FORMAT.md §3, §4).
const (
	offVersion     = 8
	offFlags       = 12
	offSequence    = 16
	offCipher      = 40
	offSectorSize  = 44
	offDataOffset  = 48
	offDataSize    = 56
	offSlotCount   = 64
	offSlotSize    = 66
	offSlotsOffset = 68
	offMAC         = 4032
	offChecksum    = 4064

	slot0         = header.SlotsOffset
	slot1         = header.SlotsOffset + header.SlotSize
	offKDF        = 2
	offKDFMemory  = 4
	offKDFTime    = 8
	offKDFThreads = 12
	offAEAD       = 18
	offSalt       = 24
)

// Which header copies a change applies to.
type which int

const (
	primary which = 1 << iota
	backup
	both = primary | backup
)

func (w which) String() string {
	switch w {
	case primary:
		return "primary"
	case backup:
		return "backup"
	}
	return "both"
}

var be = binary.BigEndian

func u16(off int, v uint16) func([]byte) { return func(b []byte) { be.PutUint16(b[off:], v) } }
func u32(off int, v uint32) func([]byte) { return func(b []byte) { be.PutUint32(b[off:], v) } }
func u64(off int, v uint64) func([]byte) { return func(b []byte) { be.PutUint64(b[off:], v) } }
func flip(off int) func([]byte)          { return func(b []byte) { b[off] ^= 0x5a } }
func zero(from, to int) func([]byte)     { return func(b []byte) { clear(b[from:to]) } }

// Cases returns every hostile vault, in a stable order.
func Cases() []Case {
	var cs []Case
	add := func(c Case) { cs = append(cs, c) }
	// fixed changes bytes of the copies w and fixes their checksums, so the
	// change reaches field validation.
	fixed := func(name string, w which, out Outcome, msg string, f func([]byte)) {
		add(Case{Name: name + "-" + w.String(), Inspect: w != both || out != Damaged, Unlock: out, Message: msg,
			mutate: func(m *mutator) error { return m.edit(w, true, f) }})
	}
	// invalid is a field change that makes a copy invalid: the other copy
	// repairs it, and in both copies the vault is damaged.
	invalid := func(name, msg string, f func([]byte)) {
		fixed(name, primary, Repaired, "primary header copy was unusable: .*"+msg+".*; repaired it", f)
		fixed(name, backup, Repaired, "backup header copy was unusable: .*"+msg+".*; repaired it", f)
		fixed(name, both, Damaged, "both header copies are unusable: primary: .*"+msg, f)
	}

	// Checksums: a damaged or half-written copy.
	for _, w := range []which{primary, backup} {
		add(Case{Name: "checksum-" + w.String(), Inspect: true, Unlock: Repaired,
			Message: w.String() + " header copy was unusable: checksum mismatch",
			mutate:  func(m *mutator) error { return m.edit(w, false, flip(100)) }})
	}
	add(Case{Name: "checksum-both", Unlock: Damaged, Message: "both header copies are unusable: primary: checksum mismatch .*; backup: checksum mismatch",
		mutate: func(m *mutator) error { return m.edit(both, false, flip(3000)) }})
	add(Case{Name: "torn-primary", Inspect: true, Unlock: Repaired, Message: "primary header copy was unusable: checksum mismatch",
		mutate: func(m *mutator) error { return m.torn(primary) }})
	add(Case{Name: "torn-backup", Inspect: true, Unlock: Repaired, Message: "backup header copy was unusable: checksum mismatch",
		mutate: func(m *mutator) error { return m.torn(backup) }})

	// Argon2 parameters outside the bounds of §4.
	invalid("kdf-memory-1TiB", "argon2id memory 1073741824 KiB is above the maximum", u32(slot0+offKDFMemory, 1<<30))
	invalid("kdf-memory-0", "argon2id memory 0 KiB is below the minimum", u32(slot0+offKDFMemory, 0))
	invalid("kdf-iterations-0", "argon2id iterations 0 is below the minimum", u32(slot0+offKDFTime, 0))
	invalid("kdf-iterations-max", "argon2id iterations 4294967295 is above the maximum", u32(slot0+offKDFTime, 0xffffffff))
	invalid("kdf-threads-0", "argon2id threads 0 is below the minimum", u32(slot0+offKDFThreads, 0))
	invalid("kdf-threads-1000", "argon2id threads 1000 is above the maximum", u32(slot0+offKDFThreads, 1000))
	invalid("kdf-work", "argon2id work 68157440 \\(memory KiB × iterations\\) is above the maximum", func(b []byte) {
		be.PutUint32(b[slot0+offKDFMemory:], 1<<20) // 1 GiB: in bounds
		be.PutUint32(b[slot0+offKDFTime:], 65)      // in bounds; the product is not
	})
	invalid("kdf-unknown", "keyslot 0 kdf: 2 is not a known key derivation function", u16(slot0+offKDF, 2))
	invalid("aead-unknown", "keyslot 0 aead: 3 is not a known AEAD", u16(slot0+offAEAD, 3))

	// Geometry and layout fields.
	invalid("data-offset-0", "data_offset: 0 is not a multiple of 1 MiB", u64(offDataOffset, 0))
	invalid("data-offset-4096", "data_offset: 4096 is not a multiple of 1 MiB", u64(offDataOffset, 4096))
	invalid("data-offset-2^63", "data_offset: 9223372036854775808 is not", u64(offDataOffset, 1<<63))
	invalid("data-size-0", "data_size: 0 is not a non-zero multiple", u64(offDataSize, 0))
	invalid("data-size-2^64-4096", "data_size: 18446744073709547520 is not", u64(offDataSize, 1<<64-4096))
	invalid("sector-size-3", "sector_size: 3 is not 512 or 4096", u32(offSectorSize, 3))
	invalid("sector-size-0", "sector_size: 0 is not 512 or 4096", u32(offSectorSize, 0))
	invalid("sector-size-8192", "sector_size: 8192 is not 512 or 4096", u32(offSectorSize, 8192))
	invalid("slot-count-0xffff", "slot_count: 65535, version 1 has 8", u16(offSlotCount, 0xffff))
	invalid("slot-count-0", "slot_count: 0, version 1 has 8", u16(offSlotCount, 0))
	invalid("slot-size-0xffff", "slot_size: 65535, version 1 has 256", u16(offSlotSize, 0xffff))
	invalid("slot-size-0", "slot_size: 0, version 1 has 256", u16(offSlotSize, 0))
	invalid("slots-offset-4096", "slots_offset: 4096, version 1 has 512", u32(offSlotsOffset, 4096))
	invalid("slots-offset-0xffffffff", "slots_offset: 4294967295, version 1 has 512", u32(offSlotsOffset, 0xffffffff))
	invalid("header-size-0", "header_size: 0, want 4096", u16(10, 0))
	invalid("key-bytes-32", "key_bytes: 32, want 64", u16(42, 32))
	invalid("cipher-2", "cipher: 2 is not a known cipher", u16(offCipher, 2))
	invalid("flags", "flags: 0x1, no flags are defined", u32(offFlags, 1))
	invalid("sequence-0", "sequence: 0, must be at least 1", u64(offSequence, 0))
	invalid("reserved", "reserved: bytes 72-511 are not zero", flip(100))
	invalid("reserved-tail", "reserved: bytes 2560-4031 are not zero", flip(3000))
	invalid("slot-reserved", "keyslot 0 reserved: not zero", flip(slot0+200))
	invalid("inactive-slot-not-zero", "keyslot 1 state: inactive, but its bytes are not all zero", flip(slot1+100))
	invalid("slot-state-2", "keyslot 0 state: 2 is neither 0", u16(slot0, 2))
	invalid("no-active-slot", "keyslots: no active keyslot", zero(slot0, slot0+header.SlotSize))
	invalid("version-2", "unsupported format version 2", u16(offVersion, 2))
	// With both copies of another version, the message is that alone.
	cs[len(cs)-1].Message = "unsupported format version 2 \\(this cryptvol reads version 1\\)"
	invalid("no-magic", "not a cryptvol header", zero(0, 8))
	cs[len(cs)-1].Message = "not a cryptvol vault"

	// Layouts that do not fit the file: the copy that fits wins.
	fixed("data-offset-past-end", primary, Repaired, "primary header copy was unusable: describes a vault of [0-9]+ bytes, but the file has [0-9]+", u64(offDataOffset, header.MaxDataOffset))
	fixed("data-offset-past-end", both, Damaged, "vault is truncated: its header describes [0-9]+ bytes", u64(offDataOffset, header.MaxDataOffset))
	fixed("data-size-past-end", primary, Repaired, "primary header copy was unusable: describes a vault of [0-9]+ bytes", u64(offDataSize, 1<<40))
	fixed("data-size-past-end", both, Damaged, "vault is truncated: its header describes 1099512680448 bytes", u64(offDataSize, 1<<40))
	cs[len(cs)-1].Inspect, cs[len(cs)-3].Inspect = false, false // both copies "valid", the layout not
	add(Case{Name: "truncated", Unlock: Damaged, Message: "vault is truncated: its header describes [0-9]+ bytes, the file has 1052672",
		mutate: func(m *mutator) error { return m.f.Truncate(header.DataAlignment + 4096) }})
	add(Case{Name: "truncated-backup-half", Unlock: Damaged, Message: "vault is truncated",
		mutate: func(m *mutator) error { return m.truncateBy(2048) }})
	add(Case{Name: "shorter-than-header", Unlock: Damaged, Message: "file is 100 bytes, shorter than one header",
		mutate: func(m *mutator) error { return m.f.Truncate(100) }})
	add(Case{Name: "empty", Unlock: Damaged, Message: "file is 0 bytes, shorter than one header",
		mutate: func(m *mutator) error { return m.f.Truncate(0) }})
	add(Case{Name: "random-bytes", Unlock: Damaged, Message: "not a cryptvol vault",
		mutate: func(m *mutator) error { return m.random() }})

	// The header MAC: a change made without the master key.
	fixed("mac", primary, Repaired, "primary header copy fails authentication \\(tampered or damaged\\); using the backup copy", flip(offMAC))
	fixed("mac", backup, Repaired, "backup header copy was different from the other copy with the same sequence number; repaired it", flip(offMAC))
	fixed("mac", both, Damaged, "header authentication failed", flip(offMAC))
	// A field changed to another valid value: the sector size (same layout).
	fixed("mac-sector-size", primary, Repaired, "primary header copy fails authentication", u32(offSectorSize, 512))
	fixed("mac-sector-size", both, Damaged, "header authentication failed", u32(offSectorSize, 512))
	cs[len(cs)-1].Inspect, cs[len(cs)-3].Inspect = true, true // the MAC needs the key: info cannot tell

	// Keyslots changed: their AEAD tag fails, like a wrong passphrase.
	fixed("slot-salt", both, WrongPassphrase, "wrong passphrase", flip(slot0+offSalt))
	fixed("slot-iterations", both, WrongPassphrase, "wrong passphrase", u32(slot0+offKDFTime, 2))
	fixed("slot-salt", primary, Repaired, "primary header copy's keyslots differ from the backup copy's with the same sequence number \\(tampered or damaged\\); using the backup copy", flip(slot0+offSalt))
	fixed("slot-salt", backup, Repaired, "backup header copy was different from the other copy with the same sequence number; repaired it", flip(slot0+offSalt))
	add(Case{Name: "slot-equal-halves-both", Inspect: true, Unlock: Damaged, Message: "keyslot 0 holds an invalid master key \\(equal XTS halves\\)",
		mutate: func(m *mutator) error { return m.equalHalves() }})

	// Sequence numbers and stale copies.
	add(Case{Name: "backup-newer", Inspect: true, Unlock: Repaired, Message: "primary header copy was older \\(sequence 1, current 2\\); repaired it",
		mutate: func(m *mutator) error {
			return m.reseal(backup, func(h *header.Header) { h.Sequence++ })
		}})
	add(Case{Name: "backup-newer-forged", Inspect: true, Unlock: Repaired, Message: "backup header copy fails authentication \\(tampered or damaged\\); using the primary copy",
		mutate: func(m *mutator) error { return m.edit(backup, true, u64(offSequence, 2)) }})
	add(Case{Name: "same-sequence-different", Inspect: true, Unlock: Repaired, Message: "backup header copy was different from the other copy with the same sequence number; repaired it",
		mutate: func(m *mutator) error { return m.rewrapSlot0(backup) }})
	add(Case{Name: "stale-backup-at-tail", Inspect: true, Unlock: Opens,
		mutate: func(m *mutator) error { return m.staleTail(false) }})
	add(Case{Name: "stale-backup-at-tail-primary-damaged", Inspect: true, Unlock: Repaired, Message: "primary header copy was unusable: checksum mismatch",
		mutate: func(m *mutator) error { return m.staleTail(true) }})
	return cs
}

// mutator changes one copy of the base vault.
type mutator struct {
	f    *os.File
	base Base
}

func (m *mutator) size() (int64, error) {
	st, err := m.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// offsets returns the offsets of the copies w: the primary at 0, the backup
// in the last header block of the file.
func (m *mutator) offsets(w which) ([]int64, error) {
	size, err := m.size()
	if err != nil {
		return nil, err
	}
	var offs []int64
	if w&primary != 0 {
		offs = append(offs, 0)
	}
	if w&backup != 0 {
		offs = append(offs, size-header.Size)
	}
	return offs, nil
}

func (m *mutator) block(off int64) ([]byte, error) {
	b := make([]byte, header.Size)
	_, err := m.f.ReadAt(b, off)
	return b, err
}

// edit applies f to the copies w, fixing their checksums if fix.
func (m *mutator) edit(w which, fix bool, f func([]byte)) error {
	offs, err := m.offsets(w)
	if err != nil {
		return err
	}
	for _, off := range offs {
		b, err := m.block(off)
		if err != nil {
			return err
		}
		f(b)
		if fix {
			FixChecksum(b)
		}
		if _, err := m.f.WriteAt(b, off); err != nil {
			return err
		}
	}
	return nil
}

// FixChecksum recomputes the checksum of a header block (§3).
func FixChecksum(b []byte) {
	sum := sha256.Sum256(b[:offChecksum])
	copy(b[offChecksum:], sum[:])
}

// torn writes the first half of a newer header (sequence + 1, authentic)
// over the copy w, as a crash in the middle of the write would leave it.
func (m *mutator) torn(w which) error {
	offs, err := m.offsets(w)
	if err != nil {
		return err
	}
	newer, err := m.resealed(offs[0], func(h *header.Header) { h.Sequence++ })
	if err != nil {
		return err
	}
	_, err = m.f.WriteAt(newer[:header.Size/2], offs[0])
	return err
}

func (m *mutator) truncateBy(n int64) error {
	size, err := m.size()
	if err != nil {
		return err
	}
	return m.f.Truncate(size - n)
}

func (m *mutator) random() error {
	size, err := m.size()
	if err != nil {
		return err
	}
	b := make([]byte, min(size, 2<<20))
	rand.Read(b)
	if err := m.f.Truncate(0); err != nil {
		return err
	}
	_, err = m.f.WriteAt(b, 0)
	return err
}

// masterKey unlocks the base vault (read-only) and returns its master key.
func (m *mutator) masterKey() ([]byte, error) {
	v, err := container.Unlock(m.base.Path, container.Passphrase(m.base.Passphrase), &container.UnlockOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer v.Close()
	var mk bytes.Buffer
	if err := v.WriteKey(&mk); err != nil {
		return nil, err
	}
	return mk.Bytes(), nil
}

// resealed returns the copy at off changed by f, with a valid MAC and checksum.
func (m *mutator) resealed(off int64, f func(*header.Header)) ([]byte, error) {
	mk, err := m.masterKey()
	if err != nil {
		return nil, err
	}
	b, err := m.block(off)
	if err != nil {
		return nil, err
	}
	h, err := header.Decode(b)
	if err != nil {
		return nil, err
	}
	f(h)
	return seal(h, mk)
}

func seal(h *header.Header, mk []byte) ([]byte, error) {
	mac := make([]byte, header.MACKeySize)
	if err := header.MACKey(mac, mk, h.UUID); err != nil {
		return nil, err
	}
	h.Seal(mac)
	return h.Encode(), nil
}

// reseal changes the copies w through f and seals them: authentic copies,
// as a cryptvol with the master key would write them.
func (m *mutator) reseal(w which, f func(*header.Header)) error {
	offs, err := m.offsets(w)
	if err != nil {
		return err
	}
	for _, off := range offs {
		b, err := m.resealed(off, f)
		if err != nil {
			return err
		}
		if _, err := m.f.WriteAt(b, off); err != nil {
			return err
		}
	}
	return nil
}

// tinyKDF are the cheapest parameters the format allows.
var tinyKDF = kdf.Params{Memory: kdf.MinMemory, Iterations: 1, Threads: 1}

// wrap returns slot 0 wrapping mk under the base passphrase.
func (m *mutator) wrap(mk []byte, uuid [16]byte) (header.Slot, error) {
	s, err := header.NewSlot(tinyKDF.Memory, tinyKDF.Iterations, tinyKDF.Threads, header.XChaCha20Poly1305)
	if err != nil {
		return s, err
	}
	kek, err := kdf.Derive(context.Background(), m.base.Passphrase, s.Salt[:], tinyKDF)
	if err != nil {
		return s, err
	}
	defer kek.Destroy()
	return s, s.Wrap(kek.Bytes(), mk, uuid)
}

// rewrapSlot0 re-wraps the master key into slot 0 of the copies w with a
// fresh salt and nonce and seals them: authentic, same sequence, different
// bytes from the other copy.
func (m *mutator) rewrapSlot0(w which) error {
	mk, err := m.masterKey()
	if err != nil {
		return err
	}
	var werr error
	err = m.reseal(w, func(h *header.Header) {
		h.Slots[0], werr = m.wrap(mk, h.UUID)
	})
	return errors.Join(err, werr)
}

// equalHalves replaces slot 0 of both copies with one wrapping a master key
// whose XTS halves are equal, and seals the header with that key: the slot
// opens, the MAC verifies, and the key must still be refused (§4, §6).
func (m *mutator) equalHalves() error {
	bad := make([]byte, header.MasterKeySize)
	rand.Read(bad[:header.MasterKeySize/2])
	copy(bad[header.MasterKeySize/2:], bad)
	offs, err := m.offsets(both)
	if err != nil {
		return err
	}
	for _, off := range offs {
		b, err := m.block(off)
		if err != nil {
			return err
		}
		h, err := header.Decode(b)
		if err != nil {
			return err
		}
		if h.Slots[0], err = m.wrap(bad, h.UUID); err != nil {
			return err
		}
		if b, err = seal(h, bad); err != nil {
			return err
		}
		if _, err := m.f.WriteAt(b, off); err != nil {
			return err
		}
	}
	return nil
}

// staleTail grows the file by 1 MiB and leaves a copy of the header in its
// last block, where it does not belong (a backup left over from another
// layout); with damagePrimary the primary copy's checksum fails as well.
func (m *mutator) staleTail(damagePrimary bool) error {
	b, err := m.block(0)
	if err != nil {
		return err
	}
	size, err := m.size()
	if err != nil {
		return err
	}
	if _, err := m.f.WriteAt(b, size+header.DataAlignment-header.Size); err != nil {
		return err
	}
	if damagePrimary {
		return m.edit(primary, false, flip(100))
	}
	return nil
}
