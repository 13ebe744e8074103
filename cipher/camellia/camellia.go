// Package camellia implements the Camellia block cipher (RFC 3713) with 128-,
// 192- and 256-bit keys.
//
// The F-function is table-based: eight 256-entry tables of 64-bit words, each
// an S-box followed by the P-function, built at start-up from s1. Table
// look-ups are indexed by key-dependent data, as in every table-driven Camellia
// (OpenSSL's portable code, the Linux kernel's generic one, VeraCrypt's); the
// tables are public, only the indices are secret.
//
// The subkeys are expanded into memory the caller provides (see New), the way
// cryptvol keeps every key in locked memory; nothing of the key stays on the Go
// heap.
package camellia

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/cryptvol/cryptvol/cipher/internal/keymem"
)

const (
	// BlockSize is Camellia's block size in bytes.
	BlockSize = 16

	// subkeys is the largest schedule: kw1..kw4, k1..k24, ke1..ke6.
	subkeys = 4 + 24 + 6

	// StateSize is the bytes of caller memory New needs for the subkeys,
	// wherever that memory starts.
	StateSize = subkeys*8 + keymem.Align - 1
)

// KeySizeError is returned for a key that is not 16, 24 or 32 bytes.
type KeySizeError int

func (k KeySizeError) Error() string {
	return fmt.Sprintf("cryptvol/cipher/camellia: invalid key size %d", int(k))
}

// Cipher is Camellia under one key. It satisfies crypto/cipher.Block and is
// safe for concurrent use.
type Cipher struct {
	// k holds, in the caller's state: kw1..kw4 at 0..3, the round keys
	// from 4 (18 or 24 of them), then the FL keys (4 or 6).
	k     []uint64
	long  bool // 192- or 256-bit key: 24 rounds
	round int  // number of Feistel rounds
}

var sigma = [6]uint64{
	0xA09E667F3BCC908B, 0xB67AE8584CAA73B2, 0xC6EF372FE94F82BE,
	0x54FF53A5F1D36F1C, 0x10E527FADE682D1D, 0xB05688C2B3E6C1FD,
}

// rot128 returns the 128-bit value hi||lo rotated left by n (0 <= n < 128)
// as its halves.
func rot128(hi, lo uint64, n uint) (uint64, uint64) {
	if n >= 64 {
		hi, lo = lo, hi
		n -= 64
	}
	if n == 0 {
		return hi, lo
	}
	return hi<<n | lo>>(64-n), lo<<n | hi>>(64-n)
}

// New expands key (16, 24 or 32 bytes) into state, which must be at least
// StateSize bytes and stay allocated and unmodified while the cipher is in use;
// the caller owns and wipes it. key is not retained.
func New(key, state []byte) (*Cipher, error) {
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, KeySizeError(len(key))
	}
	k, err := keymem.Uint64s(state, subkeys)
	if err != nil {
		return nil, err
	}
	klh := binary.BigEndian.Uint64(key[0:])
	kll := binary.BigEndian.Uint64(key[8:])
	var krh, krl uint64
	switch len(key) {
	case 24:
		krh = binary.BigEndian.Uint64(key[16:])
		krl = ^krh
	case 32:
		krh = binary.BigEndian.Uint64(key[16:])
		krl = binary.BigEndian.Uint64(key[24:])
	}
	d1, d2 := klh^krh, kll^krl
	d2 ^= f(d1, sigma[0])
	d1 ^= f(d2, sigma[1])
	d1 ^= klh
	d2 ^= kll
	d2 ^= f(d1, sigma[2])
	d1 ^= f(d2, sigma[3])
	kah, kal := d1, d2

	c := &Cipher{k: k}
	// put writes the halves of a rotated 128-bit key into slots i and j.
	put := func(i, j int, hi, lo uint64, n uint) {
		h, l := rot128(hi, lo, n)
		k[i], k[j] = h, l
	}
	const kw, rk = 0, 4
	if len(key) == 16 {
		c.round = 18
		ke := rk + 18
		put(kw+0, kw+1, klh, kll, 0)
		put(rk+0, rk+1, kah, kal, 0)
		put(rk+2, rk+3, klh, kll, 15)
		put(rk+4, rk+5, kah, kal, 15)
		put(ke+0, ke+1, kah, kal, 30)
		put(rk+6, rk+7, klh, kll, 45)
		h, _ := rot128(kah, kal, 45)
		k[rk+8] = h
		_, l := rot128(klh, kll, 60)
		k[rk+9] = l
		put(rk+10, rk+11, kah, kal, 60)
		put(ke+2, ke+3, klh, kll, 77)
		put(rk+12, rk+13, klh, kll, 94)
		put(rk+14, rk+15, kah, kal, 94)
		put(rk+16, rk+17, klh, kll, 111)
		put(kw+2, kw+3, kah, kal, 111)
	} else {
		c.round, c.long = 24, true
		ke := rk + 24
		d1, d2 = kah^krh, kal^krl
		d2 ^= f(d1, sigma[4])
		d1 ^= f(d2, sigma[5])
		kbh, kbl := d1, d2
		put(kw+0, kw+1, klh, kll, 0)
		put(rk+0, rk+1, kbh, kbl, 0)
		put(rk+2, rk+3, krh, krl, 15)
		put(rk+4, rk+5, kah, kal, 15)
		put(ke+0, ke+1, krh, krl, 30)
		put(rk+6, rk+7, kbh, kbl, 30)
		put(rk+8, rk+9, klh, kll, 45)
		put(rk+10, rk+11, kah, kal, 45)
		put(ke+2, ke+3, klh, kll, 60)
		put(rk+12, rk+13, krh, krl, 60)
		put(rk+14, rk+15, kbh, kbl, 60)
		put(rk+16, rk+17, klh, kll, 77)
		put(ke+4, ke+5, kah, kal, 77)
		put(rk+18, rk+19, krh, krl, 94)
		put(rk+20, rk+21, kah, kal, 94)
		put(rk+22, rk+23, klh, kll, 111)
		put(kw+2, kw+3, kbh, kbl, 111)
	}
	return c, nil
}

