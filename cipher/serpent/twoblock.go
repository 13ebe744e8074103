package serpent

import "encoding/binary"

// The two-block path: two blocks side by side in the halves of 64-bit words
// (block a in the low halves, block b in the high ones), so each boolean S-box
// operation and key XOR serves both. The linear transformation rotates and
// shifts within each 32-bit half.

// lowBits returns n low bits set in each 32-bit half.
func lowBits(n uint) uint64 { return (1<<n - 1) * 0x0000000100000001 }

func rol2(x uint64, n uint) uint64 {
	return (x<<n)&^lowBits(n) | (x>>(32-n))&lowBits(n)
}

func shl2(x uint64, n uint) uint64 { return (x << n) &^ lowBits(n) }

func lt2(x0, x1, x2, x3 uint64) (uint64, uint64, uint64, uint64) {
	x0 = rol2(x0, 13)
	x2 = rol2(x2, 3)
	x1 ^= x0 ^ x2
	x3 ^= x2 ^ shl2(x0, 3)
	x1 = rol2(x1, 1)
	x3 = rol2(x3, 7)
	x0 ^= x1 ^ x3
	x2 ^= x3 ^ shl2(x1, 7)
	x0 = rol2(x0, 5)
	x2 = rol2(x2, 22)
	return x0, x1, x2, x3
}

func ilt2(x0, x1, x2, x3 uint64) (uint64, uint64, uint64, uint64) {
	x2 = rol2(x2, 32-22)
	x0 = rol2(x0, 32-5)
	x2 ^= x3 ^ shl2(x1, 7)
	x0 ^= x1 ^ x3
	x3 = rol2(x3, 32-7)
	x1 = rol2(x1, 32-1)
	x3 ^= x2 ^ shl2(x0, 3)
	x1 ^= x0 ^ x2
	x2 = rol2(x2, 32-3)
	x0 = rol2(x0, 32-13)
	return x0, x1, x2, x3
}

func load2(a, b []byte) (x0, x1, x2, x3 uint64) {
	le := binary.LittleEndian
	x0 = uint64(le.Uint32(a[0:])) | uint64(le.Uint32(b[0:]))<<32
	x1 = uint64(le.Uint32(a[4:])) | uint64(le.Uint32(b[4:]))<<32
	x2 = uint64(le.Uint32(a[8:])) | uint64(le.Uint32(b[8:]))<<32
	x3 = uint64(le.Uint32(a[12:])) | uint64(le.Uint32(b[12:]))<<32
	return
}

func store2(a, b []byte, x0, x1, x2, x3 uint64) {
	le := binary.LittleEndian
	le.PutUint32(a[0:], uint32(x0))
	le.PutUint32(a[4:], uint32(x1))
	le.PutUint32(a[8:], uint32(x2))
	le.PutUint32(a[12:], uint32(x3))
	le.PutUint32(b[0:], uint32(x0>>32))
	le.PutUint32(b[4:], uint32(x1>>32))
	le.PutUint32(b[8:], uint32(x2>>32))
	le.PutUint32(b[12:], uint32(x3>>32))
}

