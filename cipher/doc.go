// Package cipher implements XTS-AES-256 for disk sectors, the "aes-xts-plain64"
// cipher of docs/FORMAT.md §6: each sector is one XTS data unit whose tweak is the
// 128-bit little-endian sector number.
//
// An XTS cipher encrypts or decrypts one or many consecutive sectors per call, in
// place or out of place, so callers hand it whole requests.
//
// XTS provides confidentiality only. It does not provide any authentication: a
// modified ciphertext sector decrypts, without error, to unpredictable plaintext. It
// is deterministic: the same plaintext written to the same sector gives the same
// ciphertext, and an observer comparing two copies of a vault learns which 16-byte
// blocks changed between them.
//
// Round keys are expanded into memory the caller provides (see New), so that the
// caller can keep them in locked memory and own their wiping. On amd64 the
// assembly implementations ("vaes-avx2": 256-bit VAES with AVX2 and VPCLMULQDQ;
// "aesni": AES-NI) hold the round keys only there and read them from it on every
// call. The portable implementation ("generic", used on other architectures, on
// CPUs without AES-NI and with the purego build tag) goes through crypto/aes, which
// keeps its own copy on the Go heap. New picks the fastest one the CPU supports;
// all give identical output.
//
// Misuse by the caller (a buffer that is not a whole number of sectors, dst and src
// overlapping other than exactly) panics with a "cryptvol/cipher:" prefix; no input
// from a file can cause a panic, because lengths are the caller's.
package cipher
