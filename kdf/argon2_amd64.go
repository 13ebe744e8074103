//go:build !purego

package kdf

// compressSSE2 is compressGeneric in SSE2 assembly (argon2_amd64.s).
//
//go:noescape
func compressSSE2(out, x, y *argonBlock, xor bool)

// compress sets out = G(x, y), or with xor out ^= G(x, y); out may be x or y.
func compress(out, x, y *argonBlock, xor bool) { compressSSE2(out, x, y, xor) }
