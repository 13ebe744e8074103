package cipher

// Sector is a length-preserving cipher for disk sectors of one fixed size: the
// fast XTS-AES-256 path (*XTS), a generic XTS over another block cipher, CBC with
// an IV generator, or a VeraCrypt cascade of XTS ciphers (see NewSector).
//
// sector is the number the IV or tweak is made from: the caller adds any offset
// its format defines (LUKS2 iv_tweak, a data offset, VeraCrypt's absolute
// 512-byte unit numbers). Encrypt and Decrypt take one or many consecutive
// sectors, numbered from sector upwards, with the buffer rules of (*XTS).Encrypt:
// len(src) a multiple of SectorSize, len(dst) at least len(src), dst and src the
// same buffer or not overlapping. Breaking them is a caller bug and panics; no
// input read from a file can make a Sector panic, since lengths are the caller's.
//
// Every Sector is safe for concurrent use: none holds mutable state after it
// is made.
type Sector interface {
	Encrypt(dst, src []byte, sector uint64)
	Decrypt(dst, src []byte, sector uint64)
	// SectorSize returns the bytes per sector the cipher was made for.
	SectorSize() int
	// Implementation names the code path, e.g. "vaes-avx2" for the fast
	// AES path or "xts(serpent)" for the generic one.
	Implementation() string
}

var _ Sector = (*XTS)(nil)

// checkBuffers applies the buffer rules every Sector shares.
func checkBuffers(dst, src []byte, sectorSize int, sector uint64) {
	if len(src)%sectorSize != 0 {
		panic("cryptvol/cipher: buffer is not a whole number of sectors")
	}
	if len(dst) < len(src) {
		panic("cryptvol/cipher: output smaller than input")
	}
	if inexactOverlap(dst[:len(src)], src) {
		panic("cryptvol/cipher: invalid buffer overlap")
	}
	if n := uint64(len(src) / sectorSize); n > 0 && sector+n-1 < sector {
		panic("cryptvol/cipher: sector number overflows")
	}
}
