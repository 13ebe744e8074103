package kuznyechik

// The tables, built at start-up: encTable[i][v] is L(S(x)) for the block x
// whose byte i is v and the rest 0; decTable[i][v] is L⁻¹(S⁻¹(x)) and
// linvTable[i][v] L⁻¹(x) for the same x. As all three maps are linear after
// the bytewise substitution, a block's image is the XOR of its 16 bytes'.
var (
	encTable, decTable, linvTable [16][256][2]uint64
	piInv                         [256]uint8
	// roundConst are the key schedule's C_i = L(Vec128(i)), i = 1..32.
	roundConst [32][2]uint64
)

// lCoef are the coefficients of the linear map ℓ on a15..a0, in block byte
// order (byte 0 is a15).
var lCoef = [16]uint8{148, 32, 133, 16, 194, 192, 1, 251, 1, 192, 194, 16, 133, 32, 148, 1}

// gfMul multiplies in GF(2^8) modulo x^8 + x^7 + x^6 + x + 1.
func gfMul(a, b uint8) uint8 {
	var p uint8
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		hi := a & 0x80
		a <<= 1
		if hi != 0 {
			a ^= 0xc3
		}
		b >>= 1
	}
	return p
}

// lBytes applies L (16 rounds of R) to the block b in place.
func lBytes(b *[16]byte) {
	for range 16 {
		var x uint8
		for i, c := range lCoef {
			x ^= gfMul(b[i], c)
		}
		copy(b[1:], b[:15])
		b[0] = x
	}
}

// linvBytes applies L⁻¹ to b in place.
func linvBytes(b *[16]byte) {
	for range 16 {
		x := b[0]
		copy(b[:15], b[1:])
		for i := range 15 {
			x ^= gfMul(b[i], lCoef[i])
		}
		b[15] = x
	}
}

func pair(b *[16]byte) [2]uint64 {
	h, l := load(b[:])
	return [2]uint64{h, l}
}

func init() {
	for x := range 256 {
		piInv[pi[x]] = uint8(x)
	}
	for i := range 16 {
		for v := range 256 {
			var b [16]byte
			b[i] = pi[v]
			lBytes(&b)
			encTable[i][v] = pair(&b)

			b = [16]byte{}
			b[i] = piInv[v]
			linvBytes(&b)
			decTable[i][v] = pair(&b)

			b = [16]byte{}
			b[i] = uint8(v)
			linvBytes(&b)
			linvTable[i][v] = pair(&b)
		}
	}
	for i := range 32 {
		var b [16]byte
		b[15] = uint8(i + 1)
		lBytes(&b)
		roundConst[i] = pair(&b)
	}
}
