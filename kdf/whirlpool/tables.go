package whirlpool

// The tables, built at start-up from the mini-boxes: c[k][x] is the
// contribution of S-box output S[x] in column k to a row (the circulant
// matrix cir(1, 1, 4, 1, 8, 5, 2, 9) over GF(2^8) modulo x^8+x^4+x^3+x^2+1),
// and rc the round constants.
var (
	c  [8][256]uint64
	rc [rounds]uint64
)

// The mini-boxes of the S-box (ISO/IEC 10118-3, the Whirlpool paper §3.2).
var (
	miniE = [16]uint8{0x1, 0xB, 0x9, 0xC, 0xD, 0x6, 0xF, 0x3, 0xE, 0x8, 0x7, 0x4, 0xA, 0x2, 0x5, 0x0}
	miniR = [16]uint8{0x7, 0xC, 0xB, 0xD, 0xE, 0x4, 0x9, 0xF, 0x6, 0x3, 0x8, 0xA, 0x2, 0x5, 0x1, 0x0}
)

func gfMul(a, b uint8) uint8 {
	var p uint8
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		hi := a & 0x80
		a <<= 1
		if hi != 0 {
			a ^= 0x1d
		}
		b >>= 1
	}
	return p
}

func sbox() [256]uint8 {
	var inv [16]uint8
	for i, v := range miniE {
		inv[v] = uint8(i)
	}
	var s [256]uint8
	for x := range 256 {
		a, b := miniE[x>>4], inv[x&15]
		r := miniR[a^b]
		s[x] = miniE[a^r]<<4 | inv[b^r]
	}
	return s
}

func init() {
	s := sbox()
	row := [8]uint8{1, 1, 4, 1, 8, 5, 2, 9}
	for x := range 256 {
		var v uint64
		for j, m := range row {
			v |= uint64(gfMul(s[x], m)) << (56 - 8*j)
		}
		for k := range 8 {
			c[k][x] = v>>(8*k) | v<<(64-8*k)
		}
	}
	for r := range rounds {
		var v uint64
		for j := range 8 {
			v |= uint64(s[8*r+j]) << (56 - 8*j)
		}
		rc[r] = v
	}
}
