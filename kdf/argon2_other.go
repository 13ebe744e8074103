//go:build !amd64 || purego

package kdf

// compress sets out = G(x, y), or with xor out ^= G(x, y); out may be x or y.
func compress(out, x, y *argonBlock, xor bool) { compressGeneric(out, x, y, xor) }
