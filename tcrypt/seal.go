package tcrypt

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/cipher"
)

// NewHeader returns the header of a new VeraCrypt volume (not hidden, not
// system) of size bytes of data, as VeraCrypt 1.26 writes one: version 5,
// minimum program version 1.11, data at DataOffset, 512-byte sectors.
func NewHeader(size uint64) *Header {
	return &Header{
		Magic: MagicVeraCrypt, Version: 5, MinProgramVersion: minProgramVeraCrypt,
		VolumeSize: size, EncryptedAreaStart: DataOffset, EncryptedAreaLength: size,
		SectorSize: 512,
	}
}

// NewKeys returns a new master key area: KeyAreaSize random bytes, in
// locked memory owned by the caller. For algorithm, no cipher's data key
// equals its tweak key (XTS forbids it; a chance of 2^-256 each).
func NewKeys(algorithm string) (*memguard.LockedBuffer, error) {
	spec, err := cipher.VeraCryptSpec(algorithm)
	if err != nil {
		return nil, err
	}
	keys := memguard.NewBuffer(KeyAreaSize)
	state := memguard.NewBuffer(spec.StateSize())
	defer state.Destroy()
	for {
		if _, err := rand.Read(keys.Bytes()); err != nil {
			keys.Destroy()
			return nil, err
		}
		if _, err := cipher.NewSector(spec, keys.Bytes()[:spec.KeySize], state.Bytes(), UnitSize); err == nil {
			return keys, nil
		}
	}
}

// NewSalt returns a random salt.
func NewSalt() ([]byte, error) {
	s := make([]byte, SaltSize)
	_, err := rand.Read(s)
	return s, err
}

// Seal returns the 512 bytes of a header: salt, then h with the master key
// area keys, encrypted with algorithm under the key k derives from password
// (after keyfiles: Password) and salt. The result is checked by decrypting
// and parsing it again.
func Seal(ctx context.Context, h *Header, keys, password, salt []byte, k KDF, algorithm string) ([]byte, error) {
	if len(salt) != SaltSize {
		return nil, fmt.Errorf("salt is %d bytes, want %d", len(salt), SaltSize)
	}
	if len(keys) != KeyAreaSize {
		return nil, fmt.Errorf("key area is %d bytes, want %d", len(keys), KeyAreaSize)
	}
	if (h.Magic == MagicTrueCrypt) != k.TrueCrypt {
		return nil, fmt.Errorf("a %q header with %s", h.Magic, k)
	}
	hk, err := k.Derive(ctx, password, salt)
	if err != nil {
		return nil, err
	}
	defer hk.Destroy()
	plain := memguard.NewBufferFromBytes(h.Encode(keys))
	defer plain.Destroy()
	out := make([]byte, HeaderSize)
	copy(out, salt)
	if err := cryptHeader(algorithm, hk.Bytes(), out[SaltSize:], plain.Bytes(), true); err != nil {
		return nil, err
	}
	check := memguard.NewBuffer(EncryptedSize)
	defer check.Destroy()
	if err := cryptHeader(algorithm, hk.Bytes(), check.Bytes(), out[SaltSize:], false); err != nil {
		return nil, err
	}
	if _, err := Parse(check.Bytes(), nil); err != nil {
		return nil, fmt.Errorf("internal error: a sealed header does not parse: %w", err)
	}
	return out, nil
}
