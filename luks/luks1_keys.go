package luks

import (
	"bytes"
	"context"
	"fmt"

	"github.com/awnumar/memguard"
)

// LUKS1 header changes follow cryptsetup's order (lib/luks1/keymanage.c): a
// new key's material is written and synced before the keyslot record that
// enables it; a removed key's material is overwritten and synced before the
// record that disables it. The one header copy is only ever changed in one
// 48-byte keyslot record per write, so every crash leaves each keyslot either
// as it was or as it is meant to be (a half-written record disables the
// keyslot or leaves it unable to open, never another keyslot).

// checkUnchanged re-reads the header and refuses to go on if another program
// changed it since it was read.
func (h *luks1Header) checkUnchanged(dev Device) error {
	var b [luks1HeaderSize]byte
	if _, err := dev.ReadAt(b[:], 0); err != nil {
		return fmt.Errorf("re-reading the header: %w", err)
	}
	if !bytes.Equal(b[:], h.raw[:]) {
		return ErrHeaderChanged
	}
	return nil
}

func (h *Header) addKey1(ctx context.Context, dev Device, vk *memguard.LockedBuffer, secret []byte, opts NewKey) (int, error) {
	hv := h.v1
	p := opts.PBKDF2
	if p.Hash == "" {
		p.Hash = hv.hashSpec
	}
	if p.Hash != hv.hashSpec {
		return -1, fmt.Errorf("a LUKS1 keyslot uses the header's hash %s, not %s", hv.hashSpec, p.Hash)
	}
	if err := p.Validate(); err != nil {
		return -1, err
	}
	slot := opts.Slot
	if slot == AnySlot {
		for i := range hv.slots {
			if !hv.slots[i].active() {
				slot = i
				break
			}
		}
		if slot == AnySlot {
			return -1, ErrNoFreeSlot
		}
	}
	if slot < 0 || slot >= luks1SlotCount {
		return -1, &SlotError{slot, fmt.Sprintf("does not exist (LUKS1 keyslots are 0-%d)", luks1SlotCount-1)}
	}
	if hv.slots[slot].active() {
		return -1, &SlotError{slot, "is already in use"}
	}
	if err := hv.checkUnchanged(dev); err != nil {
		return -1, err
	}
	s := hv.slots[slot]
	salt, err := randomBytes(luks1SaltSize)
	if err != nil {
		return -1, err
	}
	copy(s.salt[:], salt)
	s.iterations = p.Iterations
	s.state = luks1Enabled
	spec := kdfSpec{typ: "pbkdf2", hash: p.Hash, iterations: p.Iterations}
	material, err := sealedMaterial(ctx, vk.Bytes(), secret, spec, s.salt[:], int(hv.keyBytes), hv.cipherSpec(), hv.hashSpec)
	if err != nil {
		return -1, err
	}
	defer material.Destroy()
	if err := writeSync(dev, material.Bytes(), uint64(s.offset)*sector); err != nil {
		return -1, fmt.Errorf("writing key material: %w", err)
	}
	next := hv.withSlot(slot, s)
	if err := writeSync(dev, next.encodeSlot(slot), luks1SlotsOffset+uint64(slot)*luks1SlotSize); err != nil {
		return -1, fmt.Errorf("writing the header: %w", err)
	}
	h.v1 = next
	return slot, nil
}

func (h *Header) removeKey1(dev Device, slot int) error {
	hv := h.v1
	if slot < 0 || slot >= luks1SlotCount {
		return &SlotError{slot, fmt.Sprintf("does not exist (LUKS1 keyslots are 0-%d)", luks1SlotCount-1)}
	}
	if !hv.slots[slot].active() {
		return &SlotError{slot, "is not active"}
	}
	active := 0
	for i := range hv.slots {
		if hv.slots[i].active() {
			active++
		}
	}
	if active == 1 {
		return ErrLastSlot
	}
	if err := hv.checkUnchanged(dev); err != nil {
		return err
	}
	s := hv.slots[slot]
	if err := wipeArea(dev, uint64(s.offset)*sector, uint64(afSize(int(hv.keyBytes)))); err != nil {
		return err
	}
	s.state, s.iterations, s.salt = luks1Disabled, 0, [luks1SaltSize]byte{}
	next := hv.withSlot(slot, s)
	if err := writeSync(dev, next.encodeSlot(slot), luks1SlotsOffset+uint64(slot)*luks1SlotSize); err != nil {
		return fmt.Errorf("writing the header: %w", err)
	}
	h.v1 = next
	return nil
}
