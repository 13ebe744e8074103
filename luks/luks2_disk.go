package luks

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// LUKS2 binary header (cryptsetup's struct luks2_hdr_disk), at the start of
// each metadata copy, big-endian:
//
//	0   magic[6]         "LUKS\xba\xbe" (primary) or "SKUL\xba\xbe" (secondary)
//	6   version u16      2
//	8   hdr_size u64     binary header + JSON area: 16 KiB … 4 MiB
//	16  seqid u64        increased on every update
//	24  label[48]
//	72  checksum_alg[32] "sha256"
//	104 salt[64]         unique per copy
//	168 uuid[40]
//	208 subsystem[48]
//	256 hdr_offset u64   where this copy is: 0, or hdr_size for the secondary
//	264 padding[184]
//	448 csum[64]         hash of this 4096-byte block with csum zeroed, then the JSON area
//	512 padding to 4096
//
// The JSON area follows and holds one JSON object, then NUL bytes to its end.
const (
	luks2OffSeqid     = 16
	luks2OffLabel     = 24
	luks2OffCsumAlg   = 72
	luks2OffSalt      = 104
	luks2OffUUID      = 168
	luks2OffSubsystem = 208
	luks2OffHdrOffset = 256
	luks2OffCsum      = 448
	luks2LabelSize    = 48
	luks2CsumSize     = 64
)

// copyState is what reading one metadata copy gave (cryptsetup's HDR_OK,
// HDR_OBSOLETE, HDR_FAIL).
type copyState int

const (
	copyMissing  copyState = iota // not found (no valid binary header where one must be)
	copyDamaged                   // binary header or checksum wrong
	copyInvalid                   // checksum right, metadata invalid
	copyObsolete                  // valid, but the other copy has a higher seqid
	copyCurrent                   // valid and the newest
)

// luks2Copy is one of the two metadata copies.
type luks2Copy struct {
	offset    uint64
	state     copyState
	err       error // why it is not current
	hdrSize   uint64
	seqid     uint64
	label     string
	subsystem string
	csumAlg   string
	uuid      string
	salt      [64]byte
	bin       []byte // the 4096-byte binary header as read
	json      []byte // the JSON area as read
	meta      *luks2Meta
}

func (c *luks2Copy) valid() bool { return c.state >= copyObsolete }

