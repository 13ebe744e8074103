package luks

import "slices"

// Info is what a header says, for `info` and `info --json`. Strings are as
// stored in the header (untrusted: escape them before printing to a terminal).
type Info struct {
	Version      int          `json:"version"`
	UUID         string       `json:"uuid"`
	Label        string       `json:"label,omitempty"`
	Subsystem    string       `json:"subsystem,omitempty"`
	Cipher       string       `json:"cipher"`
	KeySize      int          `json:"key_size"`       // bytes; 0 if no keyslot holds the key
	Hash         string       `json:"hash,omitempty"` // LUKS1: the PBKDF2 and AF hash
	SectorSize   int          `json:"sector_size"`
	DataOffset   uint64       `json:"data_offset"`
	DataSize     uint64       `json:"data_size,omitempty"` // 0 when Dynamic
	Dynamic      bool         `json:"dynamic"`
	IVOffset     uint64       `json:"iv_offset"`
	MetadataSize uint64       `json:"metadata_size,omitempty"` // LUKS2: one binary header + JSON area
	KeyslotsSize uint64       `json:"keyslots_size"`           // bytes of keyslot areas
	MaxKeyslots  int          `json:"max_keyslots"`
	Keyslots     []SlotInfo   `json:"keyslots"`
	Digests      []DigestInfo `json:"digests"`
	Tokens       []TokenInfo  `json:"tokens,omitempty"`
	Copies       []CopyInfo   `json:"copies,omitempty"` // LUKS2: primary and secondary
	Flags        []string     `json:"flags,omitempty"`
	Requirements []string     `json:"requirements,omitempty"`
	// Unsupported says why this package cannot open the data or change the
	// keys ("" if it can).
	Unsupported string `json:"unsupported,omitempty"`
}

// SlotInfo is one active keyslot.
type SlotInfo struct {
	Slot        int     `json:"slot"`
	Type        string  `json:"type"` // "luks2"; "luks1" for the keyslots of a LUKS1 header
	KeySize     int     `json:"key_size"`
	Priority    string  `json:"priority,omitempty"` // LUKS2: "ignore", "normal", "prefer"
	KDF         KDFInfo `json:"kdf"`
	AFStripes   int64   `json:"af_stripes"`
	AFHash      string  `json:"af_hash"`
	AreaOffset  uint64  `json:"area_offset"`
	AreaSize    uint64  `json:"area_size"`
	AreaCipher  string  `json:"area_cipher"`
	AreaKeySize int     `json:"area_key_size"`
	Digest      int     `json:"digest"`            // -1 if none
	Problem     string  `json:"problem,omitempty"` // why it cannot be used, "" if it can
}

// KDFInfo is a keyslot's key derivation.
type KDFInfo struct {
	Type       string `json:"type"` // "pbkdf2", "argon2i", "argon2id"
	Hash       string `json:"hash,omitempty"`
	Iterations uint32 `json:"iterations"`       // PBKDF2 iterations, or Argon2 time cost
	Memory     uint32 `json:"memory,omitempty"` // Argon2, KiB
	Threads    uint32 `json:"threads,omitempty"`
	Salt       []byte `json:"salt"`
}

// DigestInfo is a volume key digest (LUKS1 has one, the master-key digest).
type DigestInfo struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Hash       string `json:"hash"`
	Iterations uint32 `json:"iterations"`
	Salt       []byte `json:"salt"`
	Digest     []byte `json:"digest"`
	Keyslots   []int  `json:"keyslots"`
	Segments   []int  `json:"segments"`
}

// TokenInfo is a LUKS2 token (kept as is; this package does not use tokens).
type TokenInfo struct {
	ID       int    `json:"id"`
	Type     string `json:"type"`
	Keyslots []int  `json:"keyslots"`
}

// CopyInfo is one LUKS2 metadata copy.
type CopyInfo struct {
	Name         string `json:"name"` // "primary" or "secondary"
	Offset       uint64 `json:"offset"`
	Seqid        uint64 `json:"seqid"`
	MetadataSize uint64 `json:"metadata_size"`
	Current      bool   `json:"current"` // this copy's metadata is in use
	Problem      string `json:"problem,omitempty"`
}

func priorityName(p int64) string {
	switch p {
	case PriorityIgnore:
		return "ignore"
	case PriorityNormal:
		return "normal"
	case PriorityPrefer:
		return "prefer"
	}
	return "unknown"
}

