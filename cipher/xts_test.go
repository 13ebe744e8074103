package cipher

import (
	"bytes"
	"crypto/aes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/xts"
)

func newCipher(t testing.TB, impl string, key []byte, sectorSize int) *XTS {
	t.Helper()
	x, err := NewWith(impl, key, make([]byte, StateSize), sectorSize)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func randomKey(t testing.TB) []byte {
	key := make([]byte, KeySize)
	rand.Read(key)
	return key
}

// forEachImpl runs f for every implementation compiled in, as a subtest named
// after it, so every path this CPU can run is exercised; the others are skipped
// with what they need. A missing CPU feature is a property of the machine, not
// a failure, so it skips even under CRYPTVOL_E2E=require (CI runs on Intel and
// AMD machines with and without AVX-512).
func forEachImpl(t *testing.T, f func(t *testing.T, impl string)) {
	impls := Implementations()
	if len(impls) == 0 || impls[len(impls)-1] != "generic" {
		t.Fatalf("implementations %v: the generic one must always be available and last", impls)
	}
	for _, im := range implementations {
		t.Run(im.name, func(t *testing.T) {
			if !im.available() {
				t.Skipf("%s: this CPU lacks %s", im.name, im.needs)
			}
			f(t, im.name)
		})
	}
}

type ieeeVector struct {
	Name          string `json:"name"`
	Key           string `json:"key"`
	Sector        uint64 `json:"sector"`
	DataUnitBytes int    `json:"data_unit_bytes"`
	Plaintext     string `json:"plaintext"`
	Ciphertext    string `json:"ciphertext"`
}

func loadIEEE(t *testing.T) []ieeeVector {
	data, err := os.ReadFile(filepath.Join("..", "testvectors", "xts", "ieee1619-xts-aes-256.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []ieeeVector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 5 {
		t.Fatalf("only %d IEEE 1619 vectors loaded", len(vs))
	}
	return vs
}

func unhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIEEE1619Vectors(t *testing.T) {
	vs := loadIEEE(t)
	forEachImpl(t, func(t *testing.T, impl string) {
		for _, v := range vs {
			key, pt, ct := unhex(t, v.Key), unhex(t, v.Plaintext), unhex(t, v.Ciphertext)
			x := newCipher(t, impl, key, v.DataUnitBytes)
			got := make([]byte, len(pt))
			x.Encrypt(got, pt, v.Sector)
			if !bytes.Equal(got, ct) {
				t.Errorf("%s: encrypt mismatch", v.Name)
			}
			x.Decrypt(got, ct, v.Sector)
			if !bytes.Equal(got, pt) {
				t.Errorf("%s: decrypt mismatch", v.Name)
			}
		}
	})
}

// reference encrypts or decrypts sector by sector with golang.org/x/crypto/xts.
func reference(t testing.TB, key, src []byte, sectorSize int, sector uint64, decrypt bool) []byte {
	c, err := xts.NewCipher(aes.NewCipher, key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(src))
	for off := 0; off < len(src); off += sectorSize {
		if decrypt {
			c.Decrypt(out[off:off+sectorSize], src[off:off+sectorSize], sector)
		} else {
			c.Encrypt(out[off:off+sectorSize], src[off:off+sectorSize], sector)
		}
		sector++
	}
	return out
}

// checkAgainstReference compares one call of impl, in place and out of place,
// with x/crypto/xts.
func checkAgainstReference(t testing.TB, impl string, key, data []byte, sectorSize int, sector uint64) {
	x := newCipher(t, impl, key, sectorSize)
	for _, decrypt := range []bool{false, true} {
		want := reference(t, key, data, sectorSize, sector, decrypt)
		op := x.Encrypt
		if decrypt {
			op = x.Decrypt
		}
		out := make([]byte, len(data))
		op(out, data, sector)
		if !bytes.Equal(out, want) {
			t.Fatalf("%s decrypt=%v sectorSize=%d sector=%d len=%d: out of place differs from x/crypto/xts", impl, decrypt, sectorSize, sector, len(data))
		}
		inPlace := bytes.Clone(data)
		op(inPlace, inPlace, sector)
		if !bytes.Equal(inPlace, want) {
			t.Fatalf("%s decrypt=%v sectorSize=%d sector=%d len=%d: in place differs from x/crypto/xts", impl, decrypt, sectorSize, sector, len(data))
		}
	}
}

func TestDifferential(t *testing.T) {
	forEachImpl(t, func(t *testing.T, impl string) {
		rng := mrand.New(mrand.NewPCG(1, 2))
		// 16…144 and 240 leave every remainder of 0…7 blocks after the
		// eight-block loops of the assembly paths.
		for _, sectorSize := range []int{16, 32, 48, 64, 80, 96, 112, 128, 144, 240, 512, 4096} {
			for _, sectors := range []int{0, 1, 2, 3, 7, 8, 9, 16, 33} {
				for range 4 {
					key := randomKey(t)
					data := make([]byte, sectors*sectorSize)
					rand.Read(data)
					sector := rng.Uint64()
					switch rng.IntN(4) {
					case 0:
						sector = 0
					case 1:
						sector = ^uint64(0) - uint64(sectors) // ends at the last sector
					}
					checkAgainstReference(t, impl, key, data, sectorSize, sector)
				}
			}
		}
	})
}

// TestEveryBlockCount runs sectors of every size from 1 to 66 blocks, so that
// each remainder after the vector loops (8 blocks for vaes-avx2, 16 and whole
// or masked 4-block vectors for vaes-avx512) runs after zero, one and more
// full iterations, and calls of 1, 2, 16, 17 and 35 sectors, so that a tweak
// computed alone, a batch of them, and batches followed by more all run;
// against x/crypto/xts, in place and out of place, with sector numbers that
// end at 2^64-1, start at 0, or are random.
func TestEveryBlockCount(t *testing.T) {
	forEachImpl(t, func(t *testing.T, impl string) {
		rng := mrand.New(mrand.NewPCG(3, 4))
		for blocks := 1; blocks <= 66; blocks++ {
			sectorSize := blocks * BlockSize
			for _, sectors := range []int{1, 2, 16, 17, 35} {
				data := make([]byte, sectors*sectorSize)
				rand.Read(data)
				for _, sector := range []uint64{^uint64(0) - uint64(sectors-1), 0, rng.Uint64() >> 1} {
					checkAgainstReference(t, impl, randomKey(t), data, sectorSize, sector)
				}
			}
		}
	})
}

// TestMultiSectorEqualsSingle checks that one call over n sectors equals n calls.
func TestMultiSectorEqualsSingle(t *testing.T) {
	forEachImpl(t, func(t *testing.T, impl string) {
		key := randomKey(t)
		for _, ss := range []int{512, 4096} {
			x := newCipher(t, impl, key, ss)
			data := make([]byte, 37*ss)
			rand.Read(data)
			whole := make([]byte, len(data))
			x.Encrypt(whole, data, 1000)
			for i := 0; i < 37; i++ {
				one := make([]byte, ss)
				x.Encrypt(one, data[i*ss:(i+1)*ss], 1000+uint64(i))
				if !bytes.Equal(one, whole[i*ss:(i+1)*ss]) {
					t.Fatalf("sector %d of a multi-sector call differs from a single-sector call", i)
				}
			}
		}
	})
}

// TestBlockCipherMatchesCryptoAES checks each implementation's AES-256 (its key
// expansion and its encryption and decryption round keys) against crypto/aes one
// block at a time. With 16-byte sectors XTS is C = E1(P ^ T) ^ T with T the
// encrypted sector number, so feeding P = X ^ T exposes E1(X), and likewise D1(X).
// The first key is the AES-256 example of FIPS-197 Appendix C.3.
func TestBlockCipherMatchesCryptoAES(t *testing.T) {
	fipsKey := unhex(t, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"+
		"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f")
	fipsPlain := unhex(t, "00112233445566778899aabbccddeeff")
	fipsCipher := unhex(t, "8ea2b7ca516745bfeafc49904b496089")
	forEachImpl(t, func(t *testing.T, impl string) {
		keys := [][]byte{fipsKey}
		for range 16 {
			keys = append(keys, randomKey(t))
		}
		const n = 19 // sectors per call: a batch of eight tweaks and single ones
		for i, key := range keys {
			x := newCipher(t, impl, key, BlockSize)
			data, _ := aes.NewCipher(key[:32])
			tweak, _ := aes.NewCipher(key[32:])
			first := mrand.Uint64()
			if i == 0 {
				first = ^uint64(0) - n + 1 // also: the last sector numbers
			}
			tweaks := make([]byte, n*BlockSize)
			for j := range n {
				binary.LittleEndian.PutUint64(tweaks[j*BlockSize:], first+uint64(j))
				tweak.Encrypt(tweaks[j*BlockSize:], tweaks[j*BlockSize:])
			}
			blocks := make([]byte, n*BlockSize)
			rand.Read(blocks)
			if i == 0 {
				copy(blocks, fipsPlain)
			}
			for _, decrypt := range []bool{false, true} {
				in := make([]byte, len(blocks))
				xorBytes(in, blocks, tweaks)
				got := make([]byte, len(blocks))
				if decrypt {
					x.Decrypt(got, in, first)
				} else {
					x.Encrypt(got, in, first)
				}
				xorBytes(got, got, tweaks)
				for j := 0; j < len(blocks); j += BlockSize {
					want := make([]byte, BlockSize)
					if decrypt {
						data.Decrypt(want, blocks[j:])
					} else {
						data.Encrypt(want, blocks[j:])
					}
					if !bytes.Equal(got[j:j+BlockSize], want) {
						t.Fatalf("key %d block %d decrypt=%v: %x, crypto/aes gives %x", i, j/BlockSize, decrypt, got[j:j+BlockSize], want)
					}
				}
				if i == 0 && !decrypt && !bytes.Equal(got[:BlockSize], fipsCipher) {
					t.Fatalf("FIPS-197 C.3: got %x, want %x", got[:BlockSize], fipsCipher)
				}
			}
		}
	})
}

func xorBytes(dst, a, b []byte) {
	for i := range dst {
		dst[i] = a[i] ^ b[i]
	}
}

// TestOddAlignment runs every implementation with its state, source and
// destination at offsets that are not multiples of 16 (the state comes from the
// caller's locked memory, buffers from wherever a request lands), and checks that
// New writes nothing outside state.
func TestOddAlignment(t *testing.T) {
	const guard = 0xa5
	forEachImpl(t, func(t *testing.T, impl string) {
		key := randomKey(t)
		for _, off := range []int{0, 1, 3, 8, 15, 33} {
			for _, ss := range []int{16, 48, 512, 4096} {
				mem := bytes.Repeat([]byte{guard}, StateSize+128)
				x, err := NewWith(impl, key, mem[off:off+StateSize], ss)
				if err != nil {
					t.Fatal(err)
				}
				for i, b := range mem {
					if b != guard && (i < off || i >= off+StateSize) {
						t.Fatalf("state offset %d: byte %d outside state was written", off, i-off)
					}
				}
				n := 11 * ss
				src := make([]byte, n+64)[off : off+n]
				rand.Read(src)
				sector := mrand.Uint64() >> 1
				for _, decrypt := range []bool{false, true} {
					want := reference(t, key, src, ss, sector, decrypt)
					op := x.Encrypt
					if decrypt {
						op = x.Decrypt
					}
					dst := make([]byte, n+64)[(off*5+1)%64:][:n]
					op(dst, src, sector)
					if !bytes.Equal(dst, want) {
						t.Fatalf("offset %d sector size %d decrypt=%v: out of place differs from x/crypto/xts", off, ss, decrypt)
					}
					inPlace := make([]byte, n+64)[off : off+n]
					copy(inPlace, src)
					op(inPlace, inPlace, sector)
					if !bytes.Equal(inPlace, want) {
						t.Fatalf("offset %d sector size %d decrypt=%v: in place differs from x/crypto/xts", off, ss, decrypt)
					}
				}
			}
		}
	})
}

// TestLargeBuffer checks 1 MiB requests, which the assembly paths split into
// several calls, against x/crypto/xts.
func TestLargeBuffer(t *testing.T) {
	forEachImpl(t, func(t *testing.T, impl string) {
		data := make([]byte, 1<<20)
		rand.Read(data)
		for _, ss := range []int{512, 4096} {
			checkAgainstReference(t, impl, randomKey(t), data, ss, mrand.Uint64()>>1)
		}
	})
}

// TestKeysLiveInState checks that the assembly paths read their round keys from
// the caller's state on every call, rather than from a copy elsewhere: wiping state
// after New must change the output, and restoring it must restore the output.
func TestKeysLiveInState(t *testing.T) {
	forEachImpl(t, func(t *testing.T, impl string) {
		if impl == "generic" {
			t.Skip("generic keeps its round keys in crypto/aes (see generic.go)")
		}
		state := make([]byte, StateSize)
		x, err := NewWith(impl, randomKey(t), state, 512)
		if err != nil {
			t.Fatal(err)
		}
		// 45 round keys of 16 bytes; about 1 byte in 256 of them is zero.
		if nonzero := StateSize - bytes.Count(state, []byte{0}); nonzero < 45*16*9/10 {
			t.Fatalf("New wrote only %d nonzero state bytes", nonzero)
		}
		src := make([]byte, 8*512)
		rand.Read(src)
		before := make([]byte, len(src))
		x.Encrypt(before, src, 7)
		saved := bytes.Clone(state)
		clear(state)
		for _, op := range []func(dst, src []byte, sector uint64){x.Encrypt, x.Decrypt} {
			after := make([]byte, len(src))
			op(after, src, 7)
			for i := 0; i < len(src); i += 512 {
				if bytes.Equal(after[i:i+512], before[i:i+512]) {
					t.Fatalf("sector %d unchanged after wiping state", i/512)
				}
			}
		}
		copy(state, saved)
		again := make([]byte, len(src))
		x.Encrypt(again, src, 7)
		if !bytes.Equal(again, before) {
			t.Fatal("restoring state did not restore the output")
		}
	})
}

func TestNewRejects(t *testing.T) {
	state := make([]byte, StateSize)
	key := bytes.Repeat([]byte{7}, KeySize)
	if _, err := New(key, state, 4096); err != ErrWeakKey {
		t.Errorf("equal halves: got %v, want ErrWeakKey", err)
	}
	key = randomKey(t)
	for _, tc := range []struct {
		key, state []byte
		ss         int
	}{
		{key[:32], state, 4096},
		{key, state[:10], 4096},
		{key, state, 0},
		{key, state, 100},
		{key, state, -16},
	} {
		if _, err := New(tc.key, tc.state, tc.ss); err == nil {
			t.Errorf("New(len(key)=%d, len(state)=%d, %d) succeeded", len(tc.key), len(tc.state), tc.ss)
		}
	}
	if _, err := NewWith("no-such-impl", key, state, 512); err == nil {
		t.Error("unknown implementation accepted")
	}
}

func TestMisusePanics(t *testing.T) {
	x := newCipher(t, "generic", randomKey(t), 512)
	buf := make([]byte, 2048)
	for name, f := range map[string]func(){
		"partial sector": func() { x.Encrypt(buf[:100], buf[:100], 0) },
		"short dst":      func() { x.Encrypt(buf[:512], buf[:1024], 0) },
		"overlap":        func() { x.Decrypt(buf[16:1040], buf[:1024], 0) },
		"sector wraps":   func() { x.Encrypt(buf[:1024], buf[1024:], ^uint64(0)) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, ok := r.(string); !ok || !bytes.HasPrefix([]byte(s), []byte("cryptvol/cipher: ")) {
					t.Fatalf("recovered %v, want a cryptvol/cipher panic", r)
				}
			}()
			f()
		})
	}
}

