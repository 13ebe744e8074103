package luks

import (
	"encoding/binary"
	"fmt"
	"io"
)

const (
	magic1 = "LUKS\xba\xbe" // LUKS1, and the LUKS2 primary header
	magic2 = "SKUL\xba\xbe" // the LUKS2 secondary header

	// AnySlot asks for every keyslot (Unlock) or the lowest free one (AddKey).
	AnySlot = -1
)

// Detect returns the LUKS version of the volume or header file r: 1 or 2 from
// the magic and version at offset 0, or 2 when only a LUKS2 secondary header
// is found at one of its offsets (the primary was overwritten). It returns
// ErrNotLUKS when there is no LUKS magic, and an *UnsupportedError for a
// LUKS magic with another version.
func Detect(r io.ReaderAt) (int, error) {
	var b [8]byte
	if _, err := r.ReadAt(b[:], 0); err == nil && string(b[:6]) == magic1 {
		switch v := binary.BigEndian.Uint16(b[6:]); v {
		case 1, 2:
			return int(v), nil
		default:
			return 0, unsupported("version", "LUKS version %d", v)
		}
	}
	for _, off := range luks2HdrSizes {
		if _, err := r.ReadAt(b[:], int64(off)); err == nil && string(b[:6]) == magic2 && binary.BigEndian.Uint16(b[6:]) == 2 {
			return 2, nil
		}
	}
	return 0, ErrNotLUKS
}

// Header is a parsed and validated LUKS1 or LUKS2 header. It is plain data:
// the methods that need the device take it as an argument. A method that
// changes the header updates h to the new state when it succeeds; after an
// error the device may hold either state and h must be read again.
type Header struct {
	version int
	size    int64 // of the device (or header file) it was read from
	v1      *luks1Header
	v2      *luks2State
}

// Read parses and validates the LUKS header of r, a volume or a detached
// header file of size bytes. Errors match ErrNotLUKS or ErrDamaged; a header
// that is well formed but uses features outside this package reads without
// error (so it can be shown) and Supported says what is missing.
func Read(r io.ReaderAt, size int64) (*Header, error) {
	v, err := Detect(r)
	if err != nil {
		return nil, err
	}
	if v == 1 {
		b := make([]byte, luks1HeaderSize)
		if size < luks1HeaderSize {
			return nil, &DamagedError{Copy: "LUKS1", Reason: fmt.Sprintf("device is %d bytes, shorter than a header", size)}
		}
		if _, err := r.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("reading the LUKS1 header: %w", err)
		}
		h1, err := parseLUKS1(b, size)
		if err != nil {
			return nil, err
		}
		return &Header{version: 1, size: size, v1: h1}, nil
	}
	s, err := readLUKS2(r, size)
	if err != nil {
		return nil, err
	}
	return &Header{version: 2, size: size, v2: s}, nil
}

// Version is 1 or 2.
func (h *Header) Version() int { return h.version }

// UUID is the volume's UUID as the header stores it.
func (h *Header) UUID() string {
	if h.v1 != nil {
		return h.v1.uuid
	}
	return h.v2.cur.uuid
}

// Supported returns nil if the volume's data can be opened and its keys
// changed by this package, and otherwise an *UnsupportedError that says why.
func (h *Header) Supported() error {
	if h.v1 != nil {
		if _, err := newHash(h.v1.hashSpec); err != nil {
			return &UnsupportedError{Feature: "LUKS1 hash", Err: err}
		}
		return checkCipher("LUKS1 cipher", h.v1.cipherSpec(), int(h.v1.keyBytes))
	}
	return h.v2.meta().support()
}

// Geometry is where and how the data is encrypted: what a dm-crypt table
// for the volume would say.
type Geometry struct {
	Cipher     string // dm-crypt specification, e.g. "aes-xts-plain64"
	KeySize    int    // volume key size in bytes
	SectorSize int    // encryption unit in bytes: 512, 1024, 2048 or 4096
	Offset     uint64 // start of the data on the data device, in bytes
	Size       uint64 // bytes of data (a multiple of SectorSize)
	Dynamic    bool   // the data runs to the end of the device (it grows with it)
	// IVOffset is the IV of the first data sector, counted in 512-byte units
	// (LUKS2 iv_tweak; 0 for LUKS1).
	IVOffset uint64
}

// IV returns the IV (the XTS tweak for aes-xts-plain64) of data sector n,
// counted in SectorSize units from Offset. Like dm-crypt for every LUKS
// volume (cryptsetup never sets iv_large_sectors for LUKS), the IV counts
// 512-byte sectors even when SectorSize is larger: sector n of 4096 bytes has
// IV IVOffset + 8n.
func (g Geometry) IV(n uint64) uint64 { return g.IVOffset + n*uint64(g.SectorSize/sector) }

// Geometry returns the data geometry on a data device of dataSize bytes: the
// volume itself, or, when detached is set, the data device of a header read
// from a separate file. It fails for an unsupported header, for data that
// does not fit the device, and for data at offset 0 on the device that holds
// the header (a detached header read as if it were attached).
func (h *Header) Geometry(dataSize int64, detached bool) (Geometry, error) {
	if err := h.Supported(); err != nil {
		return Geometry{}, err
	}
	var g Geometry
	if h.v1 != nil {
		g = Geometry{Cipher: h.v1.cipherSpec(), KeySize: int(h.v1.keyBytes), SectorSize: sector,
			Offset: uint64(h.v1.payloadOffset) * sector, Dynamic: true}
	} else {
		m := h.v2.meta()
		s := m.segments[0]
		g = Geometry{Cipher: s.encryption, KeySize: m.volumeKeySize(), SectorSize: int(s.sectorSize),
			Offset: s.offset, Size: s.size, Dynamic: s.dynamic, IVOffset: s.ivTweak}
	}
	if !detached && g.Offset < h.areasEnd() {
		return Geometry{}, damaged("data offset", "%d is inside the header area, which ends at %d (a detached header?)", g.Offset, h.areasEnd())
	}
	if dataSize < 0 || uint64(dataSize) <= g.Offset {
		return Geometry{}, damaged("data offset", "%d is not inside the %d-byte data device", g.Offset, dataSize)
	}
	avail := (uint64(dataSize) - g.Offset) / uint64(g.SectorSize) * uint64(g.SectorSize)
	if g.Dynamic {
		g.Size = avail
	} else if g.Size > avail {
		return Geometry{}, damaged("data size", "%d bytes at %d run past the end of the %d-byte data device", g.Size, g.Offset, dataSize)
	}
	if g.Size == 0 {
		return Geometry{}, damaged("data size", "no whole %d-byte sector of data on the %d-byte data device", g.SectorSize, dataSize)
	}
	return g, nil
}
