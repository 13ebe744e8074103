package cipher

import (
	"crypto/aes"
	stdcipher "crypto/cipher"
	"encoding/binary"
)

// genericImpl is the portable implementation, one AES block at a time through
// crypto/aes. It is the reference the fast paths are tested against besides
// golang.org/x/crypto/xts, and the only path on other architectures, on amd64 CPUs
// without AES-NI, and with the purego build tag.
//
// Limitation: crypto/aes keeps its round keys in Go heap memory, which cryptvol
// cannot lock or wipe; the state memory is unused here (see SECURITY.md). The
// amd64 assembly paths keep them in state only (keys_amd64.go).
var genericImpl = &implementation{
	name:      "generic",
	available: func() bool { return true },
	needs:     "nothing",
	setup: func(key, state []byte) (blockCiphers, error) {
		k1, err := aes.NewCipher(key[:32])
		if err != nil {
			return nil, err
		}
		k2, err := aes.NewCipher(key[32:])
		if err != nil {
			return nil, err
		}
		return &genericKeys{k1, k2}, nil
	},
	encrypt: func(b blockCiphers, dst, src []byte, sectorSize int, sector uint64) {
		k := b.(*genericKeys)
		genericXTS(k.data.Encrypt, k.tweak, dst, src, sectorSize, sector)
	},
	decrypt: func(b blockCiphers, dst, src []byte, sectorSize int, sector uint64) {
		k := b.(*genericKeys)
		genericXTS(k.data.Decrypt, k.tweak, dst, src, sectorSize, sector)
	},
}

type genericKeys struct{ data, tweak stdcipher.Block }

// genericXTS applies XTS (IEEE 1619 §5.3) with the block function crypt, which is
// the data key's encryption or decryption; the tweak is always encrypted.
func genericXTS(crypt func(dst, src []byte), tweakKey stdcipher.Block, dst, src []byte, sectorSize int, sector uint64) {
	var t, x [BlockSize]byte
	for off := 0; off < len(src); off += sectorSize {
		clear(t[:])
		binary.LittleEndian.PutUint64(t[:8], sector)
		tweakKey.Encrypt(t[:], t[:])
		for i := off; i < off+sectorSize; i += BlockSize {
			xor16(x[:], src[i:i+BlockSize], t[:])
			crypt(x[:], x[:])
			xor16(dst[i:i+BlockSize], x[:], t[:])
			mulAlpha(&t)
		}
		sector++
	}
	clear(t[:])
	clear(x[:])
}

func xor16(dst, a, b []byte) {
	binary.LittleEndian.PutUint64(dst[:8], binary.LittleEndian.Uint64(a[:8])^binary.LittleEndian.Uint64(b[:8]))
	binary.LittleEndian.PutUint64(dst[8:16], binary.LittleEndian.Uint64(a[8:16])^binary.LittleEndian.Uint64(b[8:16]))
}

// mulAlpha multiplies the tweak by x in GF(2^128) with the XTS (little-endian)
// convention and the reduction polynomial x^128 + x^7 + x^2 + x + 1.
func mulAlpha(t *[BlockSize]byte) {
	lo := binary.LittleEndian.Uint64(t[:8])
	hi := binary.LittleEndian.Uint64(t[8:])
	carry := hi >> 63
	hi = hi<<1 | lo>>63
	lo = lo<<1 ^ (0x87 & -carry)
	binary.LittleEndian.PutUint64(t[:8], lo)
	binary.LittleEndian.PutUint64(t[8:], hi)
}
