package luks

import (
	"encoding/binary"
	"fmt"
	"hash"
	"io"
)

// The anti-forensic splitter (AF) of LUKS1, kept by LUKS2 keyslots of type
// "luks1" AF: a key of n bytes is stored as stripes × n bytes, of which all but
// the last are random and the last is the key XORed with a hash-diffused
// combination of the others. Destroying any part of the stored material
// destroys the key, which is the point on media that remap sectors.
//
// Both versions use exactly 4000 stripes: cryptsetup refuses other counts in
// LUKS1 and ignores the field in LUKS2, so this package requires 4000 in both.
const afStripes = 4000

// afSize is the size of the split material for a key of n bytes, rounded up
// to whole 512-byte sectors as it is stored (cryptsetup's AF_split_sectors).
func afSize(n int) int {
	return (n*afStripes + 511) / 512 * 512
}

// diffuse replaces buf by its diffusion under h: each digest-sized block i
// (the last one possibly shorter) becomes the first bytes of
// H(be32(i) || block).
func diffuse(buf []byte, h hash.Hash, scratch []byte) {
	size := h.Size()
	var iv [4]byte
	for i := 0; len(buf) > 0; i++ {
		n := min(size, len(buf))
		h.Reset()
		binary.BigEndian.PutUint32(iv[:], uint32(i))
		h.Write(iv[:])
		h.Write(buf[:n])
		scratch = h.Sum(scratch[:0])
		copy(buf[:n], scratch)
		buf = buf[n:]
	}
	clear(scratch[:cap(scratch)])
}

// afMerge recovers into key the n = len(key) bytes split into src (at least
// afStripes × n bytes) with the hash newHash. acc is scratch memory of len(key)
// bytes that the caller owns (and wipes).
func afMerge(key, src, acc []byte, newHash func() hash.Hash) error {
	n := len(key)
	if len(acc) != n || len(src) < n*afStripes {
		return fmt.Errorf("internal error: AF merge of %d bytes from %d", n, len(src))
	}
	h := newHash()
	scratch := make([]byte, 0, h.Size())
	clear(acc)
	for i := 0; i < afStripes-1; i++ {
		xorInto(acc, src[i*n:(i+1)*n])
		diffuse(acc, h, scratch)
	}
	for j := range key {
		key[j] = acc[j] ^ src[(afStripes-1)*n+j]
	}
	return nil
}

// afSplit writes into dst (at least afStripes × len(key) bytes) the split of
// key: random stripes from rand, and the last computed so that afMerge gives
// key back. acc is scratch memory of len(key) bytes that the caller owns.
func afSplit(dst, key, acc []byte, newHash func() hash.Hash, rand io.Reader) error {
	n := len(key)
	if len(acc) != n || len(dst) < n*afStripes {
		return fmt.Errorf("internal error: AF split of %d bytes into %d", n, len(dst))
	}
	if _, err := io.ReadFull(rand, dst[:(afStripes-1)*n]); err != nil {
		return fmt.Errorf("reading random bytes: %w", err)
	}
	h := newHash()
	scratch := make([]byte, 0, h.Size())
	clear(acc)
	for i := 0; i < afStripes-1; i++ {
		xorInto(acc, dst[i*n:(i+1)*n])
		diffuse(acc, h, scratch)
	}
	for j := range key {
		dst[(afStripes-1)*n+j] = acc[j] ^ key[j]
	}
	clear(dst[afStripes*n:])
	return nil
}

func xorInto(dst, src []byte) {
	for i := range dst {
		dst[i] ^= src[i]
	}
}
