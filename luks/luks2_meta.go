package luks

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"

	"github.com/cryptvol/cryptvol/kdf"
)

// LUKS2 metadata (the JSON area): what it must contain and the bounds every
// value is held to. The structural checks are cryptsetup's (lib/luks2
// LUKS2_hdr_validate and the keyslot handler's validate); a header that fails
// them is damaged. Values that are well formed but outside what this package
// does (a cipher, a KDF cost, a requirement) are recorded as problems and
// surface as *UnsupportedError when the header is used, so `info` can still
// show them.
const (
	luks2BinSize         = 4096
	luks2MinHdrSize      = 0x4000
	luks2MaxHdrSize      = 0x400000
	luks2MaxKeyslotsSize = 0x8000000 // 128 MiB
	luks2MaxIDs          = 32        // keyslots, tokens, segments, digests
	luks2SaltSize        = 32
	luks2MaxKeySize      = 512 // bytes; cryptsetup's own limit is 512 bits, this only bounds parsing
)

// luks2HdrSizes are the metadata sizes LUKS2 defines, which are also the
// offsets where a secondary header may start.
var luks2HdrSizes = []uint64{0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000}

// Keyslot priorities.
const (
	PriorityIgnore = 0 // tried only when asked for by number
	PriorityNormal = 1
	PriorityPrefer = 2 // tried before the others
)

type luks2KDF struct {
	Type       string // "pbkdf2", "argon2i", "argon2id"
	Hash       string // pbkdf2
	Iterations uint32 // pbkdf2 iterations, argon2 time
	Memory     uint32 // argon2, KiB
	CPUs       uint32 // argon2
	Salt       []byte
}

type luks2Keyslot struct {
	id       int
	typ      string
	keySize  int // stored (volume) key size
	priority int64
	kdf      luks2KDF
	afType   string
	afHash   string
	stripes  int64
	areaType string
	areaEnc  string
	areaKey  int
	areaOff  uint64
	areaSize uint64
	digest   int   // the digest it is bound to, -1 for none
	problem  error // why it cannot be used for an unlock, nil if it can
}

type luks2Segment struct {
	id         int
	typ        string
	offset     uint64
	size       uint64
	dynamic    bool
	ivTweak    uint64
	encryption string
	sectorSize uint32
	integrity  bool
	flags      []string
}

type luks2Digest struct {
	id         int
	typ        string
	keyslots   []int
	segments   []int
	hash       string
	iterations uint32
	salt       []byte
	digest     []byte
	problem    error
}

type luks2Token struct {
	id       int
	typ      string
	keyslots []int
}

// luks2Meta is validated metadata: the JSON tree (kept whole, so a rewrite
// changes only what it means to) and the typed view of it.
type luks2Meta struct {
	tree         *jsonValue
	jsonSize     uint64
	keyslotsSize uint64
	keyslots     []*luks2Keyslot // by id
	segments     []*luks2Segment // by id
	digests      []*luks2Digest  // by id
	tokens       []*luks2Token   // by id
	flags        []string
	requirements []string
}

// metaSize is the size of one metadata copy (binary header and JSON area).
func (m *luks2Meta) metaSize() uint64 { return m.jsonSize + luks2BinSize }

// areasEnd is where the keyslot areas end: the size of everything before the
// data that a backup holds (cryptsetup's LUKS2_hdr_and_areas_size).
func (m *luks2Meta) areasEnd() uint64 { return 2*m.metaSize() + m.keyslotsSize }

func (m *luks2Meta) keyslot(id int) *luks2Keyslot {
	for _, k := range m.keyslots {
		if k.id == id {
			return k
		}
	}
	return nil
}

func (m *luks2Meta) digest(id int) *luks2Digest {
	for _, d := range m.digests {
		if d.id == id {
			return d
		}
	}
	return nil
}

// segmentDigest returns the digest bound to segment 0, or nil.
func (m *luks2Meta) segmentDigest() *luks2Digest {
	for _, d := range m.digests {
		if slices.Contains(d.segments, 0) {
			return d
		}
	}
	return nil
}

func bad(field, format string, args ...any) error { return damaged(field, format, args...) }

