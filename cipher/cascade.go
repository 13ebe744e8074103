package cipher

import "strings"

// cascade is a VeraCrypt/TrueCrypt cascade: every layer is a whole XTS
// cipher with its own data and tweak keys, applied to the whole buffer in
// turn (layers[0] first when encrypting, last when decrypting), as VeraCrypt's
// EncryptBuffer and cryptsetup's TCRYPT_decrypt_hdr do.
type cascade struct {
	layers     []Sector
	sectorSize int
}

func (c *cascade) SectorSize() int { return c.sectorSize }

func (c *cascade) Implementation() string {
	var names []string
	for _, l := range c.layers {
		names = append(names, l.Implementation())
	}
	return "cascade(" + strings.Join(names, ",") + ")"
}

func (c *cascade) Encrypt(dst, src []byte, sector uint64) {
	checkBuffers(dst, src, c.sectorSize, sector)
	c.layers[0].Encrypt(dst, src, sector)
	out := dst[:len(src)]
	for _, l := range c.layers[1:] {
		l.Encrypt(out, out, sector)
	}
}

func (c *cascade) Decrypt(dst, src []byte, sector uint64) {
	checkBuffers(dst, src, c.sectorSize, sector)
	last := len(c.layers) - 1
	c.layers[last].Decrypt(dst, src, sector)
	out := dst[:len(src)]
	for i := last - 1; i >= 0; i-- {
		c.layers[i].Decrypt(out, out, sector)
	}
}
