package tcrypt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Sizes of a header (docs/VERACRYPT.md, "Header"): 64 bytes of salt in the
// clear, then 448 bytes encrypted as one XTS data unit, unit number 0.
const (
	HeaderSize    = 512
	SaltSize      = 64
	EncryptedSize = HeaderSize - SaltSize // 448
	// KeyAreaSize is the master key area at the end of a header: the data
	// keys of the ciphers, then their tweak keys, then unused random bytes.
	KeyAreaSize = 256
	// HeaderKeySize is what the KDF derives: enough for a cascade of three
	// ciphers with a data and a tweak key each.
	HeaderKeySize = 192
	// UnitSize is the XTS data unit of the data area, whatever the sector
	// size the header records; unit numbers count from the start of the file
	// (of the disk, for system encryption).
	UnitSize = 512
)

// Offsets inside the decrypted 448 bytes (header offset minus SaltSize). All
// integers are big-endian.
const (
	offMagic      = 0
	offVersion    = 4
	offMinProgram = 6
	offKeysCRC    = 8
	offHiddenSize = 28
	offVolumeSize = 36
	offAreaStart  = 44
	offAreaLength = 52
	offFlags      = 60
	offSectorSize = 64
	offHeaderCRC  = 188
	offKeys       = 192
)

// Magic values: VeraCrypt writes "VERA", TrueCrypt "TRUE".
const (
	MagicVeraCrypt = "VERA"
	MagicTrueCrypt = "TRUE"
)

// Header versions. TrueCrypt 5 wrote version 3 (its first XTS header),
// TrueCrypt 6 version 4 (hidden volume header at 64 KiB, backup headers),
// TrueCrypt 7 and VeraCrypt version 5.
const (
	MinVersion = 3
	MaxVersion = 5
)

// Flag bits.
const (
	// FlagSystem marks a system-encryption header (in the first track of
	// the drive, not in the volume).
	FlagSystem = 1 << 0
	// FlagInPlace marks a non-system volume encrypted in place, whose data
	// area is not where a volume created empty has it.
	FlagInPlace = 1 << 1
)

// minProgramVeraCrypt is the "minimum program version" VeraCrypt 1.x
// writes (1.11, BCD).
const minProgramVeraCrypt = 0x010b

// Header is a decrypted, checked header without its keys: what VeraCrypt's
// volume header says besides the master key area.
type Header struct {
	Magic             string // MagicVeraCrypt or MagicTrueCrypt
	Version           uint16
	MinProgramVersion uint16 // BCD, e.g. 0x010b for 1.11
	// HiddenVolumeSize is the size of the hidden volume in a hidden volume's
	// header, 0 in every other header.
	HiddenVolumeSize uint64
	// VolumeSize is the size of the volume's data area in bytes.
	VolumeSize uint64
	// EncryptedAreaStart and EncryptedAreaLength are the "master key
	// scope": the bytes of the file (of the drive, for system encryption)
	// that are encrypted with the keys of this header.
	EncryptedAreaStart  uint64
	EncryptedAreaLength uint64
	Flags               uint32
	// SectorSize is the sector size of the device the volume was made for
	// (512, 1024, 2048 or 4096); the data is encrypted in 512-byte units
	// whatever it is.
	SectorSize uint32
	// Reserved1 holds bytes 12-27 (TrueCrypt's creation and modification
	// times, zero in VeraCrypt headers), kept so that a re-encrypted header
	// changes nothing but the key derivation.
	Reserved1 [16]byte
}

// HeaderError is a header that decrypted (magic and checksums right) but
// whose fields cryptvol refuses: it says which field and why.
type HeaderError struct {
	Field  string
	Reason string
}

func (e *HeaderError) Error() string { return e.Field + " " + e.Reason }

// errNoMagic and errChecksum mean the bytes are not a header decrypted with
// the right key: trial decryption moves on.
var (
	errNoMagic  = errors.New("no header magic")
	errChecksum = errors.New("header checksum mismatch")
)

