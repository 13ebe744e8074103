package tcrypt

import (
	"fmt"
)

// Where headers are (docs/VERACRYPT.md, "Layout"). A volume made by
// TrueCrypt 6+ or VeraCrypt starts with two 64 KiB header areas (the normal
// header, then the hidden volume's header, or random bytes where there is
// none) and ends with their backups; its data lies between. TrueCrypt 5 had
// one 512-byte header at the start, a hidden volume's 1536 bytes before the
// end, and no backups. System encryption keeps its header in the first track
// of the drive.
const (
	HeaderAreaSize = 64 << 10
	// DataOffset is where the data area of a volume made empty by
	// TrueCrypt 6+ or VeraCrypt begins.
	DataOffset = 2 * HeaderAreaSize
	// BackupAreaSize is the end of a volume: the backup header, then the
	// hidden volume's backup header.
	BackupAreaSize = 2 * HeaderAreaSize
	// SystemHeaderOffset is the header of system encryption, in the first
	// track of the drive (sector 62).
	SystemHeaderOffset = 62 * 512
	// hiddenOffsetV3 is a TrueCrypt 5 hidden volume's header, counted back
	// from the end of the file.
	hiddenOffsetV3 = 1536
	// MinVolumeSize is the smallest file that can hold a volume of the
	// current layout: both header areas at each end and one data unit.
	MinVolumeSize = DataOffset + BackupAreaSize + UnitSize
)

// Kind says which header a location holds.
type Kind int

const (
	Normal Kind = iota // the volume's own header (an outer volume's, if it hides one)
	Hidden             // a hidden volume's header
	System             // a system-encryption header
)

func (k Kind) String() string {
	switch k {
	case Hidden:
		return "hidden"
	case System:
		return "system"
	}
	return "normal"
}

// Location is where a header may be in the file.
type Location struct {
	Kind   Kind
	Backup bool  // a backup header at the end of the volume
	Legacy bool  // TrueCrypt 5's (and 4's) place for a hidden volume header
	Offset int64 // of the header in the file
}

func (l Location) String() string {
	s := l.Kind.String() + " header"
	if l.Backup {
		s = "backup " + s
	}
	if l.Legacy {
		s += " (TrueCrypt 5 and older)"
	}
	return s
}

// Locations returns the header locations to try in a file of size bytes, in
// the order tried: the normal header, then the hidden volume's (VeraCrypt
// tries them in this order); their backups instead with backup; the system
// header alone with system. TrueCrypt 5's hidden-volume place is tried for
// TrueCrypt volumes only. Locations the file is too short for are left out.
func Locations(f Format, size int64, system, backup bool) []Location {
	var locs []Location
	add := func(l Location) {
		if l.Offset >= 0 && l.Offset+HeaderSize <= size {
			locs = append(locs, l)
		}
	}
	switch {
	case system:
		add(Location{Kind: System, Offset: SystemHeaderOffset})
	case backup:
		add(Location{Kind: Normal, Backup: true, Offset: size - BackupAreaSize})
		add(Location{Kind: Hidden, Backup: true, Offset: size - HeaderAreaSize})
	default:
		add(Location{Kind: Normal, Offset: 0})
		add(Location{Kind: Hidden, Offset: HeaderAreaSize})
		if f == TrueCrypt {
			add(Location{Kind: Hidden, Legacy: true, Offset: size - hiddenOffsetV3})
		}
	}
	return locs
}

// Area is where a volume's data lies in the file and how its units are
// numbered: byte Offset of the file holds data unit IVOffset.
type Area struct {
	Offset   int64
	Size     int64
	IVOffset uint64
}

// End is the byte after the area.
func (a Area) End() int64 { return a.Offset + a.Size }

