package luks

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/kdf"
)

// LUKS2 header changes follow cryptsetup's order (lib/luks2): key material is
// written and synced to a keyslot area that no copy of the metadata refers to
// before the metadata that refers to it; the metadata is then committed with
// seqid + 1, copy by copy, each as cryptsetup writes it (binary header without
// checksum, JSON area, binary header with checksum, sync). The two copies make
// the switch atomic: a copy cut short fails its checksum and the other one is
// used. Where cryptsetup always writes the primary first, this package writes
// first the copy that is not current when only one is (after a crash or
// damage): otherwise a torn write of the only current copy would leave an
// older state in charge.

// checkUnchanged re-reads both copies and refuses to go on if another program
// changed them since they were read (cryptsetup's seqid check, made on both).
func (s *luks2State) checkUnchanged(dev Device, size int64) error {
	now, err := readLUKS2(dev, size)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrHeaderChanged, err)
	}
	same := func(a, b *luks2Copy) bool {
		return a.state == b.state && a.seqid == b.seqid && bytes.Equal(a.bin, b.bin) && bytes.Equal(a.json, b.json)
	}
	if !same(now.primary, s.primary) || !same(now.secondary, s.secondary) {
		return ErrHeaderChanged
	}
	return nil
}

// usedAreas returns the keyslot areas that any valid copy refers to.
func (s *luks2State) usedAreas() [][2]uint64 {
	var areas [][2]uint64
	for _, c := range []*luks2Copy{s.primary, s.secondary} {
		if c.meta == nil {
			continue
		}
		for _, k := range c.meta.keyslots {
			areas = append(areas, [2]uint64{k.areaOff, k.areaSize})
		}
	}
	slices.SortFunc(areas, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	return areas
}

// findArea returns the first gap of length bytes in the keyslots area that no
// copy uses (cryptsetup's LUKS2_find_area_gap, over both copies).
func (s *luks2State) findArea(length uint64) (uint64, error) {
	m := s.meta()
	off, end := 2*m.metaSize(), m.areasEnd()
	for _, a := range s.usedAreas() {
		if a[0] >= off+length {
			break
		}
		off = max(off, a[0]+a[1])
		off = (off + 4095) / 4096 * 4096
	}
	if off+length > end {
		return 0, fmt.Errorf("%w: no free %d-byte keyslot area", ErrNoFreeSlot, length)
	}
	return off, nil
}

// commit writes tree as the next metadata.
func (h *Header) commit2(dev Device, tree *jsonValue) error {
	s := h.v2
	cur := s.cur
	jsonSize := cur.hdrSize - luks2BinSize
	eraseUnusedDigests(tree)
	text := tree.encode(nil)
	if uint64(len(text)) >= jsonSize {
		return fmt.Errorf("the metadata (%d bytes) does not fit its %d-byte area", len(text), jsonSize)
	}
	area := make([]byte, jsonSize)
	copy(area, text)
	// Never write what this package would not read back.
	parsed, err := parseJSONArea(area)
	if err != nil {
		return fmt.Errorf("internal error: refusing to write invalid metadata: %w", err)
	}
	meta, err := parseMeta(parsed, jsonSize)
	if err != nil {
		return fmt.Errorf("internal error: refusing to write invalid metadata: %w", err)
	}
	if cur.seqid == ^uint64(0) {
		return fmt.Errorf("seqid %d cannot grow", cur.seqid)
	}
	seqid := cur.seqid + 1
	order := []*luks2Copy{s.primary, s.secondary}
	if s.cur == s.primary && s.stale(s.secondary) {
		order = []*luks2Copy{s.secondary, s.primary}
	}
	var written [2]*luks2Copy
	for _, c := range order {
		off := uint64(0)
		if c == s.secondary {
			off = cur.hdrSize
		}
		nc, err := writeCopy(dev, cur, c, off, seqid, area, meta)
		if err != nil {
			return fmt.Errorf("writing the %s header: %w", copyName(off != 0), err)
		}
		if off == 0 {
			written[0] = nc
		} else {
			written[1] = nc
		}
	}
	s.primary, s.secondary, s.cur = written[0], written[1], written[0]
	return nil
}

// writeCopy writes one metadata copy at off the way cryptsetup does: binary
// header without checksum, JSON area, binary header with checksum, sync. The
// binary fields come from cur; the salt stays the copy's own, or is new for a
// copy that had none.
func writeCopy(dev Device, cur, old *luks2Copy, off, seqid uint64, area []byte, meta *luks2Meta) (*luks2Copy, error) {
	salt := old.salt
	if old.bin == nil {
		b, err := randomBytes(len(salt))
		if err != nil {
			return nil, err
		}
		copy(salt[:], b)
	}
	bin := encodeBin(off, cur.hdrSize, seqid, cur.label, cur.csumAlg, cur.uuid, cur.subsystem, salt)
	if _, err := dev.WriteAt(bin, int64(off)); err != nil {
		return nil, err
	}
	if _, err := dev.WriteAt(area, int64(off+luks2BinSize)); err != nil {
		return nil, err
	}
	sum, err := luks2Checksum(cur.csumAlg, bin, area)
	if err != nil {
		return nil, err
	}
	copy(bin[luks2OffCsum:], sum)
	if _, err := dev.WriteAt(bin[:luks2OffCsum+luks2CsumSize], int64(off)); err != nil {
		return nil, err
	}
	if err := dev.Sync(); err != nil {
		return nil, err
	}
	return &luks2Copy{offset: off, state: copyCurrent, hdrSize: cur.hdrSize, seqid: seqid, label: cur.label,
		subsystem: cur.subsystem, csumAlg: cur.csumAlg, uuid: cur.uuid, salt: salt, bin: bin, json: area, meta: meta}, nil
}

// eraseUnusedDigests drops digests bound to no keyslot and no segment, as
// cryptsetup does before every write.
func eraseUnusedDigests(tree *jsonValue) {
	ds := tree.get("digests")
	kept := ds.obj[:0:0]
	for _, m := range ds.obj {
		ks, ss := m.val.get("keyslots"), m.val.get("segments")
		if ks == nil || ss == nil || len(ks.arr) > 0 || len(ss.arr) > 0 {
			kept = append(kept, m)
		}
	}
	ds.obj = kept
}

// removeID removes the string id from the array arr of each member of section.
func removeID(section *jsonValue, arr, id string) {
	for _, m := range section.obj {
		a := m.val.get(arr)
		if a == nil || a.kind != jsonArray {
			continue
		}
		a.arr = slices.DeleteFunc(a.arr, func(v *jsonValue) bool { return v.kind == jsonString && v.str == id })
	}
}

// addKey2 writes a new keyslot holding vk under secret: in the lowest free
// keyslot (opts.Slot) or, when replace ≥ 0, as the new content of keyslot
// replace.
func (h *Header) addKey2(ctx context.Context, dev Device, vk *memguard.LockedBuffer, secret []byte, opts NewKey, replace int) (int, error) {
	s := h.v2
	m := s.meta()
	id := replace
	if id < 0 {
		id = opts.Slot
		if id == AnySlot {
			for i := 0; i < luks2MaxIDs && id == AnySlot; i++ {
				if m.keyslot(i) == nil {
					id = i
				}
			}
			if id == AnySlot {
				return -1, ErrNoFreeSlot
			}
		}
		if id < 0 || id >= luks2MaxIDs {
			return -1, &SlotError{id, fmt.Sprintf("does not exist (LUKS2 keyslots are 0-%d)", luks2MaxIDs-1)}
		}
		if m.keyslot(id) != nil {
			return -1, &SlotError{id, "is already in use"}
		}
	}
	spec, kdfJSON, err := newKeyslotKDF(opts)
	if err != nil {
		return -1, err
	}
	if err := s.checkUnchanged(dev, h.size); err != nil {
		return -1, err
	}
	seg := m.segments[0]
	areaCipher, areaKey := seg.encryption, vk.Size()
	afHash := "sha256"
	if spec.typ == "pbkdf2" {
		afHash = spec.hash
	}
	length := uint64(afSize(vk.Size())+4095) / 4096 * 4096
	areaOff, err := s.findArea(length)
	if err != nil {
		return -1, err
	}
	salt, err := randomBytes(luks2SaltSize)
	if err != nil {
		return -1, err
	}
	material, err := sealedMaterial(ctx, vk.Bytes(), secret, spec, salt, areaKey, areaCipher, afHash)
	if err != nil {
		return -1, err
	}
	defer material.Destroy()
	if err := writeSync(dev, material.Bytes(), areaOff); err != nil {
		return -1, fmt.Errorf("writing key material: %w", err)
	}

	kdfJSON.set("salt", jStr(base64.StdEncoding.EncodeToString(salt)))
	slot := jObj(
		jm("type", jStr("luks2")),
		jm("key_size", jInt(int64(vk.Size()))),
		jm("af", jObj(jm("type", jStr("luks1")), jm("stripes", jInt(afStripes)), jm("hash", jStr(afHash)))),
		jm("area", jObj(jm("type", jStr("raw")), jm("offset", jUint(areaOff)), jm("size", jUint(length)),
			jm("encryption", jStr(areaCipher)), jm("key_size", jInt(int64(areaKey))))),
		jm("kdf", kdfJSON),
	)
	tree := m.tree.clone()
	name := strconv.Itoa(id)
	var old *luks2Keyslot
	if replace >= 0 {
		old = m.keyslot(replace)
		if p := m.tree.get("keyslots").get(name).get("priority"); p != nil {
			slot.set("priority", p.clone())
		}
	} else {
		d := tree.get("digests").get(strconv.Itoa(m.segmentDigest().id))
		ks := d.get("keyslots")
		ks.arr = append(ks.arr, jStr(name))
	}
	tree.get("keyslots").set(name, slot)
	if err := h.commit2(dev, tree); err != nil {
		return -1, err
	}
	if old != nil {
		// The old material is no longer referred to by either copy.
		if err := wipeArea(dev, old.areaOff, old.areaSize); err != nil {
			return id, fmt.Errorf("the key was changed, but wiping the old key material failed: %w", err)
		}
	}
	return id, nil
}

// newKeyslotKDF returns the derivation of a new LUKS2 keyslot and its JSON
// (without the salt), members in cryptsetup's order.
func newKeyslotKDF(opts NewKey) (kdfSpec, *jsonValue, error) {
	if opts.PBKDF2.Iterations != 0 {
		p := opts.PBKDF2
		if p.Hash == "" {
			p.Hash = "sha256"
		}
		if err := p.Validate(); err != nil {
			return kdfSpec{}, nil, err
		}
		return kdfSpec{typ: "pbkdf2", hash: p.Hash, iterations: p.Iterations},
			jObj(jm("type", jStr("pbkdf2")), jm("hash", jStr(p.Hash)), jm("iterations", jInt(int64(p.Iterations)))), nil
	}
	a := opts.Argon2
	if a.Variant == "" {
		a.Variant = kdf.Argon2id
	}
	if err := a.Validate(); err != nil {
		return kdfSpec{}, nil, err
	}
	return kdfSpec{typ: a.Variant, iterations: a.Iterations, memory: a.Memory, threads: a.Threads},
		jObj(jm("type", jStr(a.Variant)), jm("time", jInt(int64(a.Iterations))), jm("memory", jInt(int64(a.Memory))), jm("cpus", jInt(int64(a.Threads)))), nil
}

func (h *Header) removeKey2(dev Device, slot int) error {
	s := h.v2
	m := s.meta()
	if slot < 0 || slot >= luks2MaxIDs {
		return &SlotError{slot, fmt.Sprintf("does not exist (LUKS2 keyslots are 0-%d)", luks2MaxIDs-1)}
	}
	k := m.keyslot(slot)
	if k == nil {
		return &SlotError{slot, "is not active"}
	}
	d := m.segmentDigest()
	if k.digest == d.id && k.typ == "luks2" {
		others := 0
		for _, o := range m.keyslots {
			if o.id != slot && o.typ == "luks2" && o.digest == d.id {
				others++
			}
		}
		if others == 0 {
			return ErrLastSlot
		}
	}
	if err := s.checkUnchanged(dev, h.size); err != nil {
		return err
	}
	if err := wipeArea(dev, k.areaOff, k.areaSize); err != nil {
		return err
	}
	tree := m.tree.clone()
	name := strconv.Itoa(slot)
	tree.get("keyslots").del(name)
	removeID(tree.get("digests"), "keyslots", name)
	removeID(tree.get("tokens"), "keyslots", name)
	return h.commit2(dev, tree)
}

// Repair rewrites a LUKS2 metadata copy that is damaged, missing or older
// than the other from the current one, as cryptsetup's repair does (same
// seqid, a new salt). It is never done implicitly: Read only reports. LUKS1
// has one copy and nothing to repair.
func (h *Header) Repair(dev Device) error {
	if h.v1 != nil {
		return nil
	}
	s := h.v2
	if !s.stale(s.primary) && !s.stale(s.secondary) {
		return nil
	}
	if err := s.checkUnchanged(dev, h.size); err != nil {
		return err
	}
	cur := s.cur
	for _, c := range []*luks2Copy{s.primary, s.secondary} {
		if !s.stale(c) {
			continue
		}
		off := uint64(0)
		if c == s.secondary {
			off = cur.hdrSize
		}
		nc, err := writeCopy(dev, cur, &luks2Copy{}, off, cur.seqid, cur.json, cur.meta) // a new salt
		if err != nil {
			return fmt.Errorf("repairing the %s header: %w", copyName(off != 0), err)
		}
		if off == 0 {
			s.primary = nc
		} else {
			s.secondary = nc
		}
	}
	s.cur = s.primary
	return nil
}
