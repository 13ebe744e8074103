package cipher

import (
	"crypto/subtle"
	"encoding/binary"
)

// cbcSector is CBC, one chain per sector, its IV the 64-bit little-endian
// sector number ("plain64"), encrypted under essiv when that is set (dm-crypt's
// ESSIV: the same block cipher keyed with SHA-256 of the volume key).
type cbcSector struct {
	name       string
	block      blockCipher
	essiv      blockCipher // nil for plain64
	sectorSize int
}

func (c *cbcSector) SectorSize() int        { return c.sectorSize }
func (c *cbcSector) Implementation() string { return c.name }

func (c *cbcSector) iv(iv *[BlockSize]byte, sector uint64) {
	clear(iv[:])
	binary.LittleEndian.PutUint64(iv[:8], sector)
	if c.essiv != nil {
		c.essiv.Encrypt(iv[:], iv[:])
	}
}

func (c *cbcSector) Encrypt(dst, src []byte, sector uint64) {
	checkBuffers(dst, src, c.sectorSize, sector)
	prev := new([BlockSize]byte)
	for off := 0; off < len(src); off += c.sectorSize {
		c.iv(prev, sector)
		for i := off; i < off+c.sectorSize; i += BlockSize {
			d := dst[i : i+BlockSize]
			subtle.XORBytes(d, src[i:i+BlockSize], prev[:])
			c.block.Encrypt(d, d)
			copy(prev[:], d)
		}
		sector++
	}
	clear(prev[:])
}

func (c *cbcSector) Decrypt(dst, src []byte, sector uint64) {
	checkBuffers(dst, src, c.sectorSize, sector)
	prev, cur := new([BlockSize]byte), new([BlockSize]byte)
	for off := 0; off < len(src); off += c.sectorSize {
		c.iv(prev, sector)
		for i := off; i < off+c.sectorSize; i += BlockSize {
			copy(cur[:], src[i:i+BlockSize]) // dst may be src
			d := dst[i : i+BlockSize]
			c.block.Decrypt(d, cur[:])
			subtle.XORBytes(d, d, prev[:])
			prev, cur = cur, prev
		}
		sector++
	}
	clear(prev[:])
	clear(cur[:])
}
