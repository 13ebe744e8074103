// Package kuznyechik implements Kuznyechik, the 128-bit block cipher of GOST R
// 34.12-2015 (RFC 7801), with its 256-bit key.
//
// Bytes are in the order of the standard's hex strings, as VeraCrypt and
// RFC 7801's examples use them: the first byte of a block is the standard's
// a15, the first byte of the key its k255..k248.
//
// Each round's S and L steps are one table look-up per byte (16 tables of 256
// 128-bit values, built at start-up from pi and L; decryption uses the inverse
// tables with the round keys moved through L's inverse). Look-ups are indexed
// by key-dependent data, as in every table-driven Kuznyechik (VeraCrypt's,
// the 8-bit reference's); the tables are public, only the indices are secret.
//
// The round keys are expanded into memory the caller provides (see New), the
// way cryptvol keeps every key in locked memory; nothing of the key stays on the
// Go heap.
package kuznyechik

import (
	"encoding/binary"
	"fmt"

	"github.com/cryptvol/cryptvol/cipher/internal/keymem"
)

const (
	// BlockSize is Kuznyechik's block size in bytes.
	BlockSize = 16

	// KeySize is Kuznyechik's key size in bytes.
	KeySize = 32

	// words is the schedule: K1..K10 for encryption, then L⁻¹(K2..K10)
	// for decryption, two little-endian 64-bit words each.
	words = (10 + 9) * 2

	// StateSize is the bytes of caller memory New needs for the round keys,
	// wherever that memory starts.
	StateSize = words*8 + keymem.Align - 1
)

// KeySizeError is returned for a key that is not 32 bytes.
type KeySizeError int

func (k KeySizeError) Error() string {
	return fmt.Sprintf("cryptvol/cipher/kuznyechik: invalid key size %d", int(k))
}

// Cipher is Kuznyechik under one key. It satisfies crypto/cipher.Block and is
// safe for concurrent use.
type Cipher struct {
	k []uint64 // the schedule, inside the caller's state
}

// New expands key (32 bytes) into state, which must be at least StateSize
// bytes and stay allocated and unmodified while the cipher is in use; the
// caller owns and wipes it. key is not retained.
func New(key, state []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, KeySizeError(len(key))
	}
	k, err := keymem.Uint64s(state, words)
	if err != nil {
		return nil, err
	}
	// (a1, a0) are the two key halves; each Feistel step F[C](a1, a0) =
	// (LSX[C](a1) ^ a0, a1), eight steps per pair of round keys.
	a1h, a1l := load(key[0:16])
	a0h, a0l := load(key[16:32])
	k[0], k[1], k[2], k[3] = a1h, a1l, a0h, a0l
	for i := 1; i <= 4; i++ {
		for j := 1; j <= 8; j++ {
			ch, cl := roundConst[8*(i-1)+j-1][0], roundConst[8*(i-1)+j-1][1]
			th, tl := ls(a1h^ch, a1l^cl)
			a1h, a1l, a0h, a0l = th^a0h, tl^a0l, a1h, a1l
		}
		k[4*i], k[4*i+1], k[4*i+2], k[4*i+3] = a1h, a1l, a0h, a0l
	}
	a1h, a1l, a0h, a0l = 0, 0, 0, 0
	for i := 1; i < 10; i++ {
		k[20+2*(i-1)], k[20+2*(i-1)+1] = linv(k[2*i], k[2*i+1])
	}
	return &Cipher{k: k}, nil
}

// load splits a 16-byte block into two little-endian words: h holds bytes
// 0..7, l bytes 8..15.
func load(b []byte) (h, l uint64) {
	return binary.LittleEndian.Uint64(b[0:8]), binary.LittleEndian.Uint64(b[8:16])
}

func store(b []byte, h, l uint64) {
	binary.LittleEndian.PutUint64(b[0:8], h)
	binary.LittleEndian.PutUint64(b[8:16], l)
}

// lookup passes the block h, l through table t.
func lookup(t *[16][256][2]uint64, h, l uint64) (uint64, uint64) {
	var rh, rl uint64
	for i := range 8 {
		e := &t[i][uint8(h>>(8*i))]
		rh ^= e[0]
		rl ^= e[1]
		e = &t[8+i][uint8(l>>(8*i))]
		rh ^= e[0]
		rl ^= e[1]
	}
	return rh, rl
}

// ls is L(S(x)).
func ls(h, l uint64) (uint64, uint64) { return lookup(&encTable, h, l) }

// linv is L⁻¹(x).
func linv(h, l uint64) (uint64, uint64) { return lookup(&linvTable, h, l) }

// BlockSize returns BlockSize.
func (c *Cipher) BlockSize() int { return BlockSize }

// Encrypt encrypts the first block of src into dst; they may overlap exactly.
func (c *Cipher) Encrypt(dst, src []byte) {
	if len(src) < BlockSize || len(dst) < BlockSize {
		panic("cryptvol/cipher/kuznyechik: input not full block")
	}
	k := c.k[:words]
	h, l := load(src)
	for i := 0; i < 9; i++ {
		h, l = lookup(&encTable, h^k[2*i], l^k[2*i+1])
	}
	store(dst, h^k[18], l^k[19])
}

// Decrypt decrypts the first block of src into dst; they may overlap exactly.
func (c *Cipher) Decrypt(dst, src []byte) {
	if len(src) < BlockSize || len(dst) < BlockSize {
		panic("cryptvol/cipher/kuznyechik: input not full block")
	}
	k := c.k[:words]
	// x ^= K10; then for i = 9..1: x = S⁻¹(L⁻¹(x)) ^ K_i. With y = L⁻¹(x)
	// carried between rounds, each middle round is one table pass:
	// y = L⁻¹(S⁻¹(y)) ^ L⁻¹(K_i).
	h, l := load(src)
	h, l = linv(h, l)
	dk := k[20:]
	h ^= dk[16] // L⁻¹(K10)
	l ^= dk[17]
	for i := 9; i >= 2; i-- {
		h, l = lookup(&decTable, h, l)
		h ^= dk[2*(i-2)]
		l ^= dk[2*(i-2)+1]
	}
	var b [16]byte
	store(b[:], h, l)
	for i := range b {
		b[i] = piInv[b[i]]
	}
	h, l = load(b[:])
	store(dst, h^k[0], l^k[1])
	clear(b[:])
}
