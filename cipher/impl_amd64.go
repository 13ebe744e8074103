//go:build !purego

package cipher

// The assembly implementations, registered in the order New prefers them. All
// keep their round keys only in the caller's state memory (keys_amd64.go).

func init() {
	implementations = append(preferred(cpu), implementations...)
}

// preferred orders the assembly implementations for a CPU: fastest first,
// except that vaes-avx512 goes after vaes-avx2 on the Intel CPUs where 512-bit
// instructions lower the core's clock (zmmDownclocks). The order depends only
// on CPUID, never on a measurement, so the same CPU always selects the same
// implementation (the output is identical either way).
func preferred(f cpuFeatures) []*implementation {
	if f.zmmDownclocks {
		return []*implementation{vaesAVX2Impl, vaesAVX512Impl, aesniImpl}
	}
	return []*implementation{vaesAVX512Impl, vaesAVX2Impl, aesniImpl}
}

var aesniImpl = &implementation{
	name:      "aesni",
	available: func() bool { return cpu.aesni },
	needs:     "AES-NI",
	setup:     setupSchedule,
	encrypt:   func(b blockCiphers, dst, src []byte, ss int, n uint64) { run(encryptAESNI, b, dst, src, ss, n) },
	decrypt:   func(b blockCiphers, dst, src []byte, ss int, n uint64) { run(decryptAESNI, b, dst, src, ss, n) },
}

var vaesAVX512Impl = &implementation{
	name:      "vaes-avx512",
	available: func() bool { return cpu.vaesAVX512 },
	needs:     "VAES, VPCLMULQDQ and AVX-512 F, BW and VL with the opmask and ZMM state enabled by the OS",
	setup:     setupSchedule,
	encrypt:   func(b blockCiphers, dst, src []byte, ss int, n uint64) { run(encryptVAESAVX512, b, dst, src, ss, n) },
	decrypt:   func(b blockCiphers, dst, src []byte, ss int, n uint64) { run(decryptVAESAVX512, b, dst, src, ss, n) },
}

var vaesAVX2Impl = &implementation{
	name:      "vaes-avx2",
	available: func() bool { return cpu.vaesAVX2 },
	needs:     "VAES, VPCLMULQDQ and AVX2 with the YMM state enabled by the OS",
	setup:     setupSchedule,
	encrypt:   func(b blockCiphers, dst, src []byte, ss int, n uint64) { run(encryptVAESAVX2, b, dst, src, ss, n) },
	decrypt:   func(b blockCiphers, dst, src []byte, ss int, n uint64) { run(decryptVAESAVX2, b, dst, src, ss, n) },
}

func setupSchedule(key, state []byte) (blockCiphers, error) {
	return newSchedule(key, state), nil
}

// xtsFunc is the signature of the assembly entry points: they process sectors
// consecutive sectors of sectorSize bytes (a positive multiple of 16), the first
// numbered sector, computing each sector's tweak themselves.
type xtsFunc func(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)

// maxCallBytes bounds the work of one assembly call. Assembly functions cannot be
// preempted, so a multi-megabyte request is split to keep scheduling and garbage
// collection pauses short (256 KiB takes some tens of microseconds); the extra
// calls cost nothing measurable at this size.
const maxCallBytes = 256 << 10

func run(f xtsFunc, b blockCiphers, dst, src []byte, sectorSize int, sector uint64) {
	ks := b.(*schedule)
	if len(src) <= maxCallBytes { // the common case, kept free of chunking arithmetic
		if len(src) > 0 {
			f(ks, &dst[0], &src[0], sectorSize, len(src)/sectorSize, sector)
		}
		return
	}
	per := max(1, maxCallBytes/sectorSize)
	for len(src) > 0 {
		n := min(len(src)/sectorSize, per)
		f(ks, &dst[0], &src[0], sectorSize, n, sector)
		dst, src = dst[n*sectorSize:], src[n*sectorSize:]
		sector += uint64(n)
	}
}

//go:noescape
func encryptAESNI(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)

//go:noescape
func decryptAESNI(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)

//go:noescape
func encryptVAESAVX512(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)

//go:noescape
func decryptVAESAVX512(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)

//go:noescape
func encryptVAESAVX2(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)

//go:noescape
func decryptVAESAVX2(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)