// readCopy reads the copy whose binary header is at off on r (size bytes).
// It returns copyDamaged with the reason for anything wrong before the JSON
// is parsed, copyInvalid for metadata that parses but does not validate.
func readCopy(r io.ReaderAt, size int64, off uint64, secondary bool) *luks2Copy {
	c := &luks2Copy{offset: off, state: copyDamaged}
	fail := func(field, format string, args ...any) *luks2Copy {
		c.err = &DamagedError{Copy: copyName(secondary), Field: field, Reason: fmt.Sprintf(format, args...)}
		return c
	}
	if size < luks2BinSize || off > uint64(size)-luks2BinSize {
		c.state = copyMissing
		return fail("", "the device (%d bytes) ends before offset %d + %d", size, off, luks2BinSize)
	}
	bin := make([]byte, luks2BinSize)
	if _, err := r.ReadAt(bin, int64(off)); err != nil {
		return fail("", "reading %d bytes at %d: %v", luks2BinSize, off, err)
	}
	want := magic1
	if secondary {
		want = magic2
	}
	if string(bin[:6]) != want {
		c.state = copyMissing
		return fail("magic", "no %q magic at offset %d", want, off)
	}
	if v := binary.BigEndian.Uint16(bin[6:8]); v != 2 {
		return fail("version", "%d, want 2", v)
	}
	if ho := binary.BigEndian.Uint64(bin[luks2OffHdrOffset:]); ho != off {
		return fail("hdr_offset", "%d, but the header is at %d", ho, off)
	}
	c.hdrSize = binary.BigEndian.Uint64(bin[8:16])
	if c.hdrSize < luks2MinHdrSize || c.hdrSize > luks2MaxHdrSize {
		return fail("hdr_size", "%d is not within %d to %d", c.hdrSize, luks2MinHdrSize, luks2MaxHdrSize)
	}
	if secondary && c.hdrSize != off {
		return fail("hdr_size", "%d, but the secondary header is at %d", c.hdrSize, off)
	}
	if off+c.hdrSize > uint64(size) {
		return fail("hdr_size", "%d bytes at %d run past the end of the device (%d bytes)", c.hdrSize, off, size)
	}
	c.seqid = binary.BigEndian.Uint64(bin[luks2OffSeqid:])
	c.label = cString(bin[luks2OffLabel : luks2OffLabel+luks2LabelSize])
	c.csumAlg = cString(bin[luks2OffCsumAlg : luks2OffCsumAlg+32])
	copy(c.salt[:], bin[luks2OffSalt:])
	c.uuid = cString(bin[luks2OffUUID : luks2OffUUID+40])
	c.subsystem = cString(bin[luks2OffSubsystem : luks2OffSubsystem+luks2LabelSize])

	jsonArea := make([]byte, c.hdrSize-luks2BinSize)
	if _, err := r.ReadAt(jsonArea, int64(off+luks2BinSize)); err != nil {
		return fail("", "reading the %d-byte JSON area at %d: %v", len(jsonArea), off+luks2BinSize, err)
	}
	sum, err := luks2Checksum(c.csumAlg, bin, jsonArea)
	if err != nil {
		return fail("checksum_alg", "%v", err)
	}
	if subtle.ConstantTimeCompare(sum, bin[luks2OffCsum:luks2OffCsum+len(sum)]) != 1 {
		return fail("checksum", "does not match (a damaged or half-written copy)")
	}
	c.bin, c.json = bin, jsonArea
	c.state = copyInvalid
	tree, err := parseJSONArea(jsonArea)
	if err != nil {
		return fail("metadata", "%v", err)
	}
	m, err := parseMeta(tree, c.hdrSize-luks2BinSize)
	if err != nil {
		var de *DamagedError
		if errors.As(err, &de) {
			de.Copy = copyName(secondary)
			return c.failWith(de)
		}
		return fail("metadata", "%v", err)
	}
	c.meta = m
	c.state = copyCurrent
	return c
}

func (c *luks2Copy) failWith(err error) *luks2Copy {
	c.err = err
	return c
}

func copyName(secondary bool) string {
	if secondary {
		return "secondary"
	}
	return "primary"
}

// parseJSONArea parses the JSON area: one object starting at its first byte,
// and nothing but NUL bytes after it (cryptsetup's validate_json_area).
func parseJSONArea(area []byte) (*jsonValue, error) {
	if len(area) == 0 || area[0] != '{' {
		return nil, fmt.Errorf("%w: the area does not start with '{'", errJSON)
	}
	tree, end, err := parseJSON(area)
	if err != nil {
		return nil, err
	}
	if end >= len(area) {
		return nil, fmt.Errorf("%w: no NUL byte after the JSON", errJSON)
	}
	if i := slices.IndexFunc(area[end:], func(b byte) bool { return b != 0 }); i >= 0 {
		return nil, fmt.Errorf("%w: byte 0x%02x at %d after the JSON", errJSON, area[end+i], end+i)
	}
	return tree, nil
}

// luks2Checksum hashes the binary header with its csum field zeroed, then the
// JSON area.
func luks2Checksum(alg string, bin, jsonArea []byte) ([]byte, error) {
	nh, err := newHash(alg)
	if err != nil {
		return nil, err
	}
	h := nh()
	if h.Size() > luks2CsumSize {
		return nil, fmt.Errorf("hash %q is longer than the checksum field", alg)
	}
	var zero [luks2CsumSize]byte
	h.Write(bin[:luks2OffCsum])
	h.Write(zero[:])
	h.Write(bin[luks2OffCsum+luks2CsumSize : luks2BinSize])
	h.Write(jsonArea)
	return h.Sum(nil), nil
}

