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
}

var cpu = detectCPU()

func detectCPU() cpuFeatures {
	var f cpuFeatures
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 1 {
		return f
	}
	_, _, ecx1, _ := cpuid(1, 0)
	var ebx7, ecx7 uint32
	if maxLeaf >= 7 {
		_, ebx7, ecx7, _ = cpuid(7, 0)
	}
	has := func(reg uint32, bit uint) bool { return reg&(1<<bit) != 0 }
	// XGETBV may only be executed when the OS has set CR4.OSXSAVE; XCR0 bits 1
	// and 2 say that it saves the XMM and YMM registers on context switches.
	osYMM := has(ecx1, 27) && xgetbv()&6 == 6

	f.aesni = has(ecx1, 25)
	f.vaesAVX2 = f.aesni && osYMM &&
		has(ecx1, 1) && // PCLMULQDQ
		has(ecx1, 28) && // AVX
		has(ebx7, 5) && // AVX2
		has(ecx7, 9) && // VAES
		has(ecx7, 10) // VPCLMULQDQ
	return f
}
