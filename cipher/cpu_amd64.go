//go:build !purego

package cipher

// CPU feature detection for the assembly paths, from CPUID and XGETBV directly.
//
// golang.org/x/sys/cpu is not used: it reports VAES and VPCLMULQDQ only when
// AVX-512F is present, so it misses VAES+AVX2 CPUs such as AMD Zen 3 and Intel
// Alder Lake, and machines whose hypervisor hides AVX-512. The few bits needed here
// do not justify a dependency on github.com/klauspost/cpuid either.

// cpuid executes CPUID with EAX=leaf and ECX=subleaf.
func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

// xgetbv returns the low 32 bits of XCR0, the state components the OS saves.
func xgetbv() (xcr0 uint32)

// cpuFeatures are the CPU capabilities the implementations depend on.
type cpuFeatures struct {
	aesni    bool // AES-NI (SSE2 is part of amd64)
	vaesAVX2 bool // 256-bit VAES and VPCLMULQDQ, AVX2, and YMM state saved by the OS
	// vaesAVX512 is vaesAVX2 plus AVX-512 F, BW and VL, and the opmask
	// registers and all 32 ZMM registers saved by the OS.
	vaesAVX512 bool
	// zmmDownclocks marks the CPUs on which vaes-avx512 is not preferred
	// (see zmmDownclocks).
	zmmDownclocks bool
}

var cpu = detectCPU()

func detectCPU() cpuFeatures {
	var f cpuFeatures
	maxLeaf, vendor1, vendor3, vendor2 := cpuid(0, 0)
	if maxLeaf < 1 {
		return f
	}
	eax1, _, ecx1, _ := cpuid(1, 0)
	var ebx7, ecx7 uint32
	if maxLeaf >= 7 {
		_, ebx7, ecx7, _ = cpuid(7, 0)
	}
	has := func(reg uint32, bit uint) bool { return reg&(1<<bit) != 0 }
	// XGETBV may only be executed when the OS has set CR4.OSXSAVE. XCR0 bits
	// 1 and 2 say that the OS saves the XMM and YMM registers on context
	// switches; bits 5, 6 and 7 the opmask registers, the upper halves of
	// ZMM0-15, and ZMM16-31.
	var xcr0 uint32
	if has(ecx1, 27) {
		xcr0 = xgetbv()
	}
	osYMM := xcr0&0x06 == 0x06
	osZMM := xcr0&0xe6 == 0xe6

	f.aesni = has(ecx1, 25)
	f.vaesAVX2 = f.aesni && osYMM &&
		has(ecx1, 1) && // PCLMULQDQ
		has(ecx1, 28) && // AVX
		has(ebx7, 5) && // AVX2
		has(ecx7, 9) && // VAES
		has(ecx7, 10) // VPCLMULQDQ
	f.vaesAVX512 = f.vaesAVX2 && osZMM &&
		has(ebx7, 16) && // AVX512F
		has(ebx7, 30) && // AVX512BW
		has(ebx7, 31) // AVX512VL
	intel := vendor1 == 0x756e6547 && vendor2 == 0x49656e69 && vendor3 == 0x6c65746e // "GenuineIntel"
	family, model := familyModel(eax1)
	f.zmmDownclocks = zmmDownclocks(intel, family, model)
	return f
}

// familyModel decodes the display family and model from CPUID leaf 1 EAX
// (Intel SDM vol. 2A, CPUID, "Version Information"; the same rule on AMD).
func familyModel(eax uint32) (family, model uint32) {
	family = eax >> 8 & 0xf
	model = eax >> 4 & 0xf
	if family == 0x6 || family == 0xf {
		model |= eax >> 16 & 0xf << 4
	}
	if family == 0xf {
		family += eax >> 20 & 0xff
	}
	return family, model
}

// zmmDownclocks reports whether the CPU is one of the Intel models that lower
// the clock of a core for some milliseconds after it runs 512-bit
// instructions, which slows whatever else the core runs, while 512-bit VAES
// is little faster than 256-bit there: Ice Lake (client and server) and Tiger
// Lake, the Intel CPUs with both VAES and AVX-512 before Sapphire Rapids and
// Rocket Lake. On them New prefers vaes-avx2. The list is the Linux kernel's
// (arch/x86/kernel/cpu/intel.c, zmm_exclusion_list, which makes its AES-XTS
// use 256-bit vectors there), less Skylake-X, which has no VAES. AMD CPUs
// keep their clock with 512-bit instructions.
func zmmDownclocks(intel bool, family, model uint32) bool {
	if !intel || family != 6 {
		return false
	}
	switch model {
	case 0x6a, 0x6c, // Ice Lake X and D (Xeon)
		0x7d, 0x7e, 0x9d, // Ice Lake, Ice Lake L, Ice Lake NNPI
		0x8c, 0x8d: // Tiger Lake L and H
		return true
	}
	return false
}
