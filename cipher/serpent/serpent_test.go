package serpent

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

type vector struct {
	Name       string `json:"name"`
	Key        string `json:"key"`
	Plaintext  string `json:"plaintext"`
	Ciphertext string `json:"ciphertext"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectors(t *testing.T) {
	data, err := os.ReadFile("../../testvectors/block/serpent.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 10 {
		t.Fatalf("only %d vectors", len(vs))
	}
	for _, v := range vs {
		c, err := New(unhex(t, v.Key), make([]byte, StateSize))
		if err != nil {
			t.Fatal(err)
		}
		pt, ct := unhex(t, v.Plaintext), unhex(t, v.Ciphertext)
		got := make([]byte, 16)
		c.Encrypt(got, pt)
		if !bytes.Equal(got, ct) {
			t.Errorf("%s: encrypt %x, want %x", v.Name, got, ct)
		}
		c.Decrypt(got, ct)
		if !bytes.Equal(got, pt) {
			t.Errorf("%s: decrypt %x, want %x", v.Name, got, pt)
		}
	}
}

// TestSBoxesMatchTables checks the generated boolean S-box functions, and their
// inverses, against the S-box tables on every input.
func TestSBoxesMatchTables(t *testing.T) {
	fs := [8]func(a, b, c, d uint32) (uint32, uint32, uint32, uint32){s0, s1, s2, s3, s4, s5, s6, s7}
	is := [8]func(a, b, c, d uint32) (uint32, uint32, uint32, uint32){is0, is1, is2, is3, is4, is5, is6, is7}
	bit := func(x, i int) uint32 { return uint32(x>>i&1) * 0xffffffff }
	for n := range 8 {
		for x := range 16 {
			y0, y1, y2, y3 := fs[n](bit(x, 0), bit(x, 1), bit(x, 2), bit(x, 3))
			want := int(sboxTables[n][x])
			for i, y := range []uint32{y0, y1, y2, y3} {
				if y != bit(want, i) {
					t.Fatalf("S%d(%d) bit %d wrong", n, x, i)
				}
			}
			z0, z1, z2, z3 := is[n](y0, y1, y2, y3)
			if z0 != bit(x, 0) || z1 != bit(x, 1) || z2 != bit(x, 2) || z3 != bit(x, 3) {
				t.Fatalf("inverse S%d(%d) wrong", n, x)
			}
		}
	}
}

func TestStateTooSmall(t *testing.T) {
	if _, err := New(make([]byte, 32), make([]byte, StateSize-64)); err == nil {
		t.Fatal("a state smaller than StateSize was accepted")
	}
	for _, n := range []int{0, 15, 17, 31, 33, 64} {
		if _, err := New(make([]byte, n), make([]byte, StateSize)); err == nil {
			t.Fatalf("a %d-byte key was accepted", n)
		}
	}
}

// TestRoundTrip decrypts what it encrypts for random keys of every size,
// with every alignment of the caller's state.
func TestRoundTrip(t *testing.T) {
	state := make([]byte, StateSize+64)
	for i := range 200 {
		key := make([]byte, []int{16, 24, 32}[i%3])
		rand.Read(key)
		c, err := New(key, state[i%64:][:StateSize])
		if err != nil {
			t.Fatal(err)
		}
		pt := make([]byte, 16)
		rand.Read(pt)
		ct := make([]byte, 16)
		c.Encrypt(ct, pt)
		back := make([]byte, 16)
		c.Decrypt(back, ct)
		if !bytes.Equal(back, pt) {
			t.Fatal("decrypt(encrypt(x)) != x")
		}
	}
}

func BenchmarkEncrypt(b *testing.B) {
	c, _ := New(make([]byte, 32), make([]byte, StateSize))
	buf := make([]byte, 16)
	b.SetBytes(16)
	for b.Loop() {
		c.Encrypt(buf, buf)
	}
}

func BenchmarkDecrypt(b *testing.B) {
	c, _ := New(make([]byte, 32), make([]byte, StateSize))
	buf := make([]byte, 16)
	b.SetBytes(16)
	for b.Loop() {
		c.Decrypt(buf, buf)
	}
}

// TestBlocksMatchSingle checks the two-block path against the one-block path
// for odd and even block counts, in place and out of place.
func TestBlocksMatchSingle(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	c, err := New(key, make([]byte, StateSize))
	if err != nil {
		t.Fatal(err)
	}
	for n := range 9 {
		src := make([]byte, 16*n)
		rand.Read(src)
		want := make([]byte, len(src))
		for i := 0; i < len(src); i += 16 {
			c.Encrypt(want[i:], src[i:i+16])
		}
		got := make([]byte, len(src))
		c.EncryptBlocks(got, src)
		if !bytes.Equal(got, want) {
			t.Fatalf("%d blocks: EncryptBlocks differs from Encrypt", n)
		}
		c.DecryptBlocks(got, got)
		if !bytes.Equal(got, src) {
			t.Fatalf("%d blocks: DecryptBlocks does not restore the plaintext", n)
		}
	}
}

func BenchmarkEncryptBlocks4K(b *testing.B) {
	c, _ := New(make([]byte, 32), make([]byte, StateSize))
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		c.EncryptBlocks(buf, buf)
	}
}
