package kdf

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"fmt"
	"hash"
	"slices"
	"strings"

	"github.com/cryptvol/cryptvol/kdf/streebog"
	"github.com/cryptvol/cryptvol/kdf/whirlpool"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/ripemd160" //nolint:staticcheck // LUKS1 and TrueCrypt volumes use it
)

// hashes are the hash functions the PBKDF2 PRFs of LUKS, VeraCrypt and
// TrueCrypt and VeraCrypt's keyfile pool use, under cryptsetup's names (the
// ones a LUKS header stores); aliases follow a "=".
var hashes = []struct {
	names []string
	new   func() hash.Hash
}{
	{[]string{"sha1"}, sha1.New},
	{[]string{"sha224"}, sha256.New224},
	{[]string{"sha256"}, sha256.New},
	{[]string{"sha384"}, sha512.New384},
	{[]string{"sha512"}, sha512.New},
	{[]string{"sha3-256"}, func() hash.Hash { return sha3.New256() }},
	{[]string{"sha3-512"}, func() hash.Hash { return sha3.New512() }},
	{[]string{"ripemd160"}, ripemd160.New},
	{[]string{"whirlpool"}, whirlpool.New},
	{[]string{"blake2s-256"}, func() hash.Hash { h, _ := blake2s.New256(nil); return h }},
	{[]string{"blake2b-512"}, func() hash.Hash { h, _ := blake2b.New512(nil); return h }},
	{[]string{"streebog512", "stribog512"}, streebog.New},
	{[]string{"streebog256", "stribog256"}, streebog.New256},
}

// Hash returns the constructor of the hash function named name (any case):
// "sha1", "sha224", "sha256", "sha384", "sha512", "sha3-256", "sha3-512",
// "ripemd160", "whirlpool", "blake2s-256", "blake2b-512", "streebog512" and
// "streebog256" (also spelled "stribog512", "stribog256", as cryptsetup
// does). Each is a PRF of PBKDF2 through crypto/hmac.
func Hash(name string) (func() hash.Hash, error) {
	n := strings.ToLower(name)
	for _, h := range hashes {
		if slices.Contains(h.names, n) {
			return h.new, nil
		}
	}
	return nil, fmt.Errorf("cryptvol/kdf: unsupported hash %q (supported: %s)", name, strings.Join(HashNames(), ", "))
}

// HashNames returns the names Hash knows, without the aliases.
func HashNames() []string {
	var names []string
	for _, h := range hashes {
		names = append(names, h.names[0])
	}
	return names
}