// luks2State is a LUKS2 header: both copies and the one that is used.
type luks2State struct {
	primary, secondary *luks2Copy
	cur                *luks2Copy
}

func (s *luks2State) meta() *luks2Meta { return s.cur.meta }

// readLUKS2 reads both copies and decides which is current the way cryptsetup
// does (LUKS2_disk_hdr_read): the primary at 0; the secondary at the primary's
// hdr_size, or, when the primary's binary header is unusable, at the first of
// the known offsets where one is found; of two valid copies the higher seqid
// wins, the primary on a tie. Nothing is repaired here.
func readLUKS2(r io.ReaderAt, size int64) (*luks2State, error) {
	s := &luks2State{primary: readCopy(r, size, 0, false)}
	if s.primary.state >= copyInvalid {
		s.secondary = readCopy(r, size, s.primary.hdrSize, true)
	} else {
		for _, off := range luks2HdrSizes {
			s.secondary = readCopy(r, size, off, true)
			if s.secondary.state >= copyInvalid {
				break
			}
		}
		if s.secondary.state < copyInvalid {
			// Report the secondary as missing where it was expected.
			s.secondary = readCopy(r, size, luks2HdrSizes[0], true)
		}
	}
	p, q := s.primary, s.secondary
	switch {
	case p.valid() && q.valid():
		switch {
		case p.seqid > q.seqid:
			q.state, q.err = copyObsolete, fmt.Errorf("older than the primary (seqid %d, primary %d)", q.seqid, p.seqid)
			s.cur = p
		case p.seqid < q.seqid:
			p.state, p.err = copyObsolete, fmt.Errorf("older than the secondary (seqid %d, secondary %d)", p.seqid, q.seqid)
			s.cur = q
		default:
			s.cur = p
			if !bytes.Equal(p.json, q.json) || p.uuid != q.uuid || p.label != q.label || p.subsystem != q.subsystem {
				// Not a case cryptsetup looks for; it uses the primary too.
				q.state, q.err = copyObsolete, fmt.Errorf("differs from the primary with the same seqid %d", q.seqid)
			}
		}
	case p.valid():
		s.cur = p
	case q.valid():
		s.cur = q
	default:
		if p.state == copyMissing && q.state == copyMissing {
			return nil, ErrNotLUKS
		}
		return nil, fmt.Errorf("%w: both copies are unusable: %v; %v", ErrDamaged, p.err, q.err)
	}
	m := s.cur.meta
	if need := m.areasEnd(); uint64(size) < need {
		return nil, &DamagedError{Reason: fmt.Sprintf("device is %d bytes, the header and keyslot areas need %d", size, need)}
	}
	return s, nil
}

// stale reports whether c must be rewritten: it is not a current valid copy.
func (s *luks2State) stale(c *luks2Copy) bool { return c.state != copyCurrent }

// encodeBin returns the binary header of a copy at off for metadata of
// hdrSize bytes, with the checksum field zero.
func encodeBin(off, hdrSize, seqid uint64, label, csumAlg, uuid, subsystem string, salt [64]byte) []byte {
	b := make([]byte, luks2BinSize)
	if off == 0 {
		copy(b, magic1)
	} else {
		copy(b, magic2)
	}
	binary.BigEndian.PutUint16(b[6:], 2)
	binary.BigEndian.PutUint64(b[8:], hdrSize)
	binary.BigEndian.PutUint64(b[luks2OffSeqid:], seqid)
	copy(b[luks2OffLabel:luks2OffLabel+luks2LabelSize-1], label)
	copy(b[luks2OffCsumAlg:luks2OffCsumAlg+31], csumAlg)
	copy(b[luks2OffSalt:], salt[:])
	copy(b[luks2OffUUID:luks2OffUUID+39], uuid)
	copy(b[luks2OffSubsystem:luks2OffSubsystem+luks2LabelSize-1], subsystem)
	binary.BigEndian.PutUint64(b[luks2OffHdrOffset:], off)
	return b
}
