// Package whirlpool implements the Whirlpool hash function (ISO/IEC 10118-3,
// the final version of Barreto and Rijmen's design, with the S-box built from
// the E and R mini-boxes), a PRF of VeraCrypt's, TrueCrypt's and LUKS's
// PBKDF2 and the hash of VeraCrypt's keyfile pool.
//
// The round function is table-based: eight 256-entry tables of 64-bit words
// built at start-up. Look-ups are indexed by message and key-dependent data,
// as in every table-driven Whirlpool.
package whirlpool

import (
	"encoding/binary"
	"hash"
)

const (
	// Size is the size of a Whirlpool digest in bytes.
	Size = 64
	// BlockSize is Whirlpool's block size in bytes.
	BlockSize = 64

	rounds = 10
)

type digest struct {
	h   [8]uint64
	buf [BlockSize]byte
	n   int    // bytes in buf
	len uint64 // message bytes so far (a 2^64-byte message is far past any use)
}

// New returns a new hash.Hash computing Whirlpool.
func New() hash.Hash {
	d := new(digest)
	d.Reset()
	return d
}

func (d *digest) Reset() {
	*d = digest{}
}

func (d *digest) Size() int      { return Size }
func (d *digest) BlockSize() int { return BlockSize }

func (d *digest) Write(p []byte) (int, error) {
	n := len(p)
	d.len += uint64(n)
	if d.n > 0 {
		c := copy(d.buf[d.n:], p)
		d.n += c
		p = p[c:]
		if d.n < BlockSize {
			return n, nil
		}
		d.block(d.buf[:])
		d.n = 0
	}
	for len(p) >= BlockSize {
		d.block(p[:BlockSize])
		p = p[BlockSize:]
	}
	d.n = copy(d.buf[:], p)
	return n, nil
}

func (d *digest) Sum(in []byte) []byte {
	c := *d // Sum does not change the state
	var pad [2 * BlockSize]byte
	pad[0] = 0x80
	// Pad to 32 bytes before a block boundary, then a 256-bit big-endian
	// bit length.
	padLen := (BlockSize - 32) - c.n
	if padLen <= 0 {
		padLen += BlockSize
	}
	bitsLen := c.len << 3
	binary.BigEndian.PutUint64(pad[padLen+24:], bitsLen)
	binary.BigEndian.PutUint64(pad[padLen+16:], c.len>>61)
	c.Write(pad[:padLen+32])
	var out [Size]byte
	for i, v := range c.h {
		binary.BigEndian.PutUint64(out[8*i:], v)
	}
	clear(c.buf[:])
	return append(in, out[:]...)
}

// block processes one 64-byte block: W[H](m) ^ H ^ m.
func (d *digest) block(p []byte) {
	var k, s, m [8]uint64
	for i := range 8 {
		m[i] = binary.BigEndian.Uint64(p[8*i:])
		k[i] = d.h[i]
		s[i] = m[i] ^ k[i]
	}
	for r := range rounds {
		k = rho(&k)
		k[0] ^= rc[r]
		s = rho(&s)
		for i := range 8 {
			s[i] ^= k[i]
		}
	}
	for i := range 8 {
		d.h[i] ^= s[i] ^ m[i]
	}
}

// rho is the round's SubBytes, ShiftColumns and MixRows of x: row i of the
// result takes byte j from row i-j.
func rho(x *[8]uint64) (y [8]uint64) {
	x0, x1, x2, x3, x4, x5, x6, x7 := x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]
	t0, t1, t2, t3, t4, t5, t6, t7 := &c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6], &c[7]
	y[0] = t0[x0>>56] ^ t1[uint8(x7>>48)] ^ t2[uint8(x6>>40)] ^ t3[uint8(x5>>32)] ^ t4[uint8(x4>>24)] ^ t5[uint8(x3>>16)] ^ t6[uint8(x2>>8)] ^ t7[uint8(x1)]
	y[1] = t0[x1>>56] ^ t1[uint8(x0>>48)] ^ t2[uint8(x7>>40)] ^ t3[uint8(x6>>32)] ^ t4[uint8(x5>>24)] ^ t5[uint8(x4>>16)] ^ t6[uint8(x3>>8)] ^ t7[uint8(x2)]
	y[2] = t0[x2>>56] ^ t1[uint8(x1>>48)] ^ t2[uint8(x0>>40)] ^ t3[uint8(x7>>32)] ^ t4[uint8(x6>>24)] ^ t5[uint8(x5>>16)] ^ t6[uint8(x4>>8)] ^ t7[uint8(x3)]
	y[3] = t0[x3>>56] ^ t1[uint8(x2>>48)] ^ t2[uint8(x1>>40)] ^ t3[uint8(x0>>32)] ^ t4[uint8(x7>>24)] ^ t5[uint8(x6>>16)] ^ t6[uint8(x5>>8)] ^ t7[uint8(x4)]
	y[4] = t0[x4>>56] ^ t1[uint8(x3>>48)] ^ t2[uint8(x2>>40)] ^ t3[uint8(x1>>32)] ^ t4[uint8(x0>>24)] ^ t5[uint8(x7>>16)] ^ t6[uint8(x6>>8)] ^ t7[uint8(x5)]
	y[5] = t0[x5>>56] ^ t1[uint8(x4>>48)] ^ t2[uint8(x3>>40)] ^ t3[uint8(x2>>32)] ^ t4[uint8(x1>>24)] ^ t5[uint8(x0>>16)] ^ t6[uint8(x7>>8)] ^ t7[uint8(x6)]
	y[6] = t0[x6>>56] ^ t1[uint8(x5>>48)] ^ t2[uint8(x4>>40)] ^ t3[uint8(x3>>32)] ^ t4[uint8(x2>>24)] ^ t5[uint8(x1>>16)] ^ t6[uint8(x0>>8)] ^ t7[uint8(x7)]
	y[7] = t0[x7>>56] ^ t1[uint8(x6>>48)] ^ t2[uint8(x5>>40)] ^ t3[uint8(x4>>32)] ^ t4[uint8(x3>>24)] ^ t5[uint8(x2>>16)] ^ t6[uint8(x1>>8)] ^ t7[uint8(x0)]
	return y
}
