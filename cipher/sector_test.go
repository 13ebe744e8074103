package cipher

import (
	"bytes"
	"crypto/aes"
	stdcipher "crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newSector(t testing.TB, spec Spec, key []byte, sectorSize int) Sector {
	t.Helper()
	s, err := NewSector(spec, key, make([]byte, spec.StateSize()), sectorSize)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustParse(t testing.TB, s string, keySize int) Spec {
	t.Helper()
	spec, err := ParseSpec(s, keySize)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func readJSON(t testing.TB, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testvectors", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

type xtsVector struct {
	Name          string `json:"name"`
	Spec          string `json:"spec"`
	Key           string `json:"key"`
	Sector        uint64 `json:"sector"`
	DataUnitBytes int    `json:"data_unit_bytes"`
	Plaintext     string `json:"plaintext"`
	Ciphertext    string `json:"ciphertext"`
}

// loadXTSVectors returns every XTS vector: the IEEE 1619 XTS-AES-256 ones and
// the Serpent, Twofish and Camellia ones cross-checked with Botan.
func loadXTSVectors(t testing.TB) []xtsVector {
	var ieee, botan []xtsVector
	readJSON(t, "xts/ieee1619-xts-aes-256.json", &ieee)
	readJSON(t, "xts/botan-xts-serpent-twofish-camellia.json", &botan)
	if len(ieee) < 5 || len(botan) < 60 {
		t.Fatalf("%d IEEE and %d Botan XTS vectors loaded", len(ieee), len(botan))
	}
	for i := range ieee {
		ieee[i].Spec = "aes-xts-plain64"
	}
	return append(ieee, botan...)
}

func TestXTSVectors(t *testing.T) {
	for _, v := range loadXTSVectors(t) {
		key, pt, ct := unhex(t, v.Key), unhex(t, v.Plaintext), unhex(t, v.Ciphertext)
		s := newSector(t, mustParse(t, v.Spec, len(key)), key, v.DataUnitBytes)
		got := make([]byte, len(pt))
		s.Encrypt(got, pt, v.Sector)
		if !bytes.Equal(got, ct) {
			t.Errorf("%s (%s): encrypt mismatch", v.Name, s.Implementation())
		}
		s.Decrypt(got, ct, v.Sector)
		if !bytes.Equal(got, pt) {
			t.Errorf("%s (%s): decrypt mismatch", v.Name, s.Implementation())
		}
	}
}

// genericAES is the generic XTS over crypto/aes for a 64-byte key: what
// NewSector never builds (it takes the fast path), for the tests that hold the
// generic mode to the IEEE vectors and to the fast path.
func genericAES(t testing.TB, key []byte, sectorSize int) Sector {
	d, err := aes.NewCipher(key[:32])
	if err != nil {
		t.Fatal(err)
	}
	tw, _ := aes.NewCipher(key[32:])
	return &xtsBlocks{name: "xts(aes)", data: d, tweak: tw, sectorSize: sectorSize}
}

// TestGenericXTSIEEE runs the IEEE 1619 vectors through the generic XTS.
func TestGenericXTSIEEE(t *testing.T) {
	for _, v := range loadIEEE(t) {
		key, pt, ct := unhex(t, v.Key), unhex(t, v.Plaintext), unhex(t, v.Ciphertext)
		s := genericAES(t, key, v.DataUnitBytes)
		got := make([]byte, len(pt))
		s.Encrypt(got, pt, v.Sector)
		if !bytes.Equal(got, ct) {
			t.Errorf("%s: generic encrypt mismatch", v.Name)
		}
		s.Decrypt(got, got, v.Sector)
		if !bytes.Equal(got, pt) {
			t.Errorf("%s: generic decrypt mismatch", v.Name)
		}
	}
}

// checkSameAs compares a and b on one call, in place and out of place, both
// directions.
func checkSameAs(t testing.TB, a, b Sector, data []byte, sector uint64) {
	t.Helper()
	for _, decrypt := range []bool{false, true} {
		fa, fb := a.Encrypt, b.Encrypt
		if decrypt {
			fa, fb = a.Decrypt, b.Decrypt
		}
		want := make([]byte, len(data))
		fb(want, data, sector)
		got := make([]byte, len(data))
		fa(got, data, sector)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s vs %s decrypt=%v len=%d sector=%#x: out of place differs", a.Implementation(), b.Implementation(), decrypt, len(data), sector)
		}
		inPlace := bytes.Clone(data)
		fa(inPlace, inPlace, sector)
		if !bytes.Equal(inPlace, want) {
			t.Fatalf("%s vs %s decrypt=%v len=%d sector=%#x: in place differs", a.Implementation(), b.Implementation(), decrypt, len(data), sector)
		}
	}
}

// TestGenericXTSMatchesFastPath holds the generic XTS over AES to the fast path
// (every implementation this CPU runs), many sectors per call, in place and
// out of place.
func TestGenericXTSMatchesFastPath(t *testing.T) {
	forEachImpl(t, func(t *testing.T, impl string) {
		rng := mrand.New(mrand.NewPCG(3, 4))
		for _, ss := range []int{16, 48, 512, 4096} {
			for _, n := range []int{0, 1, 2, 7, 9, 33} {
				key := randomKey(t)
				data := make([]byte, n*ss)
				rand.Read(data)
				sector := rng.Uint64()
				if rng.IntN(3) == 0 {
					sector = ^uint64(0) - uint64(n)
				}
				checkSameAs(t, genericAES(t, key, ss), newCipher(t, impl, key, ss), data, sector)
			}
		}
	})
}

// TestFastPathSelected checks that aes-xts-plain64 with a 64-byte key is the
// fast path itself, and that the other AES specs are not.
func TestFastPathSelected(t *testing.T) {
	key := randomKey(t)
	s := newSector(t, mustParse(t, "aes-xts-plain64", 64), key, 512)
	if _, ok := s.(*XTS); !ok || s.Implementation() != Implementations()[0] {
		t.Fatalf("aes-xts-plain64 gave %T (%s), want the fast *XTS", s, s.Implementation())
	}
	for _, spec := range []string{"aes-xts-plain", "AES-XTS-PLAIN64"} {
		got := newSector(t, mustParse(t, spec, 64), key, 512)
		if !strings.HasPrefix(got.Implementation(), Implementations()[0]) {
			t.Errorf("%s: implementation %s does not use the fast path", spec, got.Implementation())
		}
	}
	if s := newSector(t, mustParse(t, "aes-xts-plain64", 32), key[:32], 512); s.Implementation() != "xts(aes)" {
		t.Errorf("AES-128-XTS: implementation %s", s.Implementation())
	}
}

// TestAES128XTS checks AES-128-XTS (LUKS's 32-byte xts keys) against
// crypto/aes block by block.
func TestAES128XTS(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	s := newSector(t, mustParse(t, "aes-xts-plain64", 32), key, 64)
	d, _ := aes.NewCipher(key[:16])
	tw, _ := aes.NewCipher(key[16:])
	pt := make([]byte, 128)
	rand.Read(pt)
	got := make([]byte, 128)
	const sector = 0x0102030405060708
	s.Encrypt(got, pt, sector)
	for u := range 2 {
		var tweak [16]byte
		binary.LittleEndian.PutUint64(tweak[:], sector+uint64(u))
		tw.Encrypt(tweak[:], tweak[:])
		for b := range 4 {
			off := 64*u + 16*b
			var x [16]byte
			xorBytes(x[:], pt[off:off+16], tweak[:])
			d.Encrypt(x[:], x[:])
			xorBytes(x[:], x[:], tweak[:])
			if !bytes.Equal(x[:], got[off:off+16]) {
				t.Fatalf("unit %d block %d differs", u, b)
			}
			mulAlpha(&tweak)
		}
	}
}

type veraCryptSelfTest struct {
	PrimaryKeys    string `json:"primary_keys"`
	SecondaryKeys  string `json:"secondary_keys"`
	PlaintextUnit  string `json:"plaintext_unit"`
	PlaintextCRC32 string `json:"plaintext_crc32"`
	Units          int    `json:"units"`
	UnitBytes      int    `json:"unit_bytes"`
	FirstUnit      uint64 `json:"first_unit"`
	Algorithms     []struct {
		Name         string   `json:"name"`
		DataUnitsCRC []string `json:"data_units_crc32"`
		BufferCRC32  string   `json:"buffer_crc32"`
	} `json:"algorithms"`
}

// TestVeraCryptSelfTest replays VeraCrypt's own sector and buffer encryption
// self-test for every algorithm it offers, cascades included: the CRC-32 of
// the ciphertext proves the order of the ciphers and how the key is split
// among them.
func TestVeraCryptSelfTest(t *testing.T) {
	var st veraCryptSelfTest
	readJSON(t, "xts/veracrypt-selftest-crc32.json", &st)
	if len(st.Algorithms) != len(VeraCryptAlgorithms()) {
		t.Fatalf("%d algorithms in the self-test, %d known", len(st.Algorithms), len(VeraCryptAlgorithms()))
	}
	k1, k2 := unhex(t, st.PrimaryKeys), unhex(t, st.SecondaryKeys)
	plain := bytes.Repeat(unhex(t, st.PlaintextUnit), st.Units)
	if got := fmt.Sprintf("%08x", crc32.ChecksumIEEE(plain)); got != st.PlaintextCRC32 {
		t.Fatalf("plaintext CRC-32 %s, want %s", got, st.PlaintextCRC32)
	}
	var ieee14 []byte
	for _, v := range loadIEEE(t) {
		if v.Sector == st.FirstUnit {
			ieee14 = unhex(t, v.Ciphertext)
		}
	}
	for _, a := range st.Algorithms {
		spec, err := VeraCryptSpec(a.Name)
		if err != nil {
			t.Fatal(err)
		}
		n := len(spec.Ciphers)
		key := append(bytes.Clone(k1[:32*n]), k2[:32*n]...)
		s := newSector(t, spec, key, st.UnitBytes)
		buf := make([]byte, len(plain))
		for c, want := range a.DataUnitsCRC {
			first := st.FirstUnit - uint64(c)
			s.Encrypt(buf, plain, first)
			if got := fmt.Sprintf("%08x", crc32.ChecksumIEEE(buf)); got != want {
				t.Errorf("%s (%s) case %d: CRC-32 %s, want %s", a.Name, s.Implementation(), c, got, want)
			}
			if a.Name == "AES" && !bytes.Equal(buf[c*st.UnitBytes:(c+1)*st.UnitBytes], ieee14) {
				t.Errorf("AES case %d: the moving unit differs from IEEE 1619 vector 14", c)
			}
			s.Decrypt(buf, buf, first)
			if !bytes.Equal(buf, plain) {
				t.Errorf("%s case %d: decryption does not restore the plaintext", a.Name, c)
			}
		}
		s.Encrypt(buf, plain, 0)
		if got := fmt.Sprintf("%08x", crc32.ChecksumIEEE(buf)); got != a.BufferCRC32 {
			t.Errorf("%s: buffer CRC-32 %s, want %s", a.Name, got, a.BufferCRC32)
		}
	}
}

// TestCBCESSIV checks aes-cbc-essiv:sha256 and the plain IVs against CBC from
// crypto/cipher with dm-crypt's IVs computed here.
func TestCBCESSIV(t *testing.T) {
	for _, c := range []struct {
		spec    string
		keySize int
	}{{"aes-cbc-essiv:sha256", 32}, {"aes-cbc-essiv:sha256", 16}, {"aes-cbc-plain64", 32}, {"aes-cbc-plain", 24},
		{"serpent-cbc-essiv:sha256", 32}, {"twofish-cbc-plain64", 16}, {"camellia-cbc-essiv:sha256", 32}, {"kuznyechik-cbc-plain64", 32}} {
		t.Run(c.spec+fmt.Sprint(c.keySize), func(t *testing.T) {
			spec := mustParse(t, c.spec, c.keySize)
			key := make([]byte, c.keySize)
			rand.Read(key)
			s := newSector(t, spec, key, 512)
			block := refBlock(t, spec.Ciphers[0], key)
			const sectors = 3
			pt := make([]byte, sectors*512)
			rand.Read(pt)
			for _, first := range []uint64{0, 0xfffffffe, 1 << 40} {
				got := make([]byte, len(pt))
				s.Encrypt(got, pt, first)
				for i := range sectors {
					var iv [16]byte
					n := first + uint64(i)
					if spec.IV == "plain" {
						n = uint64(uint32(n))
					}
					binary.LittleEndian.PutUint64(iv[:], n)
					if spec.IV == "essiv:sha256" {
						salt := sha256.Sum256(key)
						refBlock(t, spec.Ciphers[0], salt[:]).Encrypt(iv[:], iv[:])
					}
					want := make([]byte, 512)
					stdcipher.NewCBCEncrypter(block, iv[:]).CryptBlocks(want, pt[i*512:(i+1)*512])
					if !bytes.Equal(got[i*512:(i+1)*512], want) {
						t.Fatalf("sector %#x differs from CBC with dm-crypt's IV", n)
					}
				}
				back := bytes.Clone(got)
				s.Decrypt(back, back, first)
				if !bytes.Equal(back, pt) {
					t.Fatal("in-place decryption does not restore the plaintext")
				}
			}
		})
	}
}

// refBlock returns a crypto/cipher.Block for the named cipher, built by the
// registry (crypto/aes, x/crypto/twofish or the sub-packages).
func refBlock(t testing.TB, name string, key []byte) stdcipher.Block {
	d, _ := lookupBlock(name)
	b, err := d.new(key, make([]byte, d.stateSize))
	if err != nil {
		t.Fatal(err)
	}
	return b.(stdcipher.Block)
}

// TestPlainIVWraps checks that "plain" uses the low 32 bits of the sector
// number, splitting a request across 2^32, and equals "plain64" below it.
func TestPlainIVWraps(t *testing.T) {
	for _, c := range []string{"aes", "serpent"} {
		key := make([]byte, 64)
		rand.Read(key)
		plain := newSector(t, mustParse(t, c+"-xts-plain", 64), key, 512)
		plain64 := newSector(t, mustParse(t, c+"-xts-plain64", 64), key, 512)
		data := make([]byte, 4*512)
		rand.Read(data)
		checkSameAs(t, plain, plain64, data, 1000)
		got := make([]byte, len(data))
		plain.Encrypt(got, data, 1<<32-2) // sectors 2^32-2, 2^32-1, 2^32, 2^32+1
		want := make([]byte, len(data))
		plain64.Encrypt(want[:1024], data[:1024], 1<<32-2)
		plain64.Encrypt(want[1024:], data[1024:], 0)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s-xts-plain across 2^32 differs from plain64 wrapped to 0", c)
		}
	}
}

// TestCascadeIsLayers checks that a cascade is its ciphers' XTS one after the
// other, keys split as VeraCrypt does.
func TestCascadeIsLayers(t *testing.T) {
	spec, err := VeraCryptSpec("aes-twofish-serpent")
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.String(); got != "serpent-twofish-aes-xts-plain64" || spec.KeySize != 192 {
		t.Fatalf("AES-Twofish-Serpent is %s with %d bytes", got, spec.KeySize)
	}
	key := make([]byte, 192)
	rand.Read(key)
	s := newSector(t, spec, key, 512)
	data := make([]byte, 3*512)
	rand.Read(data)
	want := bytes.Clone(data)
	for i, c := range spec.Ciphers {
		k := append(bytes.Clone(key[32*i:32*i+32]), key[96+32*i:96+32*i+32]...)
		newSector(t, mustParse(t, c+"-xts-plain64", 64), k, 512).Encrypt(want, want, 77)
	}
	got := make([]byte, len(data))
	s.Encrypt(got, data, 77)
	if !bytes.Equal(got, want) {
		t.Fatal("the cascade differs from its layers applied in order")
	}
	s.Decrypt(got, got, 77)
	if !bytes.Equal(got, data) {
		t.Fatal("the cascade does not decrypt what it encrypts")
	}
}

func TestParseSpec(t *testing.T) {
	good := []struct {
		s       string
		keySize int
		want    string
	}{
		{"aes-xts-plain64", 64, "aes-xts-plain64"},
		{"aes-xts-plain64", 32, "aes-xts-plain64"},
		{"aes-xts-plain64", 48, "aes-xts-plain64"},
		{"aes-xts-plain", 64, "aes-xts-plain"},
		{"aes-cbc-essiv:sha256", 32, "aes-cbc-essiv:sha256"},
		{"aes-cbc-essiv:sha256", 16, "aes-cbc-essiv:sha256"},
		{"serpent-xts-plain64", 64, "serpent-xts-plain64"},
		{"serpent-xts-plain64", 32, "serpent-xts-plain64"},
		{"twofish-xts-plain64", 64, "twofish-xts-plain64"},
		{"camellia-xts-plain64", 32, "camellia-xts-plain64"},
		{"kuznyechik-xts-plain64", 64, "kuznyechik-xts-plain64"},
		{"Serpent-Twofish-AES-XTS-plain64", 192, "serpent-twofish-aes-xts-plain64"},
	}
	for _, g := range good {
		spec, err := ParseSpec(g.s, g.keySize)
		if err != nil {
			t.Errorf("%s/%d: %v", g.s, g.keySize, err)
			continue
		}
		if spec.String() != g.want || spec.KeySize != g.keySize {
			t.Errorf("%s: parsed as %s/%d", g.s, spec, spec.KeySize)
		}
	}
	bad := []struct {
		s       string
		keySize int
	}{
		{"", 64}, {"aes", 64}, {"aes-xts", 64}, {"xts-plain64", 64},
		{"aes-xts-plain64", 0}, {"aes-xts-plain64", -64}, {"aes-xts-plain64", 63}, {"aes-xts-plain64", 128},
		{"aes-xts-essiv:sha256", 64}, {"aes-xts-benbi", 64}, {"aes-lrw-benbi", 48}, {"aes-ecb-null", 32},
		{"aes-cbc-essiv:sha1", 32}, {"aes-cbc-essiv:sha256", 64}, {"aes-cbc-lmk", 32}, {"aes-cbc-tcw", 32},
		{"blowfish-cbc-plain", 16}, {"cast5-cbc-plain", 16}, {"capi:xts(aes)-plain64", 64},
		{"aes:64-cbc-lmk", 32}, {"kuznyechik-xts-plain64", 32}, {"twofish-aes-cbc-plain64", 64},
		{"aes-aes-aes-aes-xts-plain64", 256}, {"aes-twofish-xts-plain64", 100}, {"aes-kuznyechik-xts-plain64", 64},
		{strings.Repeat("aes-", 100) + "xts-plain64", 64},
	}
	for _, b := range bad {
		_, err := ParseSpec(b.s, b.keySize)
		var se *SpecError
		if !errors.As(err, &se) || !errors.Is(err, ErrUnsupported) {
			t.Errorf("%q/%d: error %v, want a *SpecError", b.s, b.keySize, err)
		}
	}
	if _, err := VeraCryptSpec("AES-Blowfish"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("VeraCryptSpec(AES-Blowfish): %v", err)
	}
}

func TestNewSectorRefuses(t *testing.T) {
	spec := mustParse(t, "serpent-xts-plain64", 64)
	key := make([]byte, 64)
	rand.Read(key)
	state := make([]byte, spec.StateSize())
	if _, err := NewSector(spec, key[:63], state, 512); err == nil {
		t.Error("a short key was accepted")
	}
	if _, err := NewSector(spec, key, state[:len(state)-1], 512); err == nil {
		t.Error("a short state was accepted")
	}
	for _, ss := range []int{0, -512, 8, 513} {
		if _, err := NewSector(spec, key, state, ss); err == nil {
			t.Errorf("sector size %d was accepted", ss)
		}
	}
	weak := append(bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{7}, 32)...)
	if _, err := NewSector(spec, weak, state, 512); !errors.Is(err, ErrWeakKey) {
		t.Errorf("equal XTS halves: %v", err)
	}
	if _, err := NewSector(Spec{Ciphers: []string{"rot13"}, Mode: "xts", IV: "plain64", KeySize: 64}, key, state, 512); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown cipher: %v", err)
	}
}

