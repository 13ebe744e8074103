package cipher

import (
	"bytes"
	"crypto/aes"
	"crypto/rand"
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

// forEachImpl runs f for every implementation this CPU can run, so every path
// is exercised on the CI machine.
func forEachImpl(t *testing.T, f func(t *testing.T, impl string)) {
	impls := Implementations()
	if len(impls) == 0 || impls[len(impls)-1] != "generic" {
		t.Fatalf("implementations %v: the generic one must always be available and last", impls)
	}
	for _, impl := range impls {
		t.Run(impl, func(t *testing.T) { f(t, impl) })
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
		for _, sectorSize := range []int{16, 32, 48, 512, 4096} {
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
		sectorSize := []int{16, 512, 4096, 32}[sizeSel%4]
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
	b.Run("x-crypto-xts/encrypt/4096", func(b *testing.B) {
		c, _ := xts.NewCipher(aes.NewCipher, randomKey(b))
		buf := make([]byte, 4096)
		b.SetBytes(4096)
		for i := 0; b.Loop(); i++ {
			c.Encrypt(buf, buf, uint64(i))
		}
	})
}
