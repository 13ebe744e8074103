package lukshostile

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"os"
	"strings"
)

// mutator changes one copy of a base volume.
type mutator struct {
	f       *os.File
	base    Base
	hdrSize uint64 // LUKS2 metadata size of the layout being edited
}

// Which LUKS2 metadata copies a change applies to.
type which int

const (
	primary which = 1 << iota
	secondary
	both = primary | secondary
)

func (w which) String() string {
	switch w {
	case primary:
		return "primary"
	case secondary:
		return "secondary"
	}
	return "both"
}

func (m *mutator) offsets(w which) []int64 {
	var offs []int64
	if w&primary != 0 {
		offs = append(offs, 0)
	}
	if w&secondary != 0 {
		offs = append(offs, int64(m.hdrSize))
	}
	return offs
}

// LUKS1: edit the 592-byte header.
func (m *mutator) edit1(f func(h []byte)) error {
	h := make([]byte, 592)
	if _, err := m.f.ReadAt(h, 0); err != nil {
		return err
	}
	f(h)
	_, err := m.f.WriteAt(h, 0)
	return err
}

// slot1 returns the 48-byte record of LUKS1 keyslot i within h.
func slot1(h []byte, i int) []byte { return h[208+48*i : 208+48*(i+1)] }

// LUKS2 binary header fields.
const (
	offHdrSize   = 8
	offSeqid     = 16
	offLabel     = 24
	offCsumAlg   = 72
	offUUID      = 168
	offHdrOffset = 256
	offCsum      = 448
)

// bin edits the binary headers of the copies w; with fix, their checksums are
// computed again so the change reaches what follows the checksum check.
func (m *mutator) bin(w which, fix bool, f func(b []byte)) error {
	for _, off := range m.offsets(w) {
		b := make([]byte, 4096)
		if _, err := m.f.ReadAt(b, off); err != nil {
			return err
		}
		f(b)
		if _, err := m.f.WriteAt(b, off); err != nil {
			return err
		}
		if fix {
			if err := m.fixChecksum(off); err != nil {
				return err
			}
		}
	}
	return nil
}

// fixChecksum computes the checksum of the copy at off with its own
// checksum_alg and hdr_size (the layout's if that one is out of range).
func (m *mutator) fixChecksum(off int64) error {
	b := make([]byte, 4096)
	if _, err := m.f.ReadAt(b, off); err != nil {
		return err
	}
	size := binary.BigEndian.Uint64(b[offHdrSize:])
	if size < 0x4000 || size > 0x400000 {
		size = m.hdrSize
	}
	area := make([]byte, size-4096)
	if _, err := m.f.ReadAt(area, off+4096); err != nil {
		return err
	}
	alg := string(bytes.TrimRight(b[offCsumAlg:offCsumAlg+32], "\x00"))
	var h hash.Hash
	switch alg {
	case "sha1":
		h = sha1.New()
	case "sha512":
		h = sha512.New()
	default:
		h = sha256.New()
	}
	clear(b[offCsum : offCsum+64])
	h.Write(b)
	h.Write(area)
	copy(b[offCsum:], h.Sum(nil))
	_, err := m.f.WriteAt(b[:512], off)
	return err
}

// json returns the primary copy's JSON text.
func (m *mutator) json() (string, error) {
	area := make([]byte, m.hdrSize-4096)
	if _, err := m.f.ReadAt(area, 4096); err != nil {
		return "", err
	}
	if i := bytes.IndexByte(area, 0); i >= 0 {
		area = area[:i]
	}
	return string(area), nil
}

// setJSON writes text as the JSON area of the copies w (NUL-padded, or cut
// at the area's end when longer: some cases want no NUL at all) and fixes
// their checksums.
func (m *mutator) setJSON(w which, text string) error {
	area := make([]byte, m.hdrSize-4096)
	copy(area, text)
	for _, off := range m.offsets(w) {
		if _, err := m.f.WriteAt(area, off+4096); err != nil {
			return err
		}
		if err := m.fixChecksum(off); err != nil {
			return err
		}
	}
	return nil
}

