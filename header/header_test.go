package header

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// sample returns a valid header with two active slots (one of each AEAD).
func sample(t testing.TB) (*Header, []byte) {
	t.Helper()
	h := &Header{Sequence: 7, Cipher: CipherAESXTSPlain64, SectorSize: 4096, DataOffset: DataAlignment, DataSize: 1 << 30}
	rand.Read(h.UUID[:])
	mk := make([]byte, MasterKeySize)
	rand.Read(mk)
	for i, a := range []AEAD{XChaCha20Poly1305, AESGCM} {
		s, err := NewSlot(8192, 3, 1, a)
		if err != nil {
			t.Fatal(err)
		}
		kek := bytes.Repeat([]byte{byte(i + 1)}, 32)
		if err := s.Wrap(kek, mk, h.UUID); err != nil {
			t.Fatal(err)
		}
		h.Slots[i*5] = s
	}
	macKey := make([]byte, MACKeySize)
	if err := MACKey(macKey, mk, h.UUID); err != nil {
		t.Fatal(err)
	}
	h.Seal(macKey)
	return h, mk
}

func TestRoundTrip(t *testing.T) {
	h, _ := sample(t)
	b := h.Encode()
	if len(b) != Size {
		t.Fatalf("encoded %d bytes", len(b))
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *h {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, h)
	}
	if !bytes.Equal(got.Encode(), b) {
		t.Fatal("re-encoding differs")
	}
	if a := got.ActiveSlots(); len(a) != 2 || a[0] != 0 || a[1] != 5 {
		t.Fatalf("active slots %v", a)
	}
	if got.FreeSlot() != 1 {
		t.Fatalf("free slot %d", got.FreeSlot())
	}
	if got.BackupOffset() != DataAlignment+1<<30 || got.FileSize() != DataAlignment+1<<30+Size {
		t.Fatal("layout arithmetic")
	}
}

func TestWrapUnwrap(t *testing.T) {
	h, mk := sample(t)
	for i, slot := range []int{0, 5} {
		kek := bytes.Repeat([]byte{byte(i + 1)}, 32)
		dst := make([]byte, MasterKeySize)
		if err := h.Slots[slot].Unwrap(dst, kek, h.UUID); err != nil {
			t.Fatalf("slot %d: %v", slot, err)
		}
		if !bytes.Equal(dst, mk) {
			t.Fatalf("slot %d unwrapped a different key", slot)
		}
		wrong := bytes.Repeat([]byte{9}, 32)
		if err := h.Slots[slot].Unwrap(dst, wrong, h.UUID); !errors.Is(err, ErrUnwrap) {
			t.Fatalf("wrong kek: %v", err)
		}
		if !bytes.Equal(dst, make([]byte, MasterKeySize)) {
			t.Fatal("dst not cleared after a failed unwrap")
		}
		// The slot is bound to the vault and to its parameters.
		other := h.UUID
		other[0] ^= 1
		if err := h.Slots[slot].Unwrap(dst, kek, other); !errors.Is(err, ErrUnwrap) {
			t.Fatal("slot opened under another uuid")
		}
		s := h.Slots[slot]
		s.Iterations++
		if err := s.Unwrap(dst, kek, h.UUID); !errors.Is(err, ErrUnwrap) {
			t.Fatal("slot opened with changed parameters")
		}
	}
}

func TestMAC(t *testing.T) {
	h, mk := sample(t)
	macKey := make([]byte, MACKeySize)
	MACKey(macKey, mk, h.UUID)
	if !h.VerifyMAC(macKey) {
		t.Fatal("fresh MAC does not verify")
	}
	// Any field change breaks the MAC, including the sequence number and slots.
	for name, change := range map[string]func(*Header){
		"sequence":    func(h *Header) { h.Sequence++ },
		"data_size":   func(h *Header) { h.DataSize += 4096 },
		"data_offset": func(h *Header) { h.DataOffset += DataAlignment },
		"sector_size": func(h *Header) { h.SectorSize = 512 },
		"slot":        func(h *Header) { h.Slots[0].Iterations++ },
		"remove slot": func(h *Header) { h.Slots[5] = Slot{} },
	} {
		c := *h
		change(&c)
		if c.VerifyMAC(macKey) {
			t.Errorf("%s: MAC still verifies", name)
		}
	}
	mk[0] ^= 1
	MACKey(macKey, mk, h.UUID)
	if h.VerifyMAC(macKey) {
		t.Fatal("MAC verifies under another master key")
	}
}

// corrupt patches b, fixes the checksum so validation reaches the field, and
// decodes.
func corrupt(b []byte, patch func(b []byte)) error {
	c := bytes.Clone(b)
	patch(c)
	return decodeFixed(c)
}

func decodeFixed(c []byte) error {
	fixChecksum(c)
	_, err := Decode(c)
	return err
}

