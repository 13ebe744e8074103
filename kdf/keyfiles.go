package kdf

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// MaxKeyfiles bounds the keyfiles of one secret, and MaxKeyfileSize the
// length of one keyfile (docs/FORMAT.md §4.1): a keyfile that never ends
// (/dev/zero, a pipe) must not hang the unlock.
const (
	MaxKeyfiles    = 256
	MaxKeyfileSize = 64 << 20
)

// ErrKeyfileTooLarge is a keyfile longer than MaxKeyfileSize.
var ErrKeyfileTooLarge = fmt.Errorf("longer than %d MiB, the most a keyfile may be", MaxKeyfileSize>>20)

const keyfileDomain = "cryptvol v1 keyfiles"

// EmptyKeyfile is the digest of an empty keyfile: a secret made of empty
// keyfiles and no passphrase is the same for every empty file.
var EmptyKeyfile = sha256.Sum256(nil)

// KeyfileDigest hashes the whole contents of one keyfile (§4.1), refusing
// one longer than MaxKeyfileSize (ErrKeyfileTooLarge) after reading at most
// one byte more.
func KeyfileDigest(r io.Reader) ([32]byte, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, MaxKeyfileSize+1))
	if err != nil {
		return [32]byte{}, err
	}
	if n > MaxKeyfileSize {
		return [32]byte{}, ErrKeyfileTooLarge
	}
	var d [32]byte
	h.Sum(d[:0])
	return d, nil
}

// Secret builds the Argon2id input from a passphrase and keyfile digests
// (§4.1). Without keyfiles it is a copy of the passphrase, so vaults that use
// passphrases only read the same as before keyfiles existed. The order of the
// digests does not matter. The caller wipes the result.
func Secret(passphrase []byte, keyfiles [][32]byte) ([]byte, error) {
	if len(keyfiles) == 0 {
		return slices.Clone(passphrase), nil
	}
	if len(keyfiles) > MaxKeyfiles {
		return nil, fmt.Errorf("%d keyfiles: at most %d are allowed", len(keyfiles), MaxKeyfiles)
	}
	sorted := slices.Clone(keyfiles)
	slices.SortFunc(sorted, func(a, b [32]byte) int { return slices.Compare(a[:], b[:]) })
	s := make([]byte, 0, len(keyfileDomain)+4+len(passphrase)+4+32*len(sorted))
	s = append(s, keyfileDomain...)
	s = binary.BigEndian.AppendUint32(s, uint32(len(passphrase)))
	s = append(s, passphrase...)
	s = binary.BigEndian.AppendUint32(s, uint32(len(sorted)))
	for _, d := range sorted {
		s = append(s, d[:]...)
	}
	clear(sorted)
	return s, nil
}
