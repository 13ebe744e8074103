// Package cipher implements XTS-AES-256 for disk sectors, the "aes-xts-plain64"
// cipher of docs/FORMAT.md §6: each sector is one XTS data unit whose tweak is the
// 128-bit little-endian sector number. It also runs the other sector ciphers of
// LUKS and VeraCrypt/TrueCrypt volumes (see "Other sector ciphers" below).
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
// assembly implementations ("vaes-avx512": 512-bit VAES with AVX-512 and
// VPCLMULQDQ; "vaes-avx2": 256-bit VAES with AVX2 and VPCLMULQDQ; "aesni":
// AES-NI) hold the round keys only there, read them from it on every call, and
// clear the vector registers that held them before returning. The portable
// implementation ("generic", used on other architectures, on CPUs without AES-NI
// and with the purego build tag) goes through crypto/aes, which keeps its own copy
// on the Go heap. All give identical output.
//
// New picks by CPUID alone, never by timing, so a CPU always gets the same
// implementation: vaes-avx512 where the CPU and OS support it, then vaes-avx2,
// aesni, generic. The exception is the Intel CPUs that lower a core's clock for
// some milliseconds after 512-bit instructions (Ice Lake and Tiger Lake, the list
// the Linux kernel uses for its own AES-XTS), where the slowdown would fall on
// everything else the core runs: there vaes-avx2 comes first. AMD Zen 5 runs
// 512-bit instructions at full width and clock; Zen 4 at full clock as two
// 256-bit halves, where vaes-avx512 still saves instructions and round-key
// loads (not measured on Zen 4 here). docs/PERFORMANCE.md has the figures.
//
// Misuse by the caller (a buffer that is not a whole number of sectors, dst and src
// overlapping other than exactly) panics with a "cryptvol/cipher:" prefix; no input
// from a file can cause a panic, because lengths are the caller's.
//
// # Other sector ciphers
//
// Sector is the interface every sector cipher satisfies, *XTS included. A Spec
// names one as dm-crypt does ("aes-xts-plain64", "aes-cbc-essiv:sha256",
// "serpent-xts-plain64", "serpent-twofish-aes-xts-plain64", with the key size in
// bytes); ParseSpec reads LUKS's cipher strings, VeraCryptSpec VeraCrypt's
// algorithm names ("AES-Twofish-Serpent"), and NewSector makes the Sector. What
// runs where:
//
//   - "aes-xts-plain64" with a 64-byte key: the fast path above, *XTS itself.
//   - Any other XTS: generic XTS (IEEE 1619) over a 128-bit block cipher, one
//     block at a time; "plain64" tweaks with the 64-bit sector number, "plain"
//     with its low 32 bits (sector 2^32 wraps to 0, as in dm-crypt).
//   - CBC with the IV "plain64", "plain" or "essiv:sha256" (dm-crypt's ESSIV: the
//     sector number encrypted under SHA-256 of the key).
//   - VeraCrypt/TrueCrypt cascades: each cipher is a whole XTS layer with its
//     own data and tweak key, applied in turn; the key is all data keys, then
//     all tweak keys, in the order the ciphers are applied (NewSector). A layer
//     that is AES-256 uses the fast path.
//
// The block ciphers: AES (crypto/aes outside the fast path), Serpent
// (cipher/serpent, bitsliced), Twofish (golang.org/x/crypto/twofish), Camellia
// (cipher/camellia, RFC 3713) and Kuznyechik (cipher/kuznyechik, GOST R
// 34.12-2015). Serpent, Camellia and Kuznyechik expand their round keys into the
// caller's state only; Twofish's tables are built by x/crypto on the heap, then
// moved into the state and the heap copy zeroed; AES outside the fast path
// (AES-128/192-XTS, CBC, ESSIV) keeps them on the heap in crypto/aes (SECURITY.md).
// Spec.StateSize gives the state a spec needs. BenchmarkSpecs lists the ciphers
// `cryptvol benchmark` measures.
//
// XTS's limits above hold for every XTS spec; CBC is weaker still: a change to
// one plaintext block changes every later ciphertext block of the sector but
// not the earlier ones, and with "plain" or "plain64" IVs (not ESSIV) the IVs
// are predictable, which allows watermarking attacks (dm-crypt's reason for
// ESSIV). Neither authenticates anything.
package cipher
