package kdf

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func TestSecret(t *testing.T) {
	pass := []byte("hunter2")
	plain, err := Secret(pass, nil)
	if err != nil || !bytes.Equal(plain, pass) {
		t.Fatalf("no keyfiles: %q, %v; want the passphrase itself", plain, err)
	}
	a, b := digest("keyfile a"), digest("keyfile b")
	ab, _ := Secret(pass, [][32]byte{a, b})
	ba, _ := Secret(pass, [][32]byte{b, a})
	if !bytes.Equal(ab, ba) {
		t.Fatal("the order of keyfiles matters")
	}
	for name, other := range map[string][][32]byte{"one missing": {a}, "one extra": {a, b, b}, "one wrong": {a, digest("x")}} {
		s, _ := Secret(pass, other)
		if bytes.Equal(s, ab) {
			t.Errorf("%s: same secret", name)
		}
	}
	if s, _ := Secret([]byte("hunter3"), [][32]byte{a, b}); bytes.Equal(s, ab) {
		t.Error("another passphrase gives the same secret")
	}
	// Keyfile-only differs from a passphrase equal to the keyfile secret's tail.
	only, _ := Secret(nil, [][32]byte{a})
	if bytes.Equal(only, a[:]) || !strings.HasPrefix(string(only), "cryptvol v1 keyfiles") {
		t.Fatalf("keyfile-only secret %x", only)
	}
	// The documented layout (docs/FORMAT.md §4.1), as a known answer.
	want := "6372797074766f6c207631206b657966696c6573" + // "cryptvol v1 keyfiles"
		"00000007" + hex.EncodeToString(pass) + "00000002"
	lo, hi := a, b
	if bytes.Compare(a[:], b[:]) > 0 {
		lo, hi = b, a
	}
	want += hex.EncodeToString(lo[:]) + hex.EncodeToString(hi[:])
	if hex.EncodeToString(ab) != want {
		t.Fatalf("layout:\n got %x\nwant %s", ab, want)
	}
	if _, err := Secret(pass, make([][32]byte, MaxKeyfiles+1)); err == nil {
		t.Fatal("too many keyfiles accepted")
	}
}

func TestKeyfileDigest(t *testing.T) {
	d, err := KeyfileDigest(strings.NewReader("keyfile a"))
	if err != nil || d != digest("keyfile a") {
		t.Fatal("digest is not SHA-256 of the contents")
	}
}

// TestKeyfileDigestCap: a keyfile of exactly MaxKeyfileSize is read whole;
// one byte more is refused, having read no further (an endless reader, like
// /dev/zero, ends too).
func TestKeyfileDigestCap(t *testing.T) {
	if _, err := KeyfileDigest(io.LimitReader(zeros{}, MaxKeyfileSize)); err != nil {
		t.Fatalf("a keyfile of the maximum size: %v", err)
	}
	var z zeros
	if _, err := KeyfileDigest(&z); !errors.Is(err, ErrKeyfileTooLarge) {
		t.Fatalf("an endless keyfile: %v", err)
	}
	if d, _ := KeyfileDigest(strings.NewReader("")); d != EmptyKeyfile {
		t.Fatal("EmptyKeyfile is not the digest of an empty file")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
