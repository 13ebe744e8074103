// Package streebog implements Streebog, the hash functions of GOST R
// 34.11-2012 (RFC 6986) with 512- and 256-bit digests: VeraCrypt's
// HMAC-Streebog-512 PRF.
//
// Digests are in the byte order of RFC 6986's examples read from the end, the
// order VeraCrypt, OpenSSL's gost engine, rhash and the test vectors of
// streebog.net use: the vectors of the RFC are printed most significant byte
// first, the hash's bytes little-endian.
//
// The LPS transformation is table-based (eight 256-entry tables of 64-bit
// words built at start-up from pi and A); look-ups are indexed by message and
// key-dependent data, as in every table-driven Streebog.
package streebog

import (
	"encoding/binary"
	"encoding/hex"
	"hash"
)

const (
	// Size is the size of a Streebog-512 digest in bytes.
	Size = 64
	// Size256 is the size of a Streebog-256 digest in bytes.
	Size256 = 32
	// BlockSize is Streebog's block size in bytes.
	BlockSize = 64
)

var (
	ax [8][256]uint64 // ax[i][b]: l of byte i of a word being b, after pi
	c  [12][8]uint64  // iteration constants, little-endian words
)

func init() {
	for i := range 8 {
		for b := range 256 {
			v := uint64(pi[b])
			var w uint64
			for k := range 8 {
				if v>>k&1 != 0 {
					w ^= matrixA[63-(8*i+k)]
				}
			}
			ax[i][b] = w
		}
	}
	for i, s := range iterC {
		be, err := hex.DecodeString(s)
		if err != nil || len(be) != 64 {
			panic("streebog: bad constant")
		}
		for j := range 8 {
			// Little-endian word j holds the RFC's bytes 63-8j-7..63-8j.
			var w uint64
			for k := range 8 {
				w |= uint64(be[63-(8*j+k)]) << (8 * k)
			}
			c[i][j] = w
		}
	}
}

// lps applies S, P and L to x: word r of the result gathers byte r of every
// word (the transposition P), each through pi and its row of A.
func lps(x *[8]uint64) {
	x0, x1, x2, x3, x4, x5, x6, x7 := x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]
	a0, a1, a2, a3, a4, a5, a6, a7 := &ax[0], &ax[1], &ax[2], &ax[3], &ax[4], &ax[5], &ax[6], &ax[7]
	for r := range 8 {
		sh := uint(8 * r)
		x[r] = a0[uint8(x0>>sh)] ^ a1[uint8(x1>>sh)] ^ a2[uint8(x2>>sh)] ^ a3[uint8(x3>>sh)] ^
			a4[uint8(x4>>sh)] ^ a5[uint8(x5>>sh)] ^ a6[uint8(x6>>sh)] ^ a7[uint8(x7>>sh)]
	}
}

// g is the compression function g_N(h, m) = E(LPS(h ^ N), m) ^ h ^ m.
func g(h, n, m *[8]uint64) {
	var k, s [8]uint64
	for i := range 8 {
		k[i] = h[i] ^ n[i]
	}
	lps(&k)
	s = *m
	for r := range 12 {
		for i := range 8 {
			s[i] ^= k[i]
		}
		lps(&s)
		for i := range 8 {
			k[i] ^= c[r][i]
		}
		lps(&k)
	}
	for i := range 8 {
		h[i] ^= s[i] ^ k[i] ^ m[i]
	}
	clear(k[:])
	clear(s[:])
}

// add512 adds m to x modulo 2^512.
func add512(x, m *[8]uint64) {
	var carry uint64
	for i := range 8 {
		s := x[i] + m[i]
		c1 := uint64(0)
		if s < x[i] {
			c1 = 1
		}
		s2 := s + carry
		if s2 < s {
			c1 = 1
		}
		x[i] = s2
		carry = c1
	}
}

type digest struct {
	size      int
	h, n, sum [8]uint64
	buf       [BlockSize]byte
	nbuf      int
}

// New returns a new hash.Hash computing Streebog-512.
func New() hash.Hash { return newDigest(Size) }

// New256 returns a new hash.Hash computing Streebog-256.
func New256() hash.Hash { return newDigest(Size256) }

func newDigest(size int) *digest {
	d := &digest{size: size}
	d.Reset()
	return d
}

func (d *digest) Reset() {
	*d = digest{size: d.size}
	if d.size == Size256 {
		for i := range d.h {
			d.h[i] = 0x0101010101010101
		}
	}
}

func (d *digest) Size() int      { return d.size }
func (d *digest) BlockSize() int { return BlockSize }

func words(b []byte) (w [8]uint64) {
	for i := range 8 {
		w[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return w
}

var block512 = [8]uint64{512}

func (d *digest) compress(b []byte) {
	m := words(b)
	g(&d.h, &d.n, &m)
	add512(&d.n, &block512)
	add512(&d.sum, &m)
}

func (d *digest) Write(p []byte) (int, error) {
	n := len(p)
	if d.nbuf > 0 {
		k := copy(d.buf[d.nbuf:], p)
		d.nbuf += k
		p = p[k:]
		if d.nbuf < BlockSize {
			return n, nil
		}
		d.compress(d.buf[:])
		d.nbuf = 0
	}
	for len(p) >= BlockSize {
		d.compress(p[:BlockSize])
		p = p[BlockSize:]
	}
	d.nbuf = copy(d.buf[:], p)
	return n, nil
}

func (d *digest) Sum(in []byte) []byte {
	e := *d
	var last [BlockSize]byte
	copy(last[:], e.buf[:e.nbuf])
	last[e.nbuf] = 1
	m := words(last[:])
	g(&e.h, &e.n, &m)
	bitsLen := [8]uint64{uint64(e.nbuf) * 8}
	add512(&e.n, &bitsLen)
	add512(&e.sum, &m)
	var zero [8]uint64
	g(&e.h, &zero, &e.n)
	g(&e.h, &zero, &e.sum)
	var out [Size]byte
	for i, w := range e.h {
		binary.LittleEndian.PutUint64(out[8*i:], w)
	}
	clear(last[:])
	clear(e.buf[:])
	if d.size == Size256 {
		return append(in, out[32:]...)
	}
	return append(in, out[:]...)
}
