package kdf

import (
	"crypto/pbkdf2"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// TestHashesPBKDF2 derives keys with PBKDF2 over the hashes the volume formats
// name, against testvectors/pbkdf2/pbkdf2-prf.json (RFC 7914 and VeraCrypt's
// own self-tests for HMAC-SHA-512, HMAC-RIPEMD-160 and HMAC-Whirlpool).
func TestHashesPBKDF2(t *testing.T) {
	data, err := os.ReadFile("../testvectors/pbkdf2/pbkdf2-prf.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []struct {
		Name, Hash, Password string
		SaltHex              string `json:"salt_hex"`
		Iterations           int
		Key                  string
	}
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 4 {
		t.Fatalf("%d vectors", len(vs))
	}
	for _, v := range vs {
		h, err := Hash(v.Hash)
		if err != nil {
			t.Fatal(err)
		}
		salt, _ := hex.DecodeString(v.SaltHex)
		got, err := pbkdf2.Key(h, v.Password, salt, v.Iterations, len(v.Key)/2)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != v.Key {
			t.Errorf("%s: %x, want %s", v.Name, got, v.Key)
		}
	}
}

func TestHashNames(t *testing.T) {
	for _, n := range append(HashNames(), "stribog512", "SHA512", "Whirlpool") {
		f, err := Hash(n)
		if err != nil {
			t.Fatal(err)
		}
		h := f()
		h.Write([]byte("abc"))
		if len(h.Sum(nil)) != h.Size() {
			t.Fatalf("%s: digest size", n)
		}
	}
	for _, n := range []string{"", "md5", "sha256 ", "blake2s", "gost"} {
		if _, err := Hash(n); err == nil {
			t.Errorf("hash %q was accepted", n)
		}
	}
}