func FuzzDifferential(f *testing.F) {
	f.Add(make([]byte, KeySize), uint64(0), uint8(0), uint8(1), []byte("seed"))
	f.Add(bytes.Repeat([]byte{1, 2}, KeySize/2), ^uint64(0)-3, uint8(3), uint8(3), []byte{})
	f.Fuzz(func(t *testing.T, key []byte, sector uint64, sizeSel, count uint8, seed []byte) {
		if len(key) < KeySize || equalHalves(key[:KeySize]) {
			return
		}
		key = key[:KeySize]
		// The first twelve cover the remainders of vaes-avx2's 8-block loop;
		// the rest vaes-avx512's 16-block loop followed by 1-3 whole vectors
		// and a masked one.
		sizes := []int{16, 512, 4096, 32, 48, 64, 80, 96, 112, 128, 144, 240, 256, 272, 304, 336, 400, 496, 1008}
		sectorSize := sizes[int(sizeSel)%len(sizes)]
		n := int(count % 20)
		if sector+uint64(n) < sector {
			return
		}
		data := make([]byte, n*sectorSize)
		for i := range data {
			if len(seed) > 0 {
				data[i] = seed[i%len(seed)] ^ byte(i*31)
			}
		}
		for _, impl := range Implementations() {
			checkAgainstReference(t, impl, key, data, sectorSize, sector)
		}
	})
}

