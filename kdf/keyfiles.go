package kdf

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// MaxKeyfiles bounds the keyfiles of one secret (docs/FORMAT.md §4.1).
const MaxKeyfiles = 256

const keyfileDomain = "cryptvol v1 keyfiles"

// KeyfileDigest hashes the whole contents of one keyfile (§4.1).
func KeyfileDigest(r io.Reader) ([32]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return [32]byte{}, err
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
