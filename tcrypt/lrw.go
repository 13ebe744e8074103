package tcrypt

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
)

// LRW (Liskov, Rivest and Wagner's tweakable block cipher, as the IEEE P1619
// drafts and Linux's lrw template define it), the header encryption of
// TrueCrypt 4.1 to 4.3a. Cryptvol runs it only to recognise such a header and
// refuse it (legacy.go); it never encrypts data with it.
//
// With a 16-byte block cipher E under the key K1 and a 16-byte tweak key K2,
// block number I (a 128-bit big-endian integer) is
//
//	C = E_K1(P ⊕ T) ⊕ T, where T = K2 ⊗ I in GF(2^128),
//
// and the blocks of one call are numbered I, I+1, I+2, ... The field is
// GF(2)[x]/(x^128 + x^7 + x^2 + x + 1) with the bytes and bits of a block read
// big-endian: the first byte's most significant bit is the coefficient of
// x^127, the last byte's least significant bit that of 1 (the kernel's "bbe"
// representation).

// gfMul returns a ⊗ b in that field. It takes the same time whatever the
// values: a is a header key.
func gfMul(a, b *[16]byte) [16]byte {
	be := binary.BigEndian
	ah, al := be.Uint64(a[:8]), be.Uint64(a[8:])
	bh, bl := be.Uint64(b[:8]), be.Uint64(b[8:])
	var rh, rl uint64
	// Horner's rule over b's bits, from x^127 down: r = r·x, then r ⊕= a
	// if the bit is set.
	for i := 127; i >= 0; i-- {
		carry := rh >> 63
		rh = rh<<1 | rl>>63
		rl = rl<<1 ^ (0x87 & -carry)
		var bit uint64
		if i >= 64 {
			bit = bh >> (i - 64) & 1
		} else {
			bit = bl >> i & 1
		}
		rh ^= ah & -bit
		rl ^= al & -bit
	}
	var r [16]byte
	be.PutUint64(r[:8], rh)
	be.PutUint64(r[8:], rl)
	return r
}

// increment adds 1 to the 128-bit big-endian integer i.
func increment(i *[16]byte) {
	for j := 15; j >= 0; j-- {
		i[j]++
		if i[j] != 0 {
			return
		}
	}
}

// lrwCrypt encrypts or decrypts src (whole 16-byte blocks) into dst with the
// block cipher b and the tweak key k2, the first block numbered index. dst
// may be src.
func lrwCrypt(b cipher.Block, k2 *[16]byte, index [16]byte, dst, src []byte, encrypt bool) {
	if b.BlockSize() != 16 || len(src)%16 != 0 || len(dst) < len(src) {
		panic("tcrypt: LRW needs a 16-byte block cipher and whole blocks")
	}
	var buf [16]byte
	for off := 0; off < len(src); off += 16 {
		t := gfMul(k2, &index)
		subtle.XORBytes(buf[:], src[off:off+16], t[:])
		if encrypt {
			b.Encrypt(buf[:], buf[:])
		} else {
			b.Decrypt(buf[:], buf[:])
		}
		subtle.XORBytes(dst[off:off+16], buf[:], t[:])
		clear(t[:])
		increment(&index)
	}
	clear(buf[:])
}