func BenchmarkXTS(b *testing.B) {
	for _, impl := range Implementations() {
		for _, size := range []int{512, 4096, 128 << 10} {
			for _, op := range []string{"encrypt", "decrypt"} {
				sectorSize := min(size, 4096)
				b.Run(fmt.Sprintf("%s/%s/%d", impl, op, size), func(b *testing.B) {
					x := newCipher(b, impl, randomKey(b), sectorSize)
					buf := make([]byte, size)
					f := x.Encrypt
					if op == "decrypt" {
						f = x.Decrypt
					}
					b.SetBytes(int64(size))
					for i := 0; b.Loop(); i++ {
						f(buf, buf, uint64(i))
					}
				})
			}
		}
	}
	// The baseline cryptvol replaced, one sector per call as its API takes them.
	for _, size := range []int{512, 4096} {
		for _, op := range []string{"encrypt", "decrypt"} {
			b.Run(fmt.Sprintf("x-crypto-xts/%s/%d", op, size), func(b *testing.B) {
				c, _ := xts.NewCipher(aes.NewCipher, randomKey(b))
				buf := make([]byte, size)
				f := c.Encrypt
				if op == "decrypt" {
					f = c.Decrypt
				}
				b.SetBytes(int64(size))
				for i := 0; b.Loop(); i++ {
					f(buf, buf, uint64(i))
				}
			})
		}
	}
}

// BenchmarkXTSRequest measures what a call costs by its shape: no sectors (the
// Go-side checks and dispatch), one small sector (mostly the latency of encrypting
// its tweak), one sector, and many sectors in one call (docs/PERFORMANCE.md).
func BenchmarkXTSRequest(b *testing.B) {
	for _, impl := range Implementations() {
		for _, c := range []struct{ sectorSize, bytes int }{
			{512, 0}, {16, 16}, {512, 512}, {512, 128 << 10}, {4096, 4096}, {4096, 128 << 10},
		} {
			b.Run(fmt.Sprintf("%s/sector=%d/bytes=%d", impl, c.sectorSize, c.bytes), func(b *testing.B) {
				x := newCipher(b, impl, randomKey(b), c.sectorSize)
				buf := make([]byte, c.bytes)
				b.SetBytes(int64(c.bytes))
				for i := 0; b.Loop(); i++ {
					x.Encrypt(buf, buf, uint64(i))
				}
			})
		}
	}
}