func TestDecodeRejects(t *testing.T) {
	h, _ := sample(t)
	b := h.Encode()
	be := binary.BigEndian
	slot0 := SlotsOffset
	for _, tc := range []struct {
		name, field string
		patch       func(b []byte)
	}{
		{"header size", "header_size", func(b []byte) { be.PutUint16(b[10:], 512) }},
		{"flags", "flags", func(b []byte) { b[15] = 1 }},
		{"sequence 0", "sequence", func(b []byte) { be.PutUint64(b[16:], 0) }},
		{"cipher", "cipher", func(b []byte) { be.PutUint16(b[40:], 2) }},
		{"key bytes", "key_bytes", func(b []byte) { be.PutUint16(b[42:], 32) }},
		{"sector size 3", "sector_size", func(b []byte) { be.PutUint32(b[44:], 3) }},
		{"sector size 0", "sector_size", func(b []byte) { be.PutUint32(b[44:], 0) }},
		{"sector size 8192", "sector_size", func(b []byte) { be.PutUint32(b[44:], 8192) }},
		{"data offset 0 (overlaps header)", "data_offset", func(b []byte) { be.PutUint64(b[48:], 0) }},
		{"data offset unaligned", "data_offset", func(b []byte) { be.PutUint64(b[48:], DataAlignment+512) }},
		{"data offset huge", "data_offset", func(b []byte) { be.PutUint64(b[48:], 1<<63) }},
		{"data size 0", "data_size", func(b []byte) { be.PutUint64(b[56:], 0) }},
		{"data size partial sector", "data_size", func(b []byte) { be.PutUint64(b[56:], 4096+512) }},
		{"data size overflow", "data_size", func(b []byte) { be.PutUint64(b[56:], ^uint64(0)-4095) }},
		{"slot count 0", "slot_count", func(b []byte) { be.PutUint16(b[64:], 0) }},
		{"slot count overflow", "slot_count", func(b []byte) { be.PutUint16(b[64:], 0xffff) }},
		{"slot size", "slot_size", func(b []byte) { be.PutUint16(b[66:], 4096) }},
		{"slots offset", "slots_offset", func(b []byte) { be.PutUint32(b[68:], 0xfffffff0) }},
		{"reserved", "reserved", func(b []byte) { b[100] = 1 }},
		{"reserved tail", "reserved", func(b []byte) { b[3000] = 1 }},
		{"slot state", "keyslot 0 state", func(b []byte) { be.PutUint16(b[slot0:], 2) }},
		{"inactive slot with bytes", "keyslot 1 state", func(b []byte) { b[slot0+SlotSize+100] = 1 }},
		{"slot kdf", "keyslot 0 kdf", func(b []byte) { be.PutUint16(b[slot0+2:], 2) }},
		{"slot salt length", "keyslot 0 salt_len", func(b []byte) { be.PutUint16(b[slot0+16:], 0xffff) }},
		{"slot aead", "keyslot 0 aead", func(b []byte) { be.PutUint16(b[slot0+18:], 9) }},
		{"gcm nonce tail", "keyslot 5 nonce", func(b []byte) { b[slot0+5*SlotSize+56+20] = 1 }},
		{"slot reserved", "keyslot 0 reserved", func(b []byte) { b[slot0+200] = 1 }},
		{"no active slot", "keyslots", func(b []byte) { clear(b[slot0 : slot0+SlotCount*SlotSize]) }},
	} {
		err := corrupt(b, tc.patch)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: got %v, want a FieldError for %q", tc.name, err, tc.field)
		} else if !strings.HasPrefix(err.Error(), "header field "+tc.field+": ") {
			t.Errorf("%s: message %q", tc.name, err)
		}
	}

	if _, err := Decode(b[:100]); !errors.Is(err, ErrSize) {
		t.Errorf("short: %v", err)
	}
	c := bytes.Clone(b)
	c[2000] ^= 1
	if _, err := Decode(c); !errors.Is(err, ErrChecksum) {
		t.Errorf("bit flip: %v", err)
	}
	torn := bytes.Clone(b)
	clear(torn[2048:]) // second half never written
	if _, err := Decode(torn); !errors.Is(err, ErrChecksum) {
		t.Errorf("torn: %v", err)
	}
	if err := corrupt(b, func(b []byte) { b[0] = 'X' }); !errors.Is(err, ErrNoMagic) {
		t.Errorf("magic: %v", err)
	}
	var ve *VersionError
	if err := corrupt(b, func(b []byte) { be.PutUint16(b[8:], 2) }); !errors.As(err, &ve) || ve.Version != 2 {
		t.Errorf("version: %v", err)
	}
}

func fixChecksum(b []byte) {
	sum := sha256.Sum256(b[:checksumOffset])
	copy(b[checksumOffset:], sum[:])
}