// TestStateAlignment runs every spec with its state starting at every offset
// of a cache line, so no layout depends on the caller's alignment.
func TestStateAlignment(t *testing.T) {
	for _, spec := range append(BenchmarkSpecs(), mustParse(t, "aes-cbc-essiv:sha256", 32), mustParse(t, "camellia-xts-plain64", 32)) {
		key := make([]byte, spec.KeySize)
		rand.Read(key)
		data := make([]byte, 1024)
		rand.Read(data)
		ref := newSector(t, spec, key, 512)
		want := make([]byte, len(data))
		ref.Encrypt(want, data, 9)
		mem := make([]byte, spec.StateSize()+64)
		for off := range 64 {
			s, err := NewSector(spec, key, mem[off:off+spec.StateSize()], 512)
			if err != nil {
				t.Fatalf("%s at offset %d: %v", spec, off, err)
			}
			got := make([]byte, len(data))
			s.Encrypt(got, data, 9)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s at offset %d differs", spec, off)
			}
		}
	}
}

// TestSectorsMultiEqualsSingle checks one call over many sectors against one
// call per sector for every spec the benchmark lists and a CBC one.
func TestSectorsMultiEqualsSingle(t *testing.T) {
	for _, spec := range append(BenchmarkSpecs(), mustParse(t, "aes-cbc-essiv:sha256", 32)) {
		key := make([]byte, spec.KeySize)
		rand.Read(key)
		s := newSector(t, spec, key, 512)
		data := make([]byte, 9*512)
		rand.Read(data)
		whole := make([]byte, len(data))
		s.Encrypt(whole, data, 1<<33)
		for i := range 9 {
			one := make([]byte, 512)
			s.Encrypt(one, data[i*512:(i+1)*512], 1<<33+uint64(i))
			if !bytes.Equal(one, whole[i*512:(i+1)*512]) {
				t.Fatalf("%s: sector %d of a multi-sector call differs", spec, i)
			}
		}
	}
}

// TestSectorMisusePanics checks the caller-bug panics of every Sector kind.
func TestSectorMisusePanics(t *testing.T) {
	for _, spec := range []Spec{mustParse(t, "serpent-xts-plain", 64), mustParse(t, "aes-cbc-essiv:sha256", 32), mustParse(t, "aes-twofish-xts-plain64", 128)} {
		key := make([]byte, spec.KeySize)
		rand.Read(key)
		s := newSector(t, spec, key, 512)
		buf := make([]byte, 2048)
		for name, f := range map[string]func(){
			"partial sector": func() { s.Encrypt(buf, buf[:100], 0) },
			"short output":   func() { s.Decrypt(buf[:512], buf[:1024], 0) },
			"overlap":        func() { s.Encrypt(buf[16:1040], buf[:1024], 0) },
			"overflow":       func() { s.Encrypt(buf[:1024], buf[1024:], ^uint64(0)) },
		} {
			func() {
				defer func() {
					if r := recover(); r == nil || !strings.HasPrefix(fmt.Sprint(r), "cryptvol/cipher:") {
						t.Errorf("%s %s: recovered %v", spec, name, r)
					}
				}()
				f()
			}()
		}
	}
}
