package container

import (
	"fmt"
	"os"

	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/luks"
)

// Info is what a vault's header tells without a passphrase. Nothing in it is
// secret; it is authenticated only once the vault is unlocked, so a tool that
// shows it must not present it as verified.
type Info struct {
	Path     string
	Type     Type
	Version  int // of the format: 1 for cryptvol v1
	FileSize int64
	UUID     string
	Geometry Geometry
	// Sequence numbers the header's updates (0 where the format has none).
	Sequence uint64
	// Primary and Backup are the two copies of the header.
	Primary CopyStatus
	Backup  CopyStatus
	// Keyslots are the active keyslots, by slot number; SlotCount is how
	// many the format has.
	Keyslots  []SlotInfo
	SlotCount int
	// LUKS is everything a LUKS header says (nil for other formats).
	LUKS *luks.Info
}

// CopyStatus describes one header copy.
type CopyStatus struct {
	Offset   int64  // -1 if unknown
	Sequence uint64 // 0 if the copy is not valid
	// Problem is empty for a valid copy identical to the winner, otherwise
	// says what is wrong ("older", or why it is unusable).
	Problem string
}

// SlotInfo describes an active keyslot.
type SlotInfo struct {
	Slot int
	// KDF names the key derivation: "argon2id", and Memory (KiB),
	// Iterations and Threads are its parameters.
	KDF        string
	Memory     uint32
	Iterations uint32
	Threads    uint32
	// Wrap names how the master key is wrapped, e.g. "xchacha20-poly1305".
	Wrap string
	// Weak is a keyslot whose key derivation is cheap enough to make
	// guessing its passphrase fast: for Argon2id, kdf.Params.Weak.
	Weak bool
}

// Inspect reads the vault's header copies without unlocking (and without
// changing the file). It fails with ErrDamaged if no copy is valid.
func Inspect(path string) (*Info, error) {
	if typ, err := detectFile(path); err != nil {
		return nil, err
	} else if isLUKS(typ) {
		return inspectLUKS(path, typ)
	}
	l, err := readLayoutOf(path)
	if err != nil {
		return nil, err
	}
	h := l.winner.h
	info := &Info{
		Path: path, Type: TypeCryptvol, Version: header.Version, FileSize: l.fileSize,
		UUID: FormatUUID(h.UUID), Geometry: v1Geometry(h), Sequence: h.Sequence,
		Primary: l.status(&l.primary), Backup: l.status(&l.backup),
		Keyslots: []SlotInfo{}, SlotCount: header.SlotCount,
	}
	for _, i := range h.ActiveSlots() {
		s := &h.Slots[i]
		info.Keyslots = append(info.Keyslots, SlotInfo{Slot: i, KDF: "argon2id",
			Memory: s.Memory, Iterations: s.Iterations, Threads: s.Threads, Wrap: s.AEAD.String(), Weak: slotParams(s).Weak()})
	}
	return info, nil
}

func (l *layout) status(c *headerCopy) CopyStatus {
	s := CopyStatus{Offset: c.offset}
	if c.valid() {
		s.Sequence = c.h.Sequence
	}
	switch {
	case !c.valid() && c.err != nil:
		s.Problem = c.err.Error()
	case !c.valid():
		s.Problem = "missing"
	case c.h.Sequence < l.winner.h.Sequence:
		s.Problem = fmt.Sprintf("older (sequence %d, current %d)", c.h.Sequence, l.winner.h.Sequence)
	case l.stale(c):
		s.Problem = "differs from the other copy with the same sequence number"
	}
	return s
}

// readLayoutOf reads the header copies of the vault at path, read-only and
// under a shared header lock, so that no header update is seen half-written.
func readLayoutOf(path string) (*layout, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := lockByte(f, headerLockByte, false, true); err != nil {
		return nil, err
	}
	l, err := readLayout(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}