// object returns member key of v, which must be an object.
func member(v *jsonValue, path, key string, kind jsonKind) (*jsonValue, error) {
	m := v.get(key)
	if m == nil {
		return nil, bad(path, "missing %q", key)
	}
	if m.kind != kind {
		return nil, bad(path+"."+key, "is a %s, want a %s", m.kind, kind)
	}
	return m, nil
}

// numString parses a LUKS2 64-bit number, which is a JSON string of decimal
// digits (cryptsetup's "numbered" check and strtoull).
func numString(v *jsonValue, path string) (uint64, error) {
	if v == nil || v.kind != jsonString {
		return 0, bad(path, "missing or not a string")
	}
	s := v.str
	if s == "" || len(s) > 20 {
		return 0, bad(path, "%q is not a decimal number", s)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, bad(path, "%q is not a decimal number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, bad(path, "%q does not fit 64 bits", s)
	}
	return n, nil
}

// intValue parses a JSON integer (no fraction, no exponent) within [lo, hi].
func intValue(v *jsonValue, path string, lo, hi int64) (int64, error) {
	if v == nil || v.kind != jsonNumber {
		return 0, bad(path, "missing or not a number")
	}
	n, err := strconv.ParseInt(v.str, 10, 64)
	if err != nil {
		return 0, bad(path, "%s is not an integer that fits 64 bits", v.str)
	}
	if n < lo || n > hi {
		return 0, bad(path, "%d is not within %d to %d", n, lo, hi)
	}
	return n, nil
}

// objectID parses a section key ("0" … "31"): canonical decimal, so "0" and
// "00" cannot name the same object twice.
func objectID(key, section string) (int, error) {
	n, err := strconv.Atoi(key)
	if err != nil || n < 0 || strconv.Itoa(n) != key {
		return 0, bad(section, "key %q is not a canonical decimal number", key)
	}
	if n >= luks2MaxIDs {
		return 0, bad(section, "key %d is not below %d", n, luks2MaxIDs)
	}
	return n, nil
}

// idArray parses an array of id strings that must each name a member of
// section.
func idArray(v *jsonValue, path string, section *jsonValue) ([]int, error) {
	var ids []int
	for i, e := range v.arr {
		p := fmt.Sprintf("%s[%d]", path, i)
		if e.kind != jsonString {
			return nil, bad(p, "is a %s, want a string", e.kind)
		}
		if section.get(e.str) == nil {
			return nil, bad(p, "refers to %q, which does not exist", e.str)
		}
		id, _ := strconv.Atoi(e.str) // keys of section are canonical
		if slices.Contains(ids, id) {
			return nil, bad(p, "lists %q twice", e.str)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func stringArray(v *jsonValue, path string) ([]string, error) {
	var s []string
	for i, e := range v.arr {
		if e.kind != jsonString {
			return nil, bad(fmt.Sprintf("%s[%d]", path, i), "is a %s, want a string", e.kind)
		}
		s = append(s, e.str)
	}
	return s, nil
}

func base64Value(v *jsonValue, path string) ([]byte, error) {
	if v == nil || v.kind != jsonString {
		return nil, bad(path, "missing or not a string")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(v.str)
	if err != nil {
		return nil, bad(path, "is not base64: %v", err)
	}
	return b, nil
}

// parseMeta validates the JSON tree of a header whose JSON area is jsonSize
// bytes.
func parseMeta(tree *jsonValue, jsonSize uint64) (*luks2Meta, error) {
	if tree.kind != jsonObject {
		return nil, bad("", "metadata is a %s, want an object", tree.kind)
	}
	m := &luks2Meta{tree: tree}
	sections := map[string]*jsonValue{}
	for _, name := range []string{"keyslots", "tokens", "segments", "digests", "config"} {
		s, err := member(tree, "metadata", name, jsonObject)
		if err != nil {
			return nil, err
		}
		for _, mm := range s.obj {
			if name != "config" {
				if _, err := objectID(mm.key, name); err != nil {
					return nil, err
				}
				if mm.val.kind != jsonObject {
					return nil, bad(name+"."+mm.key, "is a %s, want an object", mm.val.kind)
				}
			}
		}
		sections[name] = s
	}
	if err := m.parseConfig(sections["config"], jsonSize); err != nil {
		return nil, err
	}
	if err := m.parseKeyslots(sections["keyslots"]); err != nil {
		return nil, err
	}
	if err := m.parseSegments(sections["segments"]); err != nil {
		return nil, err
	}
	if err := m.parseDigests(sections["digests"], sections["keyslots"], sections["segments"]); err != nil {
		return nil, err
	}
	if err := m.parseTokens(sections["tokens"], sections["keyslots"]); err != nil {
		return nil, err
	}
	if err := m.checkAreas(); err != nil {
		return nil, err
	}
	if err := m.checkBindings(); err != nil {
		return nil, err
	}
	if n := uint64(len(tree.encode(nil))); n >= m.jsonSize {
		return nil, bad("metadata", "%d bytes of JSON do not fit the %d-byte area", n, m.jsonSize)
	}
	return m, nil
}

func (m *luks2Meta) parseConfig(c *jsonValue, jsonSize uint64) error {
	var err error
	if m.jsonSize, err = numString(c.get("json_size"), "config.json_size"); err != nil {
		return err
	}
	if m.jsonSize != jsonSize {
		return bad("config.json_size", "%d differs from the binary header's %d", m.jsonSize, jsonSize)
	}
	if !slices.Contains(luks2HdrSizes, m.jsonSize+luks2BinSize) {
		return bad("config.json_size", "%d is not a LUKS2 metadata size", m.jsonSize)
	}
	if m.keyslotsSize, err = numString(c.get("keyslots_size"), "config.keyslots_size"); err != nil {
		return err
	}
	if m.keyslotsSize%4096 != 0 || m.keyslotsSize > luks2MaxKeyslotsSize {
		return bad("config.keyslots_size", "%d is not a multiple of 4096 up to %d", m.keyslotsSize, luks2MaxKeyslotsSize)
	}
	if f := c.get("flags"); f != nil {
		if f.kind != jsonArray {
			return bad("config.flags", "is a %s, want an array", f.kind)
		}
		if m.flags, err = stringArray(f, "config.flags"); err != nil {
			return err
		}
	}
	if r := c.get("requirements"); r != nil {
		if r.kind != jsonObject {
			return bad("config.requirements", "is a %s, want an object", r.kind)
		}
		if mand := r.get("mandatory"); mand != nil {
			if mand.kind != jsonArray {
				return bad("config.requirements.mandatory", "is a %s, want an array", mand.kind)
			}
			if m.requirements, err = stringArray(mand, "config.requirements.mandatory"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *luks2Meta) parseKeyslots(ks *jsonValue) error {
	for _, mm := range ks.obj {
		id, _ := strconv.Atoi(mm.key)
		path := "keyslots." + mm.key
		v := mm.val
		k := &luks2Keyslot{id: id, digest: -1, priority: PriorityNormal}
		t, err := member(v, path, "type", jsonString)
		if err != nil {
			return err
		}
		k.typ = t.str
		n, err := intValue(v.get("key_size"), path+".key_size", 0, 1<<32-1)
		if err != nil {
			return err
		}
		if n < 1 || n > luks2MaxKeySize {
			k.problem = unsupported(path, "key size %d bytes", n)
		}
		k.keySize = int(min(n, luks2MaxKeySize))
		if p := v.get("priority"); p != nil {
			if k.priority, err = intValue(p, path+".priority", -1<<31, 1<<31-1); err != nil {
				return err
			}
		}
		// Every keyslot has an area (cryptsetup's hdr_validate_areas).
		area, err := member(v, path, "area", jsonObject)
		if err != nil {
			return err
		}
		at, err := member(area, path+".area", "type", jsonString)
		if err != nil {
			return err
		}
		k.areaType = at.str
		if k.areaOff, err = numString(area.get("offset"), path+".area.offset"); err != nil {
			return err
		}
		if k.areaSize, err = numString(area.get("size"), path+".area.size"); err != nil {
			return err
		}
		if k.typ == "luks2" {
			if err := k.parseLUKS2(v, area, path); err != nil {
				return err
			}
		} else if k.problem == nil {
			k.problem = unsupported(path, "keyslot type %q", k.typ)
		}
		m.keyslots = append(m.keyslots, k)
	}
	slices.SortFunc(m.keyslots, func(a, b *luks2Keyslot) int { return cmp.Compare(a.id, b.id) })
	return nil
}

// parseLUKS2 checks a keyslot of type "luks2" (cryptsetup's
// luks2_keyslot_validate) and records what makes it unusable.
func (k *luks2Keyslot) parseLUKS2(v, area *jsonValue, path string) error {
	kv, err := member(v, path, "kdf", jsonObject)
	if err != nil {
		return err
	}
	af, err := member(v, path, "af", jsonObject)
	if err != nil {
		return err
	}
	t, err := member(kv, path+".kdf", "type", jsonString)
	if err != nil {
		return err
	}
	k.kdf.Type = t.str
	problem := func(e error) {
		if k.problem == nil {
			k.problem = e
		}
	}
	kpath := path + ".kdf"
	switch k.kdf.Type {
	case "pbkdf2":
		if len(kv.obj) != 4 {
			return bad(kpath, "has %d members, pbkdf2 has exactly type, hash, iterations and salt", len(kv.obj))
		}
		h, err := member(kv, kpath, "hash", jsonString)
		if err != nil {
			return err
		}
		k.kdf.Hash = h.str
		it, err := intValue(kv.get("iterations"), kpath+".iterations", -1<<63, 1<<63-1)
		if err != nil {
			return err
		}
		if it < 1 || it > 1<<32-1 {
			problem(unsupported(kpath, "iterations %d", it))
		}
		k.kdf.Iterations = uint32(min(max(it, 0), 1<<32-1))
	case kdf.Argon2i, kdf.Argon2id:
		if len(kv.obj) != 5 {
			return bad(kpath, "has %d members, %s has exactly type, time, memory, cpus and salt", len(kv.obj), k.kdf.Type)
		}
		var vals [3]uint32
		for i, name := range []string{"time", "memory", "cpus"} {
			n, err := intValue(kv.get(name), kpath+"."+name, -1<<63, 1<<63-1)
			if err != nil {
				return err
			}
			if n < 1 || n > 1<<32-1 {
				problem(unsupported(kpath, "%s %d", name, n))
			}
			vals[i] = uint32(min(max(n, 0), 1<<32-1))
		}
		k.kdf.Iterations, k.kdf.Memory, k.kdf.CPUs = vals[0], vals[1], vals[2]
	default:
		problem(unsupported(kpath, "type %q", k.kdf.Type))
	}
	if k.kdf.Type == "pbkdf2" || k.kdf.Type == kdf.Argon2i || k.kdf.Type == kdf.Argon2id {
		salt, err := base64Value(kv.get("salt"), kpath+".salt")
		if err != nil {
			return err
		}
		if len(salt) != luks2SaltSize {
			problem(unsupported(kpath, "salt of %d bytes (LUKS2 salts are %d)", len(salt), luks2SaltSize))
		}
		k.kdf.Salt = salt
	}
	// Bounds of the KDF, checked now so `info` can say why a slot is refused.
	if k.problem == nil {
		if err := k.kdfCheck(); err != nil {
			problem(&UnsupportedError{Feature: path + " kdf", Err: err})
		}
	}

	at, err := member(af, path+".af", "type", jsonString)
	if err != nil {
		return err
	}
	k.afType = at.str
	if k.afType != "luks1" {
		return bad(path+".af.type", "%q is not \"luks1\"", k.afType)
	}
	ah, err := member(af, path+".af", "hash", jsonString)
	if err != nil {
		return err
	}
	k.afHash = ah.str
	if k.stripes, err = intValue(af.get("stripes"), path+".af.stripes", -1<<63, 1<<63-1); err != nil {
		return err
	}
	if k.stripes != afStripes {
		problem(unsupported(path+".af", "%d stripes (only %d is defined)", k.stripes, afStripes))
	}
	if _, err := newHash(k.afHash); err != nil {
		problem(&UnsupportedError{Feature: path + ".af", Err: err})
	}

	if k.areaType != "raw" {
		return bad(path+".area.type", "%q is not \"raw\"", k.areaType)
	}
	enc, err := member(area, path+".area", "encryption", jsonString)
	if err != nil {
		return err
	}
	k.areaEnc = enc.str
	ak, err := intValue(area.get("key_size"), path+".area.key_size", -1<<63, 1<<63-1)
	if err != nil {
		return err
	}
	if ak < 1 || ak > luks2MaxKeySize {
		problem(unsupported(path+".area", "key size %d bytes", ak))
	}
	k.areaKey = int(min(max(ak, 0), luks2MaxKeySize))
	if k.areaOff%sector != 0 {
		problem(unsupported(path+".area", "offset %d is not a multiple of %d", k.areaOff, sector))
	}
	if k.areaSize < uint64(afSize(k.keySize)) {
		problem(damaged(path+".area.size", "%d bytes cannot hold the %d bytes of a %d-byte key's split material", k.areaSize, afSize(k.keySize), k.keySize))
	}
	if err := checkCipher(path+".area", k.areaEnc, k.areaKey); err != nil {
		problem(err)
	}
	return nil
}

// kdfCheck bounds the keyslot's key derivation (before any work is done).
func (k *luks2Keyslot) kdfCheck() error {
	switch k.kdf.Type {
	case "pbkdf2":
		return kdf.PBKDF2{Hash: k.kdf.Hash, Iterations: k.kdf.Iterations}.Validate()
	default:
		return kdf.Argon2{Variant: k.kdf.Type, Memory: k.kdf.Memory, Iterations: k.kdf.Iterations, Threads: k.kdf.CPUs}.Validate()
	}
}

func (m *luks2Meta) parseSegments(ss *jsonValue) error {
	if len(ss.obj) == 0 {
		return bad("segments", "is empty")
	}
	for _, mm := range ss.obj {
		id, _ := strconv.Atoi(mm.key)
		path := "segments." + mm.key
		v := mm.val
		s := &luks2Segment{id: id}
		t, err := member(v, path, "type", jsonString)
		if err != nil {
			return err
		}
		s.typ = t.str
		if s.offset, err = numString(v.get("offset"), path+".offset"); err != nil {
			return err
		}
		sz, err := member(v, path, "size", jsonString)
		if err != nil {
			return err
		}
		if sz.str == "dynamic" {
			s.dynamic = true
		} else if s.size, err = numString(sz, path+".size"); err != nil {
			return err
		} else if s.size == 0 {
			return bad(path+".size", "is 0")
		}
		if s.offset%sector != 0 || s.size%sector != 0 {
			return bad(path, "offset %d or size %d is not a multiple of %d", s.offset, s.size, sector)
		}
		if !s.dynamic && s.offset+s.size < s.offset {
			return bad(path, "offset %d + size %d overflows", s.offset, s.size)
		}
		if f := v.get("flags"); f != nil {
			if f.kind != jsonArray {
				return bad(path+".flags", "is a %s, want an array", f.kind)
			}
			if s.flags, err = stringArray(f, path+".flags"); err != nil {
				return err
			}
		}
		if s.typ == "crypt" {
			tw, err := numString(v.get("iv_tweak"), path+".iv_tweak")
			if err != nil {
				return err
			}
			s.ivTweak = tw
			enc, err := member(v, path, "encryption", jsonString)
			if err != nil {
				return err
			}
			s.encryption = enc.str
			ssz, err := intValue(v.get("sector_size"), path+".sector_size", 0, 1<<32-1)
			if err != nil {
				return err
			}
			if ssz == 0 || ssz%sector != 0 {
				return bad(path+".sector_size", "%d is not a multiple of %d", ssz, sector)
			}
			s.sectorSize = uint32(ssz)
			if s.size%uint64(s.sectorSize) != 0 {
				return bad(path+".size", "%d is not a multiple of the sector size %d", s.size, s.sectorSize)
			}
			if in := v.get("integrity"); in != nil {
				if in.kind != jsonObject {
					return bad(path+".integrity", "is a %s, want an object", in.kind)
				}
				for _, f := range []string{"type", "journal_encryption", "journal_integrity"} {
					if _, err := member(in, path+".integrity", f, jsonString); err != nil {
						return err
					}
				}
				s.integrity = true
			}
		}
		m.segments = append(m.segments, s)
	}
	slices.SortFunc(m.segments, func(a, b *luks2Segment) int { return cmp.Compare(a.id, b.id) })
	for i, s := range m.segments {
		if s.id != i {
			return bad("segments", "ids are not 0 to %d without gaps", len(m.segments)-1)
		}
	}
	// Segments must not overlap; only the last may be dynamic.
	for i, a := range m.segments {
		if a.dynamic && i != len(m.segments)-1 {
			return bad(fmt.Sprintf("segments.%d", a.id), "only the last segment may have a dynamic size")
		}
		for _, b := range m.segments[i+1:] {
			if overlaps(a.offset, a.size, a.dynamic, b.offset, b.size, b.dynamic) {
				return bad(fmt.Sprintf("segments.%d", b.id), "overlaps segment %d", a.id)
			}
		}
	}
	return nil
}

func overlaps(aOff, aSize uint64, aDyn bool, bOff, bSize uint64, bDyn bool) bool {
	aEnd, bEnd := aOff+aSize, bOff+bSize
	if aDyn {
		aEnd = ^uint64(0)
	}
	if bDyn {
		bEnd = ^uint64(0)
	}
	return aOff < bEnd && bOff < aEnd
}

func (m *luks2Meta) parseDigests(ds, keyslots, segments *jsonValue) error {
	for _, mm := range ds.obj {
		id, _ := strconv.Atoi(mm.key)
		path := "digests." + mm.key
		v := mm.val
		d := &luks2Digest{id: id}
		t, err := member(v, path, "type", jsonString)
		if err != nil {
			return err
		}
		d.typ = t.str
		ka, err := member(v, path, "keyslots", jsonArray)
		if err != nil {
			return err
		}
		if d.keyslots, err = idArray(ka, path+".keyslots", keyslots); err != nil {
			return err
		}
		sa, err := member(v, path, "segments", jsonArray)
		if err != nil {
			return err
		}
		if d.segments, err = idArray(sa, path+".segments", segments); err != nil {
			return err
		}
		if d.typ != "pbkdf2" {
			d.problem = unsupported(path, "digest type %q", d.typ)
			m.digests = append(m.digests, d)
			continue
		}
		h, err := member(v, path, "hash", jsonString)
		if err != nil {
			return err
		}
		d.hash = h.str
		it, err := intValue(v.get("iterations"), path+".iterations", -1<<63, 1<<63-1)
		if err != nil {
			return err
		}
		if it < 1 || it > 1<<32-1 {
			d.problem = unsupported(path, "iterations %d", it)
		}
		d.iterations = uint32(min(max(it, 0), 1<<32-1))
		if d.salt, err = base64Value(v.get("salt"), path+".salt"); err != nil {
			return err
		}
		if d.digest, err = base64Value(v.get("digest"), path+".digest"); err != nil {
			return err
		}
		if d.problem == nil {
			if len(d.salt) != luks2SaltSize {
				d.problem = unsupported(path, "salt of %d bytes (LUKS2 salts are %d)", len(d.salt), luks2SaltSize)
			} else if err := (kdf.PBKDF2{Hash: d.hash, Iterations: d.iterations}).Validate(); err != nil {
				d.problem = &UnsupportedError{Feature: path, Err: err}
			} else if hf, _ := newHash(d.hash); len(d.digest) < luks1DigestSize || len(d.digest) != luks1DigestSize && len(d.digest) != hf().Size() {
				d.problem = unsupported(path, "digest of %d bytes with %s", len(d.digest), d.hash)
			}
		}
		m.digests = append(m.digests, d)
	}
	slices.SortFunc(m.digests, func(a, b *luks2Digest) int { return cmp.Compare(a.id, b.id) })
	return nil
}

func (m *luks2Meta) parseTokens(ts, keyslots *jsonValue) error {
	for _, mm := range ts.obj {
		id, _ := strconv.Atoi(mm.key)
		path := "tokens." + mm.key
		t, err := member(mm.val, path, "type", jsonString)
		if err != nil {
			return err
		}
		ka, err := member(mm.val, path, "keyslots", jsonArray)
		if err != nil {
			return err
		}
		ids, err := idArray(ka, path+".keyslots", keyslots)
		if err != nil {
			return err
		}
		m.tokens = append(m.tokens, &luks2Token{id: id, typ: t.str, keyslots: ids})
	}
	slices.SortFunc(m.tokens, func(a, b *luks2Token) int { return cmp.Compare(a.id, b.id) })
	return nil
}

// checkAreas requires every keyslot area to lie in the keyslots area and no
// two to overlap (cryptsetup's hdr_validate_areas), and the keyslots area to
// end before the data (hdr_validate_config).
func (m *luks2Meta) checkAreas() error {
	lo, hi := 2*m.metaSize(), m.areasEnd()
	for i, k := range m.keyslots {
		path := fmt.Sprintf("keyslots.%d.area", k.id)
		switch {
		case k.areaOff < lo:
			return bad(path, "offset %d is inside the metadata (which ends at %d)", k.areaOff, lo)
		case k.areaSize == 0:
			return bad(path, "size is 0")
		case k.areaOff+k.areaSize < k.areaOff || k.areaOff+k.areaSize > hi:
			return bad(path, "offset %d + size %d runs past the keyslots area (which ends at %d)", k.areaOff, k.areaSize, hi)
		}
		for _, o := range m.keyslots[:i] {
			if overlaps(k.areaOff, k.areaSize, false, o.areaOff, o.areaSize, false) {
				return bad(path, "overlaps keyslot %d's area", o.id)
			}
		}
	}
	for _, s := range m.segments {
		if s.offset != 0 && s.offset < hi {
			return bad(fmt.Sprintf("segments.%d.offset", s.id), "%d is inside the header and keyslots area (which ends at %d)", s.offset, hi)
		}
	}
	return nil
}

// checkBindings requires every keyslot of type luks2 to be bound to exactly
// one digest, every crypt segment to have a digest, and segment 0 to one.
func (m *luks2Meta) checkBindings() error {
	for _, k := range m.keyslots {
		n := 0
		for _, d := range m.digests {
			if slices.Contains(d.keyslots, k.id) {
				k.digest = d.id
				n++
			}
		}
		if k.typ == "luks2" && n != 1 {
			return bad(fmt.Sprintf("keyslots.%d", k.id), "is bound to %d digests, want exactly 1", n)
		}
	}
	for _, s := range m.segments {
		n := 0
		for _, d := range m.digests {
			if slices.Contains(d.segments, s.id) {
				n++
			}
		}
		if s.typ == "crypt" && n == 0 {
			return bad(fmt.Sprintf("segments.%d", s.id), "has no digest")
		}
		if n > 1 {
			return bad(fmt.Sprintf("segments.%d", s.id), "is bound to %d digests", n)
		}
	}
	return nil
}

// support reports why the data cannot be opened with this package, or nil.
func (m *luks2Meta) support() error {
	if len(m.requirements) > 0 {
		for _, r := range m.requirements {
			switch r {
			case "offline-reencrypt", "online-reencrypt", "online-reencrypt-v2", "online-reencrypt-v3":
				return unsupported("requirement", "a reencryption is in progress (%q); finish it with cryptsetup first", r)
			}
		}
		return unsupported("requirement", "unknown mandatory requirements %q", m.requirements)
	}
	if len(m.segments) != 1 {
		return unsupported("segments", "%d segments (only one crypt segment is supported)", len(m.segments))
	}
	s := m.segments[0]
	switch {
	case s.typ != "crypt":
		return unsupported("segment 0", "type %q (only \"crypt\" is supported)", s.typ)
	case s.integrity:
		return unsupported("segment 0", "authenticated encryption with dm-integrity")
	case len(s.flags) > 0:
		return unsupported("segment 0", "flags %q", s.flags)
	case s.sectorSize != 512 && s.sectorSize != 1024 && s.sectorSize != 2048 && s.sectorSize != 4096:
		return unsupported("segment 0", "sector size %d (dm-crypt takes 512, 1024, 2048 or 4096)", s.sectorSize)
	case s.ivTweak%uint64(s.sectorSize/sector) != 0:
		return unsupported("segment 0", "iv_tweak %d is not a multiple of the sector size in 512-byte units", s.ivTweak)
	}
	if d := m.segmentDigest(); d == nil {
		return unsupported("segment 0", "no digest")
	} else if d.problem != nil {
		return d.problem
	}
	n := m.volumeKeySize()
	if n == 0 {
		return unsupported("segment 0", "no keyslot holds its key")
	}
	return checkCipher("segment 0 encryption", s.encryption, n)
}

// volumeKeySize is the key size of the keyslots bound to segment 0's digest,
// 0 if there is none or they disagree.
func (m *luks2Meta) volumeKeySize() int {
	d := m.segmentDigest()
	if d == nil {
		return 0
	}
	n := 0
	for _, k := range m.keyslots {
		if k.typ == "luks2" && k.digest == d.id {
			if n != 0 && n != k.keySize {
				return 0
			}
			n = k.keySize
		}
	}
	return n
}
