package cipher

import (
	"crypto/subtle"
	"encoding/binary"
)

// xtsBlocks is XTS (IEEE 1619 §5.3) over any 128-bit block cipher, one sector
// one data unit, the tweak the 64-bit little-endian sector number ("plain64").
// It serves every XTS cipher but XTS-AES-256, which has the fast path.
type xtsBlocks struct {
	name        string
	data, tweak blockCipher
	sectorSize  int
}

// multiBlock is implemented by block ciphers that run faster on many blocks
// per call (Serpent's two-block path); len(src) is a multiple of 16, dst may
// be src.
type multiBlock interface {
	EncryptBlocks(dst, src []byte)
	DecryptBlocks(dst, src []byte)
}

// tweakChunk is how many bytes of tweaks the multi-block path computes ahead.
const tweakChunk = 512

func (x *xtsBlocks) SectorSize() int        { return x.sectorSize }
func (x *xtsBlocks) Implementation() string { return x.name }

func (x *xtsBlocks) Encrypt(dst, src []byte, sector uint64) {
	checkBuffers(dst, src, x.sectorSize, sector)
	if m, ok := x.data.(multiBlock); ok {
		x.cryptMulti(m.EncryptBlocks, dst, src, sector)
		return
	}
	x.crypt(x.data.Encrypt, dst, src, sector)
}

func (x *xtsBlocks) Decrypt(dst, src []byte, sector uint64) {
	checkBuffers(dst, src, x.sectorSize, sector)
	if m, ok := x.data.(multiBlock); ok {
		x.cryptMulti(m.DecryptBlocks, dst, src, sector)
		return
	}
	x.crypt(x.data.Decrypt, dst, src, sector)
}

// cryptMulti is crypt for a block cipher with a multi-block path: the tweaks
// of up to tweakChunk bytes are computed first, XORed in, the blocks go
// through f in one call, and the tweaks are XORed in again.
func (x *xtsBlocks) cryptMulti(f func(dst, src []byte), dst, src []byte, sector uint64) {
	t := new([BlockSize]byte)
	tw := new([tweakChunk]byte)
	for off := 0; off < len(src); off += x.sectorSize {
		clear(t[:])
		binary.LittleEndian.PutUint64(t[:8], sector)
		x.tweak.Encrypt(t[:], t[:])
		for i := off; i < off+x.sectorSize; i += tweakChunk {
			n := min(tweakChunk, off+x.sectorSize-i)
			for j := 0; j < n; j += BlockSize {
				copy(tw[j:], t[:])
				mulAlpha(t)
			}
			d := dst[i : i+n]
			subtle.XORBytes(d, src[i:i+n], tw[:n])
			f(d, d)
			subtle.XORBytes(d, d, tw[:n])
		}
		sector++
	}
	clear(t[:])
	clear(tw[:])
}

// crypt applies XTS with the block function f, the data key's encryption or
// decryption; the tweak is always encrypted.
func (x *xtsBlocks) crypt(f func(dst, src []byte), dst, src []byte, sector uint64) {
	t := new([BlockSize]byte)
	for off := 0; off < len(src); off += x.sectorSize {
		clear(t[:])
		binary.LittleEndian.PutUint64(t[:8], sector)
		x.tweak.Encrypt(t[:], t[:])
		for i := off; i < off+x.sectorSize; i += BlockSize {
			d := dst[i : i+BlockSize]
			subtle.XORBytes(d, src[i:i+BlockSize], t[:])
			f(d, d)
			subtle.XORBytes(d, d, t[:])
			mulAlpha(t)
		}
		sector++
	}
	clear(t[:])
}
