//go:build !purego

package cipher

// The assembly implementations, registered fastest first. Both keep their round
// keys only in the caller's state memory (keys_amd64.go).

func init() {
	implementations = append([]*implementation{vaesAVX2Impl, aesniImpl}, implementations...)
}

var aesniImpl = &implementation{
	name:      "aesni",
	available: func() bool { return cpu.aesni },
	setup:     setupSchedule,
	encrypt:   func(b blockCiphers, dst, src []byte, ss int, n uint64) { run(encryptAESNI, b, dst, src, ss, n) },
	decrypt:   func(b blockCiphers, dst, src []byte, ss int, n uint64) { run(decryptAESNI, b, dst, src, ss, n) },
}

var vaesAVX2Impl = &implementation{
	name:      "vaes-avx2",
	available: func() bool { return cpu.vaesAVX2 },
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
func encryptVAESAVX2(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)

//go:noescape
func decryptVAESAVX2(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)
