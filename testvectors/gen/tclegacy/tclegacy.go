// Package tclegacy makes TrueCrypt 4 volumes for cryptvol's tests: a header
// in LRW mode (TrueCrypt 4.1 to 4.3a) or CBC mode (4.0 and older), sealed
// with tcrypt.SealLegacy, at the start of a small file of pseudo-random
// bytes. Cryptvol must recognise such a volume and refuse it, naming the mode
// (exit 4). Nothing is stored: the tests make the volumes as they run.
//
// The data area is not encrypted data: cryptvol never reads it, and a
// refusal needs the header alone. The header is an independent check of
// nothing but the round trip; the LRW mode itself is held to the IEEE P1619
// draft's vectors (testvectors/lrw).
package tclegacy

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/cryptvol/cryptvol/tcrypt"
)

// Size is the size of the volumes Volume makes: the header, and the place
// 1536 bytes before the end where TrueCrypt 4 kept a hidden volume's header.
const Size = 8 << 10

// Volume returns a TrueCrypt 4 volume of Size bytes whose header opens with
// password under the PBKDF2 PRF prf ("ripemd160", "sha1" or "whirlpool", at
// TrueCrypt 4's iteration counts), encrypted with algorithm (one of
// tcrypt.LegacyAlgorithms, e.g. "LRW AES"). Its salt, keys and filler are
// derived from the arguments, so the same arguments give the same volume.
func Volume(algorithm, prf string, password []byte) ([]byte, error) {
	var k *tcrypt.KDF
	for _, d := range tcrypt.LegacyKDFs() {
		if d.PRF == prf {
			k = &d
		}
	}
	if k == nil {
		return nil, fmt.Errorf("PRF %q: TrueCrypt 4 used ripemd160, sha1 and whirlpool", prf)
	}
	file := make([]byte, Size)
	seed := sha256.Sum256([]byte("tclegacy " + algorithm + " " + prf))
	for i := 0; i < Size; i += sha256.Size {
		block := sha256.Sum256(append(seed[:], byte(i>>8), byte(i)))
		copy(file[i:], block[:])
	}
	version := uint16(1)
	if algorithm[:3] == "LRW" {
		version = 2
	}
	raw, err := tcrypt.SealLegacy(context.Background(), version, 0, file[1024:1024+tcrypt.KeyAreaSize], password, file[:tcrypt.SaltSize], *k, algorithm)
	if err != nil {
		return nil, err
	}
	copy(file, raw)
	return file, nil
}