// Info returns what the header says.
func (h *Header) Info() *Info {
	var info *Info
	if h.v1 != nil {
		info = h.v1.info()
	} else {
		info = h.v2.info()
	}
	if err := h.Supported(); err != nil {
		info.Unsupported = err.Error()
	}
	return info
}

func (h *luks1Header) info() *Info {
	info := &Info{
		Version: 1, UUID: h.uuid, Cipher: h.cipherSpec(), KeySize: int(h.keyBytes), Hash: h.hashSpec,
		SectorSize: sector, DataOffset: uint64(h.payloadOffset) * sector, Dynamic: true,
		KeyslotsSize: h.end() - h.keyslotsStart(), MaxKeyslots: luks1SlotCount,
	}
	d := DigestInfo{Type: "pbkdf2", Hash: h.hashSpec, Iterations: h.mkDigestIterations,
		Salt: slices.Clone(h.mkDigestSalt[:]), Digest: slices.Clone(h.mkDigest[:]), Segments: []int{0}}
	tries, _ := h.tries(AnySlot)
	for _, t := range tries {
		s := &h.slots[t.slot]
		si := SlotInfo{
			Slot: t.slot, Type: "luks1", KeySize: int(h.keyBytes),
			KDF:       KDFInfo{Type: "pbkdf2", Hash: h.hashSpec, Iterations: s.iterations, Salt: slices.Clone(s.salt[:])},
			AFStripes: int64(s.stripes), AFHash: h.hashSpec,
			AreaOffset: uint64(s.offset) * sector, AreaSize: uint64(afSize(int(h.keyBytes))),
			AreaCipher: h.cipherSpec(), AreaKeySize: int(h.keyBytes),
		}
		if t.problem != nil {
			si.Problem = t.problem.Error()
		}
		info.Keyslots = append(info.Keyslots, si)
		d.Keyslots = append(d.Keyslots, t.slot)
	}
	info.Digests = []DigestInfo{d}
	return info
}

func (s *luks2State) info() *Info {
	m := s.meta()
	c := s.cur
	info := &Info{
		Version: 2, UUID: c.uuid, Label: c.label, Subsystem: c.subsystem,
		KeySize: m.volumeKeySize(), MetadataSize: c.hdrSize, KeyslotsSize: m.keyslotsSize,
		MaxKeyslots: luks2MaxIDs, Flags: m.flags, Requirements: m.requirements,
	}
	if seg := m.segments[0]; seg != nil {
		info.Cipher, info.SectorSize, info.DataOffset = seg.encryption, int(seg.sectorSize), seg.offset
		info.DataSize, info.Dynamic, info.IVOffset = seg.size, seg.dynamic, seg.ivTweak
	}
	for _, k := range m.keyslots {
		si := SlotInfo{
			Slot: k.id, Type: k.typ, KeySize: k.keySize, Priority: priorityName(k.priority),
			KDF: KDFInfo{Type: k.kdf.Type, Hash: k.kdf.Hash, Iterations: k.kdf.Iterations,
				Memory: k.kdf.Memory, Threads: k.kdf.CPUs, Salt: slices.Clone(k.kdf.Salt)},
			AFStripes: k.stripes, AFHash: k.afHash, AreaOffset: k.areaOff, AreaSize: k.areaSize,
			AreaCipher: k.areaEnc, AreaKeySize: k.areaKey, Digest: k.digest,
		}
		if k.problem != nil {
			si.Problem = k.problem.Error()
		} else if d := m.segmentDigest(); d == nil || k.digest != d.id {
			si.Problem = "not bound to the data segment (an unbound key)"
		}
		info.Keyslots = append(info.Keyslots, si)
	}
	for _, d := range m.digests {
		info.Digests = append(info.Digests, DigestInfo{ID: d.id, Type: d.typ, Hash: d.hash, Iterations: d.iterations,
			Salt: slices.Clone(d.salt), Digest: slices.Clone(d.digest), Keyslots: d.keyslots, Segments: d.segments})
	}
	for _, t := range m.tokens {
		info.Tokens = append(info.Tokens, TokenInfo{ID: t.id, Type: t.typ, Keyslots: t.keyslots})
	}
	for _, cp := range []*luks2Copy{s.primary, s.secondary} {
		ci := CopyInfo{Name: copyName(cp.offset != 0), Offset: cp.offset, Seqid: cp.seqid, MetadataSize: cp.hdrSize, Current: cp == s.cur}
		if cp.err != nil {
			ci.Problem = cp.err.Error()
		}
		info.Copies = append(info.Copies, ci)
	}
	return info
}
