package luks

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// LUKS1 on-disk header (the LUKS1 On-Disk Format Specification, version 1.2.3,
// and cryptsetup's lib/luks1): one 592-byte header at offset 0, big-endian,
// followed by eight fixed keyslot areas. There is one copy: a damaged header
// is a lost volume unless a backup exists.
const (
	luks1HeaderSize     = 592
	luks1SlotCount      = 8
	luks1SlotsOffset    = 208
	luks1SlotSize       = 48
	luks1Enabled        = 0x00AC71F3
	luks1Disabled       = 0x0000DEAD
	luks1DigestSize     = 20
	luks1SaltSize       = 32
	luks1AlignKeyslots  = 4096
	sector              = 512
	luks1MaxKeyBytes    = 64
	luks1MinKeyBytes    = 16
	luks1FieldNameBytes = 32
)

// luks1Slot is one keyslot record.
type luks1Slot struct {
	state      uint32 // luks1Enabled or luks1Disabled
	iterations uint32
	salt       [luks1SaltSize]byte
	offset     uint32 // key material, in 512-byte sectors
	stripes    uint32
}

func (s *luks1Slot) active() bool { return s.state == luks1Enabled }

// luks1Header is a parsed and validated LUKS1 header.
type luks1Header struct {
	raw                [luks1HeaderSize]byte
	cipherName         string
	cipherMode         string
	hashSpec           string
	payloadOffset      uint32 // sectors; 0 for a detached header
	keyBytes           uint32
	mkDigest           [luks1DigestSize]byte
	mkDigestSalt       [luks1SaltSize]byte
	mkDigestIterations uint32
	uuid               string
	slots              [luks1SlotCount]luks1Slot
}

