package camellia

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
	data, err := os.ReadFile("../../testvectors/block/camellia.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 8 {
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
