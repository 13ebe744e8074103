package container

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/kdf"
)

// headerCopy is one header copy as found on disk.
type headerCopy struct {
	offset int64
	raw    []byte         // nil if nothing could be read there
	h      *header.Header // nil unless valid
	err    error          // why it is not valid
}

func (c *headerCopy) valid() bool { return c.h != nil }

// layout is the header state of a vault file: both copies and the winner
// (docs/FORMAT.md §9 "Which copy wins").
type layout struct {
	fileSize int64
	primary  headerCopy
	backup   headerCopy // the best backup candidate
	winner   *headerCopy
}

// stale reports whether the copy is not byte-identical to the winner.
func (l *layout) stale(c *headerCopy) bool {
	return !c.valid() || !bytes.Equal(c.raw, l.winner.raw)
}

// sameSequenceDifferent reports whether c is valid, has the winner's sequence
// number and differs from it: never the result of an update (§9), so one of
// the two was changed behind cryptvol's back.
func (l *layout) sameSequenceDifferent(c *headerCopy) bool {
	return c != l.winner && c.valid() && c.h.Sequence == l.winner.h.Sequence && !bytes.Equal(c.raw, l.winner.raw)
}

// validate decodes a header block and checks what header cannot: the Argon2
// bounds of every active slot (§4). A copy that fails is not valid.
func validate(raw []byte) (*header.Header, error) {
	h, err := header.Decode(raw)
	if err != nil {
		return nil, err
	}
	for _, i := range h.ActiveSlots() {
		s := &h.Slots[i]
		if err := slotParams(s).Validate(); err != nil {
			return nil, &header.FieldError{Field: fmt.Sprintf("keyslot %d", i), Reason: err.Error()}
		}
	}
	return h, nil
}

func slotParams(s *header.Slot) kdf.Params {
	return kdf.Params{Memory: s.Memory, Iterations: s.Iterations, Threads: s.Threads}
}

// readCopy reads and validates the header block at off.
func readCopy(f io.ReaderAt, off int64) headerCopy {
	c := headerCopy{offset: off}
	buf := make([]byte, header.Size)
	n, err := f.ReadAt(buf, off)
	if n < header.Size {
		if err == nil || err == io.EOF {
			err = header.ErrSize
		}
		c.err = err
		return c
	}
	c.raw = buf
	c.h, c.err = validate(buf)
	return c
}

// readLayout reads the primary copy and the backup candidates and picks the
// winner. It returns an error matching ErrDamaged when no copy is valid or the
// file is shorter than the winner's layout.
func readLayout(f *os.File) (*layout, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	l := &layout{fileSize: st.Size()}
	if st.Mode()&os.ModeType == os.ModeDevice {
		// A vault on a block device: its size is the device size.
		if end, err := f.Seek(0, io.SeekEnd); err == nil {
			l.fileSize = end
		}
	}
	if l.fileSize < header.Size {
		return nil, damaged("file is %d bytes, shorter than one header (%d): not a cryptvol vault", l.fileSize, header.Size)
	}
	l.primary = readCopy(f, 0)

	// Backup candidates: where the primary copy says it is, at the end of the
	// file, and where a header found at the end says it belongs. A candidate
	// counts only if it lies at its own data_offset+data_size; the first one
	// is reported when none is valid.
	var cands []int64
	if l.primary.valid() {
		if off := l.primary.h.BackupOffset(); off+header.Size <= l.fileSize {
			cands = append(cands, off)
		} else {
			l.backup = headerCopy{offset: off, err: errors.New("missing: the file ends before it")}
		}
	}
	if tail := l.fileSize - header.Size; tail >= header.DataAlignment && (len(cands) == 0 || tail != cands[0]) {
		cands = append(cands, tail)
	}
	for i := 0; i < len(cands); i++ {
		off := cands[i]
		c := readCopy(f, off)
		if c.valid() && c.h.BackupOffset() != off {
			// Left over from another layout, or the file grew. Where it
			// says the backup belongs is worth a look when the primary
			// cannot say; what is found there must prove itself.
			at := c.h.BackupOffset()
			if at+header.Size <= l.fileSize && !slices.Contains(cands, at) {
				cands = append(cands, at)
			}
			c.h, c.err = nil, fmt.Errorf("the header at %d belongs at %d (left over)", off, at)
		}
		if (i == 0 && l.backup.err == nil) || c.valid() && (!l.backup.valid() || c.h.Sequence > l.backup.h.Sequence) {
			l.backup = c
		}
	}
	if len(cands) == 0 && l.backup.err == nil {
		l.backup = headerCopy{offset: -1, err: errors.New("missing: the file is too short to hold one")}
	}
	// A copy whose layout needs more bytes than the file has cannot win over
	// one that fits: it is damaged (or forged), not a sign that the file was
	// truncated, as long as the other copy describes this file.
	for _, c := range [][2]*headerCopy{{&l.primary, &l.backup}, {&l.backup, &l.primary}} {
		if c[0].valid() && c[0].h.FileSize() > l.fileSize && c[1].valid() && c[1].h.FileSize() <= l.fileSize {
			c[0].h, c[0].err = nil, fmt.Errorf("describes a vault of %d bytes, but the file has %d", c[0].h.FileSize(), l.fileSize)
		}
	}

	switch {
	case l.primary.valid() && (!l.backup.valid() || l.primary.h.Sequence >= l.backup.h.Sequence):
		l.winner = &l.primary
	case l.backup.valid():
		l.winner = &l.backup
	default:
		return nil, noValidCopy(&l.primary, &l.backup)
	}
	if need := l.winner.h.FileSize(); need > l.fileSize {
		return nil, damaged("vault is truncated: its header describes %d bytes, the file has %d", need, l.fileSize)
	}
	return l, nil
}

// noValidCopy explains why neither copy can be used.
func noValidCopy(p, b *headerCopy) error {
	var ve *header.VersionError
	if errors.As(p.err, &ve) || errors.As(b.err, &ve) {
		return &damagedError{ve}
	}
	if !hasMagic(p.raw) && !hasMagic(b.raw) {
		return &damagedError{fmt.Errorf("%w: not a cryptvol vault (no cryptvol header at its start or end)", ErrUnknownFormat)}
	}
	return damaged("both header copies are unusable: primary: %v; backup: %v", p.err, b.err)
}

func hasMagic(raw []byte) bool { return bytes.HasPrefix(raw, []byte(header.Magic)) }
