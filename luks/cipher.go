package luks

import (
	"fmt"
	"hash"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/kdf"
)

// Keyslot areas and the data area are encrypted with a dm-crypt cipher
// specification ("aes-xts-plain64", "aes-cbc-essiv:sha256"): the area is a
// sequence of sectors, the first numbered 0 (keyslot areas, always 512-byte
// sectors) or iv_tweak (data). Package cipher parses and runs them; LUKS
// takes one block cipher per specification (dm-crypt has no cascades).

// checkCipher reports whether spec with a keySize-byte key is supported.
func checkCipher(feature, spec string, keySize int) error {
	s, err := cipher.ParseSpec(spec, keySize)
	if err != nil {
		return &UnsupportedError{Feature: feature, Err: err}
	}
	if len(s.Ciphers) != 1 {
		return unsupported(feature, "cipher %q is a cascade, which dm-crypt and LUKS do not have", spec)
	}
	return nil
}

// newSectorCipher returns the cipher for spec and key with sectors of
// sectorSize bytes, and the function that wipes its key state (held in
// locked memory).
func newSectorCipher(spec string, key []byte, sectorSize int) (cipher.Sector, func(), error) {
	if err := checkCipher("cipher", spec, len(key)); err != nil {
		return nil, nil, err
	}
	s, _ := cipher.ParseSpec(spec, len(key))
	state := memguard.NewBuffer(s.StateSize())
	c, err := cipher.NewSector(s, key, state.Bytes(), sectorSize)
	if err != nil {
		state.Destroy()
		return nil, nil, err
	}
	return c, state.Destroy, nil
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