// Parse checks the decrypted 448 bytes of a header and returns its fields;
// keys receives the master key area (KeyAreaSize bytes) if not nil. An
// error that is not a *HeaderError means the bytes are not a header (wrong
// key or cipher), one that is means a header cryptvol does not open.
//
// Parse never panics; it checks the magic, both CRC-32 checksums (the
// header's only from version 4, as VeraCrypt and cryptsetup do), the version
// and the sector size. Offsets and sizes are checked against a file by Area.
func Parse(plain []byte, keys []byte) (*Header, error) {
	if len(plain) != EncryptedSize {
		return nil, fmt.Errorf("decrypted header is %d bytes, want %d", len(plain), EncryptedSize)
	}
	magic := string(plain[offMagic : offMagic+4])
	if magic != MagicVeraCrypt && magic != MagicTrueCrypt {
		return nil, errNoMagic
	}
	be := binary.BigEndian
	if crc32.ChecksumIEEE(plain[offKeys:]) != be.Uint32(plain[offKeysCRC:]) {
		return nil, errChecksum
	}
	h := &Header{
		Magic:               magic,
		Version:             be.Uint16(plain[offVersion:]),
		MinProgramVersion:   be.Uint16(plain[offMinProgram:]),
		HiddenVolumeSize:    be.Uint64(plain[offHiddenSize:]),
		VolumeSize:          be.Uint64(plain[offVolumeSize:]),
		EncryptedAreaStart:  be.Uint64(plain[offAreaStart:]),
		EncryptedAreaLength: be.Uint64(plain[offAreaLength:]),
		Flags:               be.Uint32(plain[offFlags:]),
		SectorSize:          be.Uint32(plain[offSectorSize:]),
	}
	copy(h.Reserved1[:], plain[offKeysCRC+4:offHiddenSize])
	if h.Version >= 4 && crc32.ChecksumIEEE(plain[:offHeaderCRC]) != be.Uint32(plain[offHeaderCRC:]) {
		return nil, errChecksum
	}
	switch {
	case h.Version < MinVersion:
		return nil, &HeaderError{"version", fmt.Sprintf("%d: headers before version %d are TrueCrypt 4 and older (LRW or CBC mode), which cryptvol does not open", h.Version, MinVersion)}
	case h.Version > MaxVersion:
		return nil, &HeaderError{"version", fmt.Sprintf("%d: newer than %d, the latest cryptvol knows", h.Version, MaxVersion)}
	case h.Magic == MagicVeraCrypt && h.Version < 4:
		return nil, &HeaderError{"version", fmt.Sprintf("%d: VeraCrypt never wrote it", h.Version)}
	}
	if h.SectorSize == 0 && h.Version < 5 {
		h.SectorSize = 512 // not recorded before TrueCrypt 7
	}
	switch h.SectorSize {
	case 512, 1024, 2048, 4096:
	default:
		return nil, &HeaderError{"sector size", fmt.Sprintf("%d: not 512, 1024, 2048 or 4096", h.SectorSize)}
	}
	if keys != nil {
		copy(keys, plain[offKeys:])
	}
	return h, nil
}

// Encode returns the 448 plaintext bytes of h with the master key area keys
// (KeyAreaSize bytes) and both checksums, ready to be encrypted.
func (h *Header) Encode(keys []byte) []byte {
	if len(keys) != KeyAreaSize {
		panic("tcrypt: key area must be 256 bytes")
	}
	b := make([]byte, EncryptedSize)
	be := binary.BigEndian
	copy(b[offMagic:], h.Magic)
	be.PutUint16(b[offVersion:], h.Version)
	be.PutUint16(b[offMinProgram:], h.MinProgramVersion)
	copy(b[offKeysCRC+4:offHiddenSize], h.Reserved1[:])
	be.PutUint64(b[offHiddenSize:], h.HiddenVolumeSize)
	be.PutUint64(b[offVolumeSize:], h.VolumeSize)
	be.PutUint64(b[offAreaStart:], h.EncryptedAreaStart)
	be.PutUint64(b[offAreaLength:], h.EncryptedAreaLength)
	be.PutUint32(b[offFlags:], h.Flags)
	be.PutUint32(b[offSectorSize:], h.SectorSize)
	copy(b[offKeys:], keys)
	be.PutUint32(b[offKeysCRC:], crc32.ChecksumIEEE(b[offKeys:]))
	be.PutUint32(b[offHeaderCRC:], crc32.ChecksumIEEE(b[:offHeaderCRC]))
	return b
}

// Hidden reports whether h is a hidden volume's header.
func (h *Header) Hidden() bool { return h.HiddenVolumeSize != 0 }

// System reports whether h is a system-encryption header.
func (h *Header) System() bool { return h.Flags&FlagSystem != 0 }