// replace changes the JSON of the copies w: each old string, which must occur
// exactly once, becomes the new one that follows it.
func (m *mutator) replace(w which, pairs ...string) error {
	text, err := m.json()
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		if n := strings.Count(text, pairs[i]); n != 1 {
			return fmt.Errorf("%q occurs %d times in the base metadata", pairs[i], n)
		}
		text = strings.Replace(text, pairs[i], pairs[i+1], 1)
	}
	return m.setJSON(w, text)
}

// slot0 returns keyslot 0's JSON object.
func (m *mutator) slot0() (string, error) {
	text, err := m.json()
	if err != nil {
		return "", err
	}
	start := strings.Index(text, `{"keyslots":{"0":`)
	end := strings.Index(text, `},"tokens":`)
	if start != 0 || end < 0 {
		return "", fmt.Errorf("unexpected base metadata %q", text)
	}
	return text[len(`{"keyslots":{"0":`):end], nil
}

// addKeyslots adds the keyslots of the ids, copies of keyslot 0 with their
// areas one after another from areaOff (0: each where it would go next),
// bound to digest 0.
func (m *mutator) addKeyslots(w which, ids []int, areaOff uint64) error {
	s0, err := m.slot0()
	if err != nil {
		return err
	}
	var slots, refs strings.Builder
	off := areaOff
	if off == 0 {
		off = 2*m.hdrSize + base2AreaSize
	}
	for _, id := range ids {
		s := strings.Replace(s0, fmt.Sprintf(`"offset":"%d"`, 2*m.hdrSize), fmt.Sprintf(`"offset":"%d"`, off), 1)
		fmt.Fprintf(&slots, `,"%d":%s`, id, s)
		fmt.Fprintf(&refs, `,"%d"`, id)
		off += base2AreaSize
	}
	return m.replace(w, `}},"tokens":`, `}`+slots.String()+`},"tokens":`,
		`"keyslots":["0"],"segments"`, `"keyslots":["0"`+refs.String()+`],"segments"`)
}

// bigMetadata moves the base to size-byte metadata copies: the secondary at
// size, keyslot 0's area to 2 × size, the keyslots area up to the data.
func (m *mutator) bigMetadata(size uint64) error {
	text, err := m.json()
	if err != nil {
		return err
	}
	material := make([]byte, base2AreaSize)
	if _, err := m.f.ReadAt(material, 2*base2HdrSize); err != nil {
		return err
	}
	if _, err := m.f.WriteAt(make([]byte, base2AreaSize), 2*base2HdrSize); err != nil {
		return err
	}
	if _, err := m.f.WriteAt(material, int64(2*size)); err != nil {
		return err
	}
	pairs := []string{
		fmt.Sprintf(`"offset":"%d"`, 2*base2HdrSize), fmt.Sprintf(`"offset":"%d"`, 2*size),
		fmt.Sprintf(`"json_size":"%d"`, base2HdrSize-4096), fmt.Sprintf(`"json_size":"%d"`, size-4096),
		fmt.Sprintf(`"keyslots_size":"%d"`, base2DataOffset-2*base2HdrSize), fmt.Sprintf(`"keyslots_size":"%d"`, base2DataOffset-2*size),
	}
	for i := 0; i < len(pairs); i += 2 {
		text = strings.Replace(text, pairs[i], pairs[i+1], 1)
	}
	bin := make([]byte, 4096)
	if _, err := m.f.ReadAt(bin, 0); err != nil {
		return err
	}
	m.hdrSize = size
	for _, off := range m.offsets(both) {
		b := bytes.Clone(bin)
		binary.BigEndian.PutUint64(b[offHdrSize:], size)
		binary.BigEndian.PutUint64(b[offHdrOffset:], uint64(off))
		if off != 0 {
			copy(b, "SKUL\xba\xbe")
		}
		if _, err := m.f.WriteAt(b, off); err != nil {
			return err
		}
	}
	// The old secondary's place is now inside the primary's JSON area, which
	// setJSON overwrites.
	return m.setJSON(both, text)
}

// truncate cuts the volume to size bytes.
func (m *mutator) truncate(size int64) error { return m.f.Truncate(size) }

// zero overwrites n bytes at off with zeros.
func (m *mutator) zero(off, n int64) error {
	_, err := m.f.WriteAt(make([]byte, n), off)
	return err
}
