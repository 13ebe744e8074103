package cipher

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

type xtsSeed struct {
	which  uint8
	key    []byte
	sector uint64
	unit   uint16
	data   []byte
}

// xtsSeeds are FuzzGenericXTS's seeds: every XTS vector, as (spec index, key,
// sector, data unit size, plaintext).
func xtsSeeds(t testing.TB) []xtsSeed {
	specs := BenchmarkSpecs()
	var seeds []xtsSeed
	for _, v := range loadXTSVectors(t) {
		key, err1 := hex.DecodeString(v.Key)
		pt, err2 := hex.DecodeString(v.Plaintext)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: bad hex", v.Name)
		}
		for i, s := range specs {
			if s.String() == v.Spec {
				seeds = append(seeds, xtsSeed{uint8(i), key, v.Sector, uint16(v.DataUnitBytes), pt})
			}
		}
	}
	return seeds
}

func TestFuzzSeedsNotEmpty(t *testing.T) {
	seeds := xtsSeeds(t)
	if len(seeds) < 60 {
		t.Fatalf("only %d seeds for FuzzGenericXTS", len(seeds))
	}
	covered := map[uint8]bool{}
	for _, s := range seeds {
		covered[s.which] = true
	}
	if len(covered) < 4 {
		t.Fatalf("the seeds cover %d block ciphers, want aes, serpent, twofish and camellia", len(covered))
	}
}

// FuzzGenericXTS runs the generic XTS of every block cipher on fuzzed keys,
// sector numbers, sector sizes and data: decryption restores the plaintext,
// in place equals out of place, one call over n sectors equals n calls, and
// with AES the generic mode equals the fast path.
func FuzzGenericXTS(f *testing.F) {
	for _, s := range xtsSeeds(f) {
		f.Add(s.which, s.key, s.sector, s.unit, s.data)
	}
	specs := BenchmarkSpecs()
	f.Fuzz(func(t *testing.T, which uint8, keySeed []byte, sector uint64, unit uint16, data []byte) {
		spec := specs[int(which)%len(specs)]
		key := make([]byte, spec.KeySize)
		copy(key, keySeed)
		key[0] ^= 1 // keep the halves apart even for an all-zero seed
		sectorSize := max(BlockSize, int(unit)/BlockSize*BlockSize%4096)
		data = data[:len(data)/sectorSize*sectorSize]
		if sector+uint64(len(data)/sectorSize) < sector {
			sector = 0
		}
		s, err := NewSector(spec, key, make([]byte, spec.StateSize()), sectorSize)
		if errors.Is(err, ErrWeakKey) {
			return // key[0]^1 cannot keep every seed's halves apart; refused, as XTS requires
		}
		if err != nil {
			t.Fatal(err)
		}
		if spec.fastPath() {
			g := genericAES(t, key, sectorSize)
			checkSameAs(t, g, s, data, sector)
			s = g
		}
		ct := make([]byte, len(data))
		s.Encrypt(ct, data, sector)
		inPlace := bytes.Clone(data)
		s.Encrypt(inPlace, inPlace, sector)
		if !bytes.Equal(ct, inPlace) {
			t.Fatalf("%s: in place differs from out of place", s.Implementation())
		}
		for i := 0; i < len(data); i += sectorSize {
			one := make([]byte, sectorSize)
			s.Encrypt(one, data[i:i+sectorSize], sector+uint64(i/sectorSize))
			if !bytes.Equal(one, ct[i:i+sectorSize]) {
				t.Fatalf("%s: sector %d alone differs from the multi-sector call", s.Implementation(), i/sectorSize)
			}
		}
		s.Decrypt(inPlace, inPlace, sector)
		if !bytes.Equal(inPlace, data) {
			t.Fatalf("%s: decryption does not restore the plaintext", s.Implementation())
		}
	})
}

// FuzzParseSpec feeds cipher strings and key sizes, the two values a LUKS
// header gives the cipher layer, to ParseSpec: whatever they are, it returns a
// *SpecError or a spec NewSector runs, never a panic.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"aes-xts-plain64", "aes-cbc-essiv:sha256", "serpent-twofish-aes-xts-plain64",
		"twofish-xts-plain", "capi:xts(aes)-plain64", "aes-xts-plain64-", "--", "aes-cbc-essiv:", "cipher_null-ecb"} {
		for _, n := range []int{0, 16, 32, 48, 64, 96, 192, -1, 1 << 30} {
			f.Add(s, n)
		}
	}
	f.Fuzz(func(t *testing.T, s string, keySize int) {
		spec, err := ParseSpec(s, keySize)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("%q/%d: error %v is not ErrUnsupported", s, keySize, err)
			}
			return
		}
		key := make([]byte, spec.KeySize)
		for i := range key {
			key[i] = byte(i)
		}
		sec, err := NewSector(spec, key, make([]byte, spec.StateSize()), 512)
		if err != nil {
			t.Fatalf("%q/%d parsed, but NewSector refused it: %v", s, keySize, err)
		}
		buf := make([]byte, 1024)
		sec.Encrypt(buf, buf, 1)
		sec.Decrypt(buf, buf, 1)
		if !bytes.Equal(buf, make([]byte, 1024)) {
			t.Fatalf("%s: round trip failed", spec)
		}
	})
}