// Area checks h, found at loc in a file of fileSize bytes, against the
// layout, and returns where its data lies. Every offset and size is checked
// before use: a multiple of the unit size, inside the file, clear of the
// header areas of its layout; a hidden volume inside the data area its outer
// volume would have; a system volume wholly encrypted.
func (h *Header) Area(loc Location, fileSize int64) (Area, error) {
	fail := func(field, format string, args ...any) (Area, error) {
		return Area{}, &HeaderError{field, fmt.Sprintf(format, args...)}
	}
	if fileSize < 0 {
		return fail("file size", "%d is negative", fileSize)
	}
	const maxSize = 1 << 62 // far beyond any file; keeps the sums below from overflowing
	for _, f := range []struct {
		name string
		v    uint64
	}{{"volume size", h.VolumeSize}, {"hidden volume size", h.HiddenVolumeSize},
		{"encrypted area start", h.EncryptedAreaStart}, {"encrypted area length", h.EncryptedAreaLength}} {
		if f.v > maxSize {
			return fail(f.name, "%d is beyond any file", f.v)
		}
		if f.v%UnitSize != 0 {
			return fail(f.name, "%d is not a multiple of %d", f.v, UnitSize)
		}
	}
	if (loc.Kind == System) != h.System() {
		if h.System() {
			return fail("flags", "%#x: a system-encryption header where a volume header should be", h.Flags)
		}
		return fail("flags", "%#x: not a system-encryption header", h.Flags)
	}
	if (loc.Kind == Hidden) != h.Hidden() {
		if h.Hidden() {
			return fail("hidden volume size", "%d in a normal volume's header", h.HiddenVolumeSize)
		}
		return fail("hidden volume size", "0 in a hidden volume's header")
	}
	var a Area
	switch {
	case loc.Kind == System:
		// The encrypted area is the system partition (or drive) at its
		// offset on the disk; unit numbers count from the start of the disk.
		// VeraCrypt records a length past the partition once it is wholly
		// encrypted, and a shorter one while it encrypts or decrypts it in
		// place.
		if h.EncryptedAreaLength < h.VolumeSize {
			return fail("encrypted area length", "%d of %d bytes: the system encryption or decryption was not finished", h.EncryptedAreaLength, h.VolumeSize)
		}
		a = Area{Offset: int64(h.EncryptedAreaStart), Size: int64(h.VolumeSize)}
		if a.Offset < SystemHeaderOffset+HeaderSize {
			return fail("encrypted area start", "%d overlaps the system header", a.Offset)
		}
	case h.Version == 3 && loc.Kind == Hidden:
		// TrueCrypt 5: the hidden volume ends where its header begins, and
		// the header does not record its start.
		a = Area{Offset: fileSize - int64(h.HiddenVolumeSize) - hiddenOffsetV3, Size: int64(h.HiddenVolumeSize)}
		if !loc.Legacy {
			return fail("version", "3 in a hidden volume header at %d (TrueCrypt 5 kept it %d bytes before the end)", loc.Offset, hiddenOffsetV3)
		}
	case h.Version == 3:
		// TrueCrypt 5: data right after the 512-byte header.
		start := h.EncryptedAreaStart
		if start == 0 {
			start = HeaderSize
		}
		a = Area{Offset: int64(start), Size: int64(h.VolumeSize)}
		if a.Offset < HeaderSize {
			return fail("encrypted area start", "%d overlaps the header", a.Offset)
		}
	default:
		if loc.Legacy {
			return fail("version", "%d in TrueCrypt 5's place for a hidden volume header", h.Version)
		}
		if h.Flags&FlagInPlace != 0 {
			return fail("flags", "%#x: a volume encrypted in place, which cryptvol does not open", h.Flags)
		}
		size := h.VolumeSize
		if loc.Kind == Hidden {
			size = h.HiddenVolumeSize
		}
		if h.EncryptedAreaLength != size {
			return fail("encrypted area length", "%d, not the volume size %d", h.EncryptedAreaLength, size)
		}
		a = Area{Offset: int64(h.EncryptedAreaStart), Size: int64(size)}
		if a.Offset < DataOffset {
			return fail("encrypted area start", "%d overlaps the header areas (data starts at %d or later)", a.Offset, DataOffset)
		}
		if loc.Kind == Normal && a.Offset != DataOffset {
			return fail("encrypted area start", "%d, not %d", a.Offset, DataOffset)
		}
		// The backup header areas end the file (the volume of a file
		// grown by hand may be shorter than it).
		if a.End() > fileSize-BackupAreaSize {
			return fail("volume size", "%d at %d runs into the backup headers of a %d-byte file", a.Size, a.Offset, fileSize)
		}
	}
	a.IVOffset = uint64(a.Offset) / UnitSize
	switch {
	case a.Size <= 0:
		return fail("volume size", "%d: empty", a.Size)
	case a.Offset < 0 || a.End() > fileSize:
		return fail("volume size", "%d at %d goes past the end of the %d-byte file", a.Size, a.Offset, fileSize)
	case a.Offset%UnitSize != 0:
		return fail("encrypted area start", "%d is not a multiple of %d", a.Offset, UnitSize)
	}
	return a, nil
}
