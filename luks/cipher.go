package luks

import (
	"fmt"
	"hash"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/kdf"
)

// Keyslot areas and the data area are encrypted with a dm-crypt cipher
// specification ("aes-xts-plain64"): the area is a sequence of sectors, the
// first numbered 0 (keyslot areas, always 512-byte sectors) or iv_tweak (data).
//
// This file is the one place that maps a specification to package cipher.
// Today cipher has XTS-AES-256 only; the plain and plain64 IVs are the same for
// keyslot areas, whose sectors are numbered from 0 and never reach 2^32.

// sectorCipher encrypts or decrypts whole sectors in place or out of place; the
// first sector of the buffer has IV number sector, the next sector+1.
type sectorCipher interface {
	Encrypt(dst, src []byte, sector uint64)
	Decrypt(dst, src []byte, sector uint64)
}

// cipherKeySizes lists the supported specifications and their key sizes.
var cipherKeySizes = map[string][]int{
	"aes-xts-plain64": {cipher.KeySize},
	"aes-xts-plain":   {cipher.KeySize},
}

// checkCipher reports whether spec with a keySize-byte key is supported.
func checkCipher(feature, spec string, keySize int) error {
	sizes, ok := cipherKeySizes[spec]
	if !ok {
		return unsupported(feature, "cipher %q is not supported (supported: aes-xts-plain64 and aes-xts-plain with 512-bit keys)", spec)
	}
	for _, s := range sizes {
		if s == keySize {
			return nil
		}
	}
	return unsupported(feature, "cipher %q with a %d-bit key is not supported (supported: %v bits)", spec, keySize*8, bitsOf(sizes))
}

func bitsOf(sizes []int) []int {
	b := make([]int, len(sizes))
	for i, s := range sizes {
		b[i] = s * 8
	}
	return b
}

// newSectorCipher returns the cipher for spec and key with sectors of
// sectorSize bytes, and the function that wipes its key state.
func newSectorCipher(spec string, key []byte, sectorSize int) (sectorCipher, func(), error) {
	if err := checkCipher("cipher", spec, len(key)); err != nil {
		return nil, nil, err
	}
	state := memguard.NewBuffer(cipher.StateSize)
	x, err := cipher.New(key, state.Bytes(), sectorSize)
	if err != nil {
		state.Destroy()
		return nil, nil, err
	}
	return x, state.Destroy, nil
}

// newHash returns the hash cryptsetup calls name (for PBKDF2, the AF splitter
// and LUKS2 checksums).
func newHash(name string) (func() hash.Hash, error) {
	h, err := kdf.Hash(name)
	if err != nil {
		return nil, fmt.Errorf("hash %q is not supported: %w", name, err)
	}
	return h, nil
}
