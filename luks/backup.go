package luks

import (
	"errors"
	"fmt"
	"io"
)

// Header backups use cryptsetup's luksHeaderBackup file format, so that either
// tool restores the other's backups: the start of the device up to the end of
// the keyslot areas, zero-padded to a multiple of 4096 bytes.
//   - LUKS1: the 592-byte header, zeros to the first keyslot (when that is at
//     4096, the usual layout), and the eight keyslot areas (lib/luks1
//     LUKS_hdr_backup).
//   - LUKS2: both metadata copies and the keyslot areas (lib/luks2
//     LUKS2_hdr_backup).
//
// A backup file is itself a LUKS header: Read takes it (it is what cryptsetup
// calls a detached header), and a volume key it opens is the volume's.

const backupAlign = 4096

// BackupSize is the size of the backup file of h.
func (h *Header) BackupSize() uint64 {
	return (h.areasEnd() + backupAlign - 1) / backupAlign * backupAlign
}

// areasEnd is the size of what a backup holds.
func (h *Header) areasEnd() uint64 {
	if h.v1 != nil {
		return h.v1.end()
	}
	return h.v2.meta().areasEnd()
}

// WriteBackup writes the backup file of the volume r, whose header is h, to
// w. A LUKS2 copy that is damaged or older is written as the current one
// (cryptsetup repairs it on the device before it backs up), so the backup is
// always whole.
func (h *Header) WriteBackup(w io.Writer, r io.ReaderAt) error {
	end := h.areasEnd()
	buf := make([]byte, h.BackupSize())
	if _, err := r.ReadAt(buf[:end], 0); err != nil {
		return fmt.Errorf("reading the header area: %w", err)
	}
	if h.v1 != nil {
		if uint64(h.v1.slots[0].offset)*sector == luks1AlignKeyslots && h.v1.keyslotsStart() == luks1AlignKeyslots {
			clear(buf[luks1HeaderSize:luks1AlignKeyslots]) // no old signatures in the backup
		}
	} else {
		s := h.v2
		for _, c := range []*luks2Copy{s.primary, s.secondary} {
			if !s.stale(c) {
				continue
			}
			off := uint64(0)
			if c == s.secondary {
				off = s.cur.hdrSize
			}
			mem := &memDevice{b: buf}
			if _, err := writeCopy(mem, s.cur, &luks2Copy{}, off, s.cur.seqid, s.cur.json, s.cur.meta); err != nil {
				return err
			}
		}
	}
	_, err := w.Write(buf)
	return err
}

// memDevice is a Device over a byte slice.
type memDevice struct{ b []byte }

func (m *memDevice) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memDevice) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, errors.New("write past the end")
	}
	return copy(m.b[off:], p), nil
}

func (m *memDevice) Sync() error { return nil }

// Restore writes the header in the backup file backup (backupSize bytes) to
// dev (devSize bytes), as cryptsetup's luksHeaderRestore does: the backup's
// header area, byte for byte, at offset 0. The backup must be a valid header
// that this package supports. If dev already has a readable LUKS header, it
// must be of the same version with the same data offset and header area size
// (and, for LUKS1, key size) — the backup must belong to this volume's layout;
// a device whose header is damaged or missing takes any backup that fits, so
// the caller confirms with the user first.
//
// The write is not atomic (neither is cryptsetup's): a crash during it can
// leave a header that opens with neither key set. The backup file is not
// changed, so running Restore again completes it; the data area is never
// written. It returns the restored header.
func Restore(dev Device, devSize int64, backup io.ReaderAt, backupSize int64) (*Header, error) {
	b, err := Read(backup, backupSize)
	if err != nil {
		return nil, fmt.Errorf("the backup file: %w", err)
	}
	if err := b.Supported(); err != nil {
		return nil, fmt.Errorf("the backup file: %w", err)
	}
	end := b.areasEnd()
	if uint64(devSize) < end {
		return nil, fmt.Errorf("the device is %d bytes, the backup's header area needs %d", devSize, end)
	}
	if cur, err := Read(dev, devSize); err == nil {
		switch {
		case cur.Version() != b.Version():
			return nil, fmt.Errorf("the device has a LUKS%d header, the backup is LUKS%d", cur.Version(), b.Version())
		case cur.dataOffset() != b.dataOffset():
			return nil, fmt.Errorf("data offsets differ on the device (%d) and in the backup (%d)", cur.dataOffset(), b.dataOffset())
		case cur.areasEnd() != end:
			return nil, fmt.Errorf("header areas differ in size on the device (%d) and in the backup (%d)", cur.areasEnd(), end)
		case cur.v1 != nil && cur.v1.keyBytes != b.v1.keyBytes:
			return nil, fmt.Errorf("key sizes differ on the device (%d) and in the backup (%d)", cur.v1.keyBytes, b.v1.keyBytes)
		}
	}
	if off := b.dataOffset(); off != 0 && end > off {
		return nil, fmt.Errorf("internal error: the backup's header area (%d bytes) runs into its data at %d", end, off)
	}
	buf := make([]byte, end)
	if _, err := backup.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("reading the backup file: %w", err)
	}
	if err := writeSync(dev, buf, 0); err != nil {
		return nil, fmt.Errorf("writing the header: %w", err)
	}
	return Read(dev, devSize)
}

// dataOffset is where the data starts, in bytes (0 for a detached header).
func (h *Header) dataOffset() uint64 {
	if h.v1 != nil {
		return uint64(h.v1.payloadOffset) * sector
	}
	return h.v2.meta().segments[0].offset
}