// EncryptBlocks encrypts len(src)/16 blocks of src into dst, two at a time;
// len(src) must be a multiple of 16 and dst at least as long; they may overlap
// exactly.
func (c *Cipher) EncryptBlocks(dst, src []byte) {
	if len(src)%BlockSize != 0 || len(dst) < len(src) {
		panic("cryptvol/cipher/serpent: input not full blocks")
	}
	k := c.k[:132]
	for len(src) >= 2*BlockSize {
		x0, x1, x2, x3 := load2(src[:16], src[16:32])
		for r := 0; r < 32; r += 8 {
			x0, x1, x2, x3 = s0x2(x0^k[4*r], x1^k[4*r+1], x2^k[4*r+2], x3^k[4*r+3])
			x0, x1, x2, x3 = lt2(x0, x1, x2, x3)
			x0, x1, x2, x3 = s1x2(x0^k[4*r+4], x1^k[4*r+5], x2^k[4*r+6], x3^k[4*r+7])
			x0, x1, x2, x3 = lt2(x0, x1, x2, x3)
			x0, x1, x2, x3 = s2x2(x0^k[4*r+8], x1^k[4*r+9], x2^k[4*r+10], x3^k[4*r+11])
			x0, x1, x2, x3 = lt2(x0, x1, x2, x3)
			x0, x1, x2, x3 = s3x2(x0^k[4*r+12], x1^k[4*r+13], x2^k[4*r+14], x3^k[4*r+15])
			x0, x1, x2, x3 = lt2(x0, x1, x2, x3)
			x0, x1, x2, x3 = s4x2(x0^k[4*r+16], x1^k[4*r+17], x2^k[4*r+18], x3^k[4*r+19])
			x0, x1, x2, x3 = lt2(x0, x1, x2, x3)
			x0, x1, x2, x3 = s5x2(x0^k[4*r+20], x1^k[4*r+21], x2^k[4*r+22], x3^k[4*r+23])
			x0, x1, x2, x3 = lt2(x0, x1, x2, x3)
			x0, x1, x2, x3 = s6x2(x0^k[4*r+24], x1^k[4*r+25], x2^k[4*r+26], x3^k[4*r+27])
			x0, x1, x2, x3 = lt2(x0, x1, x2, x3)
			x0, x1, x2, x3 = s7x2(x0^k[4*r+28], x1^k[4*r+29], x2^k[4*r+30], x3^k[4*r+31])
			if r < 24 {
				x0, x1, x2, x3 = lt2(x0, x1, x2, x3)
			}
		}
		store2(dst[:16], dst[16:32], x0^k[128], x1^k[129], x2^k[130], x3^k[131])
		dst, src = dst[32:], src[32:]
	}
	if len(src) > 0 {
		c.Encrypt(dst, src)
	}
}

// DecryptBlocks decrypts len(src)/16 blocks of src into dst, with the rules of
// EncryptBlocks.
func (c *Cipher) DecryptBlocks(dst, src []byte) {
	if len(src)%BlockSize != 0 || len(dst) < len(src) {
		panic("cryptvol/cipher/serpent: input not full blocks")
	}
	k := c.k[:132]
	for len(src) >= 2*BlockSize {
		x0, x1, x2, x3 := load2(src[:16], src[16:32])
		x0, x1, x2, x3 = x0^k[128], x1^k[129], x2^k[130], x3^k[131]
		for r := 24; r >= 0; r -= 8 {
			if r < 24 {
				x0, x1, x2, x3 = ilt2(x0, x1, x2, x3)
			}
			x0, x1, x2, x3 = is7x2(x0, x1, x2, x3)
			x0, x1, x2, x3 = ilt2(x0^k[4*r+28], x1^k[4*r+29], x2^k[4*r+30], x3^k[4*r+31])
			x0, x1, x2, x3 = is6x2(x0, x1, x2, x3)
			x0, x1, x2, x3 = ilt2(x0^k[4*r+24], x1^k[4*r+25], x2^k[4*r+26], x3^k[4*r+27])
			x0, x1, x2, x3 = is5x2(x0, x1, x2, x3)
			x0, x1, x2, x3 = ilt2(x0^k[4*r+20], x1^k[4*r+21], x2^k[4*r+22], x3^k[4*r+23])
			x0, x1, x2, x3 = is4x2(x0, x1, x2, x3)
			x0, x1, x2, x3 = ilt2(x0^k[4*r+16], x1^k[4*r+17], x2^k[4*r+18], x3^k[4*r+19])
			x0, x1, x2, x3 = is3x2(x0, x1, x2, x3)
			x0, x1, x2, x3 = ilt2(x0^k[4*r+12], x1^k[4*r+13], x2^k[4*r+14], x3^k[4*r+15])
			x0, x1, x2, x3 = is2x2(x0, x1, x2, x3)
			x0, x1, x2, x3 = ilt2(x0^k[4*r+8], x1^k[4*r+9], x2^k[4*r+10], x3^k[4*r+11])
			x0, x1, x2, x3 = is1x2(x0, x1, x2, x3)
			x0, x1, x2, x3 = ilt2(x0^k[4*r+4], x1^k[4*r+5], x2^k[4*r+6], x3^k[4*r+7])
			x0, x1, x2, x3 = is0x2(x0, x1, x2, x3)
			x0, x1, x2, x3 = x0^k[4*r], x1^k[4*r+1], x2^k[4*r+2], x3^k[4*r+3]
		}
		store2(dst[:16], dst[16:32], x0, x1, x2, x3)
		dst, src = dst[32:], src[32:]
	}
	if len(src) > 0 {
		c.Decrypt(dst, src)
	}
}