// cString returns the NUL-terminated string of a fixed field. cryptsetup forces
// the field's last byte to NUL, so at most len-1 bytes count.
func cString(b []byte) string {
	b = b[:len(b)-1]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// parseLUKS1 validates a LUKS1 header read from a device of size bytes
// (a header file or the volume itself), with the checks cryptsetup makes
// (lib/luks1/keymanage.c LUKS_check_keyslots, LUKS_check_device_size) and a
// few more: every value is bounded before anything is computed from it.
func parseLUKS1(b []byte, size int64) (*luks1Header, error) {
	if len(b) < luks1HeaderSize {
		return nil, &DamagedError{Copy: "LUKS1", Reason: fmt.Sprintf("device is %d bytes, shorter than a header", len(b))}
	}
	h := &luks1Header{}
	copy(h.raw[:], b)
	fail := func(field, format string, args ...any) (*luks1Header, error) {
		return nil, &DamagedError{Copy: "LUKS1", Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if string(b[:6]) != magic1 || binary.BigEndian.Uint16(b[6:8]) != 1 {
		return fail("magic", "not a LUKS1 header")
	}
	h.cipherName = cString(b[8:40])
	h.cipherMode = cString(b[40:72])
	h.hashSpec = strings.ToLower(cString(b[72:104]))
	h.payloadOffset = binary.BigEndian.Uint32(b[104:108])
	h.keyBytes = binary.BigEndian.Uint32(b[108:112])
	copy(h.mkDigest[:], b[112:132])
	copy(h.mkDigestSalt[:], b[132:164])
	h.mkDigestIterations = binary.BigEndian.Uint32(b[164:168])
	h.uuid = cString(b[168:208])
	for i := range h.slots {
		r := b[luks1SlotsOffset+i*luks1SlotSize:]
		s := &h.slots[i]
		s.state = binary.BigEndian.Uint32(r[0:4])
		s.iterations = binary.BigEndian.Uint32(r[4:8])
		copy(s.salt[:], r[8:40])
		s.offset = binary.BigEndian.Uint32(r[40:44])
		s.stripes = binary.BigEndian.Uint32(r[44:48])
	}

	if h.keyBytes < luks1MinKeyBytes || h.keyBytes > luks1MaxKeyBytes {
		return fail("key_bytes", "%d is not within %d to %d", h.keyBytes, luks1MinKeyBytes, luks1MaxKeyBytes)
	}
	if h.mkDigestIterations == 0 {
		return fail("mk_digest_iterations", "is 0")
	}
	if h.cipherName == "" || h.cipherMode == "" {
		return fail("cipher", "name or mode is empty")
	}
	areaSectors := uint64(afSize(int(h.keyBytes)) / sector)
	end := uint64(0) // end of the last keyslot area, in sectors
	for i := range h.slots {
		s := &h.slots[i]
		field := fmt.Sprintf("keyslot %d", i)
		switch {
		case s.state != luks1Enabled && s.state != luks1Disabled:
			return fail(field, "state 0x%08x is neither enabled nor disabled", s.state)
		case s.stripes != afStripes:
			return fail(field, "%d stripes (LUKS1 requires %d)", s.stripes, afStripes)
		case uint64(s.offset)*sector < luks1HeaderSize:
			return fail(field, "key material at sector %d overlaps the header", s.offset)
		case h.payloadOffset != 0 && uint64(s.offset)+areaSectors > uint64(h.payloadOffset):
			return fail(field, "key material (sectors %d to %d) runs into the data at sector %d", s.offset, uint64(s.offset)+areaSectors, h.payloadOffset)
		}
		end = max(end, uint64(s.offset)+areaSectors)
	}
	order := []int{0, 1, 2, 3, 4, 5, 6, 7}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(h.slots[a].offset, h.slots[b].offset) })
	for k := 1; k < len(order); k++ {
		prev, next := &h.slots[order[k-1]], &h.slots[order[k]]
		if uint64(next.offset) < uint64(prev.offset)+areaSectors {
			return fail(fmt.Sprintf("keyslot %d", order[k]), "key material overlaps keyslot %d's", order[k-1])
		}
	}
	if need := end * sector; uint64(size) < need {
		return nil, &DamagedError{Copy: "LUKS1", Reason: fmt.Sprintf("device is %d bytes, the header and keyslots need %d", size, need)}
	}
	return h, nil
}

// cipherSpec is the dm-crypt specification of the data and keyslots.
func (h *luks1Header) cipherSpec() string { return h.cipherName + "-" + h.cipherMode }

// encodeSlot returns the on-disk bytes of keyslot i of h.
func (h *luks1Header) encodeSlot(i int) []byte {
	s := &h.slots[i]
	r := make([]byte, luks1SlotSize)
	binary.BigEndian.PutUint32(r[0:4], s.state)
	binary.BigEndian.PutUint32(r[4:8], s.iterations)
	copy(r[8:40], s.salt[:])
	binary.BigEndian.PutUint32(r[40:44], s.offset)
	binary.BigEndian.PutUint32(r[44:48], s.stripes)
	return r
}

// withSlot returns a copy of h whose keyslot i is s, with raw updated.
func (h *luks1Header) withSlot(i int, s luks1Slot) *luks1Header {
	c := *h
	c.slots[i] = s
	copy(c.raw[luks1SlotsOffset+i*luks1SlotSize:], c.encodeSlot(i))
	return &c
}

// end is the end of the last keyslot area in bytes: the size of the header
// area a backup holds (cryptsetup's LUKS_device_sectors).
func (h *luks1Header) end() uint64 {
	end := uint64(0)
	areaSectors := uint64(afSize(int(h.keyBytes)) / sector)
	for i := range h.slots {
		end = max(end, uint64(h.slots[i].offset)+areaSectors)
	}
	return end * sector
}

// keyslotsStart is where the first keyslot area starts, in bytes.
func (h *luks1Header) keyslotsStart() uint64 {
	start := uint64(h.slots[0].offset)
	for i := range h.slots {
		start = min(start, uint64(h.slots[i].offset))
	}
	return start * sector
}
