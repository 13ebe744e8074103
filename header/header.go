// Package header encodes, decodes and validates the version 1 vault header of
// docs/FORMAT.md (§3, §4, §7): bytes in, bytes out. It knows the layout and the
// keyslot wrapping, but not where a header lives in a file, nor how keys are
// derived: container composes those.
//
// Decode never panics and never allocates in proportion to a value read from the
// header; every field is checked against its rule before Decode returns it, and a
// failure names the field.
package header

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Layout constants of docs/FORMAT.md §2–§4.
const (
	Size           = 4096
	Version        = 1
	SlotCount      = 8
	SlotSize       = 256
	SlotsOffset    = 512
	macOffset      = 4032
	checksumOffset = 4064

	DataAlignment = 1 << 20
	MaxDataOffset = 1 << 30
	MaxDataSize   = 1 << 60

	// MasterKeySize is the size of the master key: an XTS-AES-256 key.
	MasterKeySize = 64

	// CipherAESXTSPlain64 is the only cipher of version 1 (§6).
	CipherAESXTSPlain64 = 1
)

// Magic identifies a cryptvol header: its first 8 bytes.
const Magic = "CRYPTVOL"

// Header is a decoded, validated header.
type Header struct {
	Sequence   uint64
	UUID       [16]byte
	Cipher     uint16
	SectorSize uint32
	DataOffset uint64
	DataSize   uint64
	Slots      [SlotCount]Slot
	MAC        [32]byte
}

// CipherName returns the dm-crypt style name of the cipher.
func (h *Header) CipherName() string {
	if h.Cipher == CipherAESXTSPlain64 {
		return "aes-xts-plain64"
	}
	return fmt.Sprintf("unknown-%d", h.Cipher)
}

// BackupOffset is where the backup copy starts: right after the data area.
func (h *Header) BackupOffset() int64 { return int64(h.DataOffset + h.DataSize) }

// FileSize is the size of a vault file with this layout.
func (h *Header) FileSize() int64 { return h.BackupOffset() + Size }

// ActiveSlots returns the indexes of the active keyslots.
func (h *Header) ActiveSlots() []int {
	var a []int
	for i := range h.Slots {
		if h.Slots[i].Active {
			a = append(a, i)
		}
	}
	return a
}

// FreeSlot returns the lowest inactive slot, or -1.
func (h *Header) FreeSlot() int {
	for i := range h.Slots {
		if !h.Slots[i].Active {
			return i
		}
	}
	return -1
}

// Errors from Decode. A header that fails any check is either damaged (ErrChecksum),
// not a cryptvol header (ErrNoMagic), of another version (*VersionError), or
// malformed (*FieldError).
var (
	ErrChecksum = errors.New("checksum mismatch (damaged or partly written)")
	ErrNoMagic  = errors.New("not a cryptvol header (no magic)")
	ErrSize     = errors.New("header is shorter than 4096 bytes")
)

// VersionError is a header of a version this code does not read.
type VersionError struct{ Version uint16 }

func (e *VersionError) Error() string {
	return fmt.Sprintf("unsupported format version %d (this cryptvol reads version %d)", e.Version, Version)
}

// FieldError is a header field that breaks its rule.
type FieldError struct {
	Field  string // as named in docs/FORMAT.md, e.g. "sector_size", "keyslot 3 nonce"
	Reason string
}

