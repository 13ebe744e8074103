package header

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/crypto/argon2"
)

// seedHeaders returns the header blocks of the golden vaults in testvectors/.
func seedHeaders(t testing.TB) [][]byte {
	paths, _ := filepath.Glob(filepath.Join("..", "testvectors", "vaults", "*.cv.gz"))
	var seeds [][]byte
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, Size)
		if _, err := io.ReadFull(zr, b); err != nil {
			t.Fatal(err)
		}
		f.Close()
		seeds = append(seeds, b)
	}
	return seeds
}

func TestSeedsNotEmpty(t *testing.T) {
	seeds := seedHeaders(t)
	if len(seeds) == 0 {
		t.Fatal("no golden vault headers to seed the fuzzer with")
	}
	for _, s := range seeds {
		if _, err := Decode(s); err != nil {
			t.Fatalf("a golden header does not decode: %v", err)
		}
	}
}

// FuzzDecode checks that Decode never panics, and that whatever it accepts
// re-encodes to exactly the same bytes (the encoding is canonical).
func FuzzDecode(f *testing.F) {
	for _, s := range seedHeaders(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= Size && b[len(b)-1]&1 == 0 {
			// Let mutations reach field validation: fix the checksum half the
			// time (on a copy: the fuzzer's input must not be modified).
			b = bytes.Clone(b)
			fixChecksum(b)
		}
		h, err := Decode(b)
		if err != nil {
			if h != nil {
				t.Fatal("header returned with an error")
			}
			return
		}
		if !bytes.Equal(h.Encode(), b[:Size]) {
			t.Fatal("decoded header does not re-encode to the same bytes")
		}
		for _, i := range h.ActiveSlots() {
			dst := make([]byte, MasterKeySize)
			if err := h.Slots[i].Unwrap(dst, make([]byte, 32), h.UUID); err == nil {
				t.Fatal("a fuzzed slot unwrapped with a zero key")
			}
		}
	})
}

// slotSeed is one keyslot of a golden vault with the key that opens it.
type slotSeed struct {
	slot []byte
	kek  []byte
	uuid []byte
}

// keyfileSlot marks, in seedSlots, a slot whose secret needs keyfiles.
const keyfileSlot = "\x00keyfile"

// seedSlots returns every active keyslot of the golden vaults opened by a
// passphrase alone, each with the key-encryption key derived from it
// (testvectors/vaults/vaults.json), so the fuzzer starts from slots that open.
func seedSlots(t testing.TB) []slotSeed {
	b, err := os.ReadFile(filepath.Join("..", "testvectors", "vaults", "vaults.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest []struct {
		File        string              `json:"file"`
		Passphrases map[string]string   `json:"passphrases"`
		Keyfiles    map[string][]string `json:"keyfiles"`
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		t.Fatal(err)
	}
	byFile := map[string]map[string]string{}
	for _, m := range manifest {
		byFile[m.File] = map[string]string{}
		for slot, pass := range m.Passphrases {
			// A slot with keyfiles is not opened by its passphrase alone:
			// its secret is made from both, by rules above this package.
			if len(m.Keyfiles[slot]) > 0 {
				pass = keyfileSlot
			}
			byFile[m.File][slot] = pass
		}
	}
	paths, _ := filepath.Glob(filepath.Join("..", "testvectors", "vaults", "*.cv.gz"))
	var seeds []slotSeed
	for i, raw := range seedHeaders(t) {
		h, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range h.ActiveSlots() {
			pass, ok := byFile[filepath.Base(paths[i])][strconv.Itoa(s)]
			if !ok {
				t.Fatalf("%s: no passphrase for slot %d in vaults.json", paths[i], s)
			}
			if pass == keyfileSlot {
				continue
			}
			sl := &h.Slots[s]
			kek := argon2.IDKey([]byte(pass), sl.Salt[:], sl.Iterations, sl.Memory, uint8(sl.Threads), 32)
			off := SlotsOffset + s*SlotSize
			seeds = append(seeds, slotSeed{slot: raw[off : off+SlotSize], kek: kek, uuid: h.UUID[:]})
		}
	}
	return seeds
}

func TestSlotSeeds(t *testing.T) {
	seeds := seedSlots(t)
	if len(seeds) < 3 {
		t.Fatalf("only %d golden keyslots to seed the fuzzer with", len(seeds))
	}
	for _, s := range seeds {
		var sl Slot
		if err := sl.decode(s.slot); err != nil {
			t.Fatal(err)
		}
		dst := make([]byte, MasterKeySize)
		if err := sl.Unwrap(dst, s.kek, [16]byte(s.uuid)); err != nil {
			t.Fatalf("a golden keyslot does not open with its key: %v", err)
		}
	}
}

// FuzzSlotUnwrap feeds arbitrary keyslot bytes, keys and uuids through the
// keyslot decoder and Unwrap: they never panic, a slot that decodes
// re-encodes to the same bytes, a failed Unwrap leaves the destination zeroed,
// and a slot opens only with the key, uuid and bytes it was made with.
func FuzzSlotUnwrap(f *testing.F) {
	for _, s := range seedSlots(f) {
		f.Add(s.slot, s.kek, s.uuid)
	}
	f.Add(make([]byte, SlotSize), make([]byte, 32), make([]byte, 16))
	f.Fuzz(func(t *testing.T, raw, kek, uuid []byte) {
		if len(raw) < SlotSize {
			raw = append(bytes.Clone(raw), make([]byte, SlotSize-len(raw))...)
		}
		raw = raw[:SlotSize]
		var u [16]byte
		copy(u[:], uuid)
		var s Slot
		if err := s.decode(raw); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("decode error is not a FieldError: %v", err)
			}
			return
		}
		var re [SlotSize]byte
		s.encode(re[:])
		if !bytes.Equal(re[:], raw) {
			t.Fatal("a decoded keyslot does not re-encode to the same bytes")
		}
		if !s.Active {
			return
		}
		dst := make([]byte, MasterKeySize)
		for i := range dst {
			dst[i] = 0xaa
		}
		if err := s.Unwrap(dst, kek, u); err != nil {
			if !bytes.Equal(dst, make([]byte, MasterKeySize)) {
				t.Fatal("a failed unwrap left bytes in the destination")
			}
			return
		}
		// It opened: any change to what the tag covers must make it fail.
		u2 := u
		u2[0] ^= 1
		if s.Unwrap(make([]byte, MasterKeySize), kek, u2) == nil {
			t.Fatal("the keyslot opens under another vault's uuid")
		}
		s2 := s
		s2.Iterations ^= 1
		if s2.Unwrap(make([]byte, MasterKeySize), kek, u) == nil {
			t.Fatal("the keyslot opens with other KDF parameters")
		}
		// Wrapping the key again gives a slot that opens to the same key.
		s3 := s
		if err := s3.Wrap(kek, dst, u); err != nil {
			t.Fatal(err)
		}
		back := make([]byte, MasterKeySize)
		if err := s3.Unwrap(back, kek, u); err != nil || !bytes.Equal(back, dst) {
			t.Fatalf("re-wrapped key does not unwrap to itself: %v", err)
		}
	})
}