// BlockSize returns BlockSize.
func (c *Cipher) BlockSize() int { return BlockSize }

// f is Camellia's F-function: the S-boxes and the P-function of x XOR key,
// one table per input byte.
func f(x, key uint64) uint64 {
	x ^= key
	return sp[0][x>>56] ^ sp[1][x>>48&0xff] ^ sp[2][x>>40&0xff] ^ sp[3][x>>32&0xff] ^
		sp[4][x>>24&0xff] ^ sp[5][x>>16&0xff] ^ sp[6][x>>8&0xff] ^ sp[7][x&0xff]
}

func fl(x, k uint64) uint64 {
	x1, x2 := uint32(x>>32), uint32(x)
	k1, k2 := uint32(k>>32), uint32(k)
	x2 ^= bits.RotateLeft32(x1&k1, 1)
	x1 ^= x2 | k2
	return uint64(x1)<<32 | uint64(x2)
}

func flInv(y, k uint64) uint64 {
	y1, y2 := uint32(y>>32), uint32(y)
	k1, k2 := uint32(k>>32), uint32(k)
	y1 ^= y2 | k2
	y2 ^= bits.RotateLeft32(y1&k1, 1)
	return uint64(y1)<<32 | uint64(y2)
}

// Encrypt encrypts the first block of src into dst; they may overlap exactly.
func (c *Cipher) Encrypt(dst, src []byte) {
	if len(src) < BlockSize || len(dst) < BlockSize {
		panic("cryptvol/cipher/camellia: input not full block")
	}
	k := c.k[:subkeys]
	rk, ke := k[4:4+c.round], k[4+c.round:]
	d1 := binary.BigEndian.Uint64(src[0:]) ^ k[0]
	d2 := binary.BigEndian.Uint64(src[8:]) ^ k[1]
	for i := 0; i < c.round; i += 6 {
		if i > 0 {
			d1 = fl(d1, ke[i/3-2])
			d2 = flInv(d2, ke[i/3-1])
		}
		d2 ^= f(d1, rk[i])
		d1 ^= f(d2, rk[i+1])
		d2 ^= f(d1, rk[i+2])
		d1 ^= f(d2, rk[i+3])
		d2 ^= f(d1, rk[i+4])
		d1 ^= f(d2, rk[i+5])
	}
	binary.BigEndian.PutUint64(dst[0:], d2^k[2])
	binary.BigEndian.PutUint64(dst[8:], d1^k[3])
}

// Decrypt decrypts the first block of src into dst; they may overlap exactly.
func (c *Cipher) Decrypt(dst, src []byte) {
	if len(src) < BlockSize || len(dst) < BlockSize {
		panic("cryptvol/cipher/camellia: input not full block")
	}
	k := c.k[:subkeys]
	rk, ke := k[4:4+c.round], k[4+c.round:]
	d1 := binary.BigEndian.Uint64(src[0:]) ^ k[2]
	d2 := binary.BigEndian.Uint64(src[8:]) ^ k[3]
	for i := c.round - 6; i >= 0; i -= 6 {
		d2 ^= f(d1, rk[i+5])
		d1 ^= f(d2, rk[i+4])
		d2 ^= f(d1, rk[i+3])
		d1 ^= f(d2, rk[i+2])
		d2 ^= f(d1, rk[i+1])
		d1 ^= f(d2, rk[i])
		if i > 0 {
			d1 = fl(d1, ke[i/3-1])
			d2 = flInv(d2, ke[i/3-2])
		}
	}
	binary.BigEndian.PutUint64(dst[0:], d2^k[0])
	binary.BigEndian.PutUint64(dst[8:], d1^k[1])
}