func (e *FieldError) Error() string { return "header field " + e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Decode validates a 4096-byte header block (§3 "Validation") and decodes it.
func Decode(b []byte) (*Header, error) {
	if len(b) < Size {
		return nil, ErrSize
	}
	b = b[:Size]
	sum := sha256.Sum256(b[:checksumOffset])
	if !bytes.Equal(sum[:], b[checksumOffset:]) {
		return nil, ErrChecksum
	}
	if string(b[:len(Magic)]) != Magic {
		return nil, ErrNoMagic
	}
	be := binary.BigEndian
	if v := be.Uint16(b[8:]); v != Version {
		return nil, &VersionError{v}
	}
	h := &Header{
		Sequence:   be.Uint64(b[16:]),
		Cipher:     be.Uint16(b[40:]),
		SectorSize: be.Uint32(b[44:]),
		DataOffset: be.Uint64(b[48:]),
		DataSize:   be.Uint64(b[56:]),
	}
	copy(h.UUID[:], b[24:40])
	copy(h.MAC[:], b[macOffset:checksumOffset])

	switch {
	case be.Uint16(b[10:]) != Size:
		return nil, fieldErr("header_size", "%d, want %d", be.Uint16(b[10:]), Size)
	case be.Uint32(b[12:]) != 0:
		return nil, fieldErr("flags", "%#x, no flags are defined in version 1", be.Uint32(b[12:]))
	case h.Sequence == 0:
		return nil, fieldErr("sequence", "0, must be at least 1")
	case h.Cipher != CipherAESXTSPlain64:
		return nil, fieldErr("cipher", "%d is not a known cipher", h.Cipher)
	case be.Uint16(b[42:]) != MasterKeySize:
		return nil, fieldErr("key_bytes", "%d, want %d", be.Uint16(b[42:]), MasterKeySize)
	case h.SectorSize != 512 && h.SectorSize != 4096:
		return nil, fieldErr("sector_size", "%d is not 512 or 4096", h.SectorSize)
	case h.DataOffset < DataAlignment || h.DataOffset > MaxDataOffset || h.DataOffset%DataAlignment != 0:
		return nil, fieldErr("data_offset", "%d is not a multiple of 1 MiB between 1 MiB and 1 GiB", h.DataOffset)
	case h.DataSize == 0 || h.DataSize > MaxDataSize || h.DataSize%uint64(h.SectorSize) != 0:
		return nil, fieldErr("data_size", "%d is not a non-zero multiple of the sector size up to 2^60", h.DataSize)
	case be.Uint16(b[64:]) != SlotCount:
		return nil, fieldErr("slot_count", "%d, version 1 has %d", be.Uint16(b[64:]), SlotCount)
	case be.Uint16(b[66:]) != SlotSize:
		return nil, fieldErr("slot_size", "%d, version 1 has %d", be.Uint16(b[66:]), SlotSize)
	case be.Uint32(b[68:]) != SlotsOffset:
		return nil, fieldErr("slots_offset", "%d, version 1 has %d", be.Uint32(b[68:]), SlotsOffset)
	case !allZero(b[72:SlotsOffset]):
		return nil, fieldErr("reserved", "bytes 72-511 are not zero")
	case !allZero(b[SlotsOffset+SlotCount*SlotSize : macOffset]):
		return nil, fieldErr("reserved", "bytes 2560-4031 are not zero")
	}
	for i := range h.Slots {
		off := SlotsOffset + i*SlotSize
		if err := h.Slots[i].decode(b[off : off+SlotSize]); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				fe.Field = fmt.Sprintf("keyslot %d %s", i, fe.Field)
			}
			return nil, err
		}
	}
	if len(h.ActiveSlots()) == 0 {
		return nil, fieldErr("keyslots", "no active keyslot")
	}
	return h, nil
}

// Encode returns the 4096-byte block for h with its checksum. The MAC is encoded
// as it stands: call Seal first after any change.
func (h *Header) Encode() []byte {
	b := h.encodeBody()
	copy(b[macOffset:], h.MAC[:])
	sum := sha256.Sum256(b[:checksumOffset])
	copy(b[checksumOffset:], sum[:])
	return b
}

// encodeBody encodes every field the MAC covers (bytes 0-4031).
func (h *Header) encodeBody() []byte {
	b := make([]byte, Size)
	be := binary.BigEndian
	copy(b, Magic)
	be.PutUint16(b[8:], Version)
	be.PutUint16(b[10:], Size)
	be.PutUint64(b[16:], h.Sequence)
	copy(b[24:40], h.UUID[:])
	be.PutUint16(b[40:], h.Cipher)
	be.PutUint16(b[42:], MasterKeySize)
	be.PutUint32(b[44:], h.SectorSize)
	be.PutUint64(b[48:], h.DataOffset)
	be.PutUint64(b[56:], h.DataSize)
	be.PutUint16(b[64:], SlotCount)
	be.PutUint16(b[66:], SlotSize)
	be.PutUint32(b[68:], SlotsOffset)
	for i := range h.Slots {
		off := SlotsOffset + i*SlotSize
		h.Slots[i].encode(b[off : off+SlotSize])
	}
	return b
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
