//go:build !purego

package cipher

import (
	"slices"
	"testing"

	xcpu "golang.org/x/sys/cpu"
)

// TestCPUDetection cross-checks detectCPU with golang.org/x/sys/cpu where that is
// reliable: AES-NI always, VAES and VPCLMULQDQ only on CPUs with AVX-512 (such as
// the CI machine), since x/sys/cpu reports them only then.
func TestCPUDetection(t *testing.T) {
	t.Logf("implementations: %v; x/sys/cpu: AES=%v AVX2=%v AVX512F=%v BW=%v VL=%v VAES=%v VPCLMULQDQ=%v; zmmDownclocks=%v",
		Implementations(), xcpu.X86.HasAES, xcpu.X86.HasAVX2, xcpu.X86.HasAVX512F, xcpu.X86.HasAVX512BW,
		xcpu.X86.HasAVX512VL, xcpu.X86.HasAVX512VAES, xcpu.X86.HasAVX512VPCLMULQDQ, cpu.zmmDownclocks)
	if cpu.aesni != xcpu.X86.HasAES {
		t.Errorf("AES-NI detected %v, x/sys/cpu says %v", cpu.aesni, xcpu.X86.HasAES)
	}
	if xcpu.X86.HasAVX512F {
		want := xcpu.X86.HasAES && xcpu.X86.HasPCLMULQDQ && xcpu.X86.HasAVX2 &&
			xcpu.X86.HasAVX512VAES && xcpu.X86.HasAVX512VPCLMULQDQ
		if cpu.vaesAVX2 != want {
			t.Errorf("VAES+AVX2 detected %v, x/sys/cpu says %v", cpu.vaesAVX2, want)
		}
	}
	// x/sys/cpu's AVX-512 flags include the OS check of XCR0's opmask and
	// ZMM bits, like ours.
	want512 := cpu.vaesAVX2 && xcpu.X86.HasAVX512F && xcpu.X86.HasAVX512BW && xcpu.X86.HasAVX512VL
	if cpu.vaesAVX512 != want512 {
		t.Errorf("VAES+AVX-512 detected %v, x/sys/cpu says %v", cpu.vaesAVX512, want512)
	}
	impls := Implementations()
	if slices.Contains(impls, "aesni") != cpu.aesni || slices.Contains(impls, "vaes-avx2") != cpu.vaesAVX2 ||
		slices.Contains(impls, "vaes-avx512") != cpu.vaesAVX512 {
		t.Errorf("implementations %v do not match the detected features %+v", impls, cpu)
	}
}

func TestFamilyModel(t *testing.T) {
	for _, tc := range []struct {
		eax           uint32
		family, model uint32
		name          string
	}{
		{0x000606a6, 6, 0x6a, "Intel Xeon Ice Lake-SP"},
		{0x000806f8, 6, 0x8f, "Intel Xeon Sapphire Rapids"},
		{0x00a10f11, 0x19, 0x11, "AMD EPYC Genoa (Zen 4)"},
		{0x00b00f21, 0x1a, 0x02, "AMD EPYC Turin (Zen 5)"},
		{0x00000f41, 0xf, 0x4, "Intel Pentium 4"},
		{0x00000633, 6, 0x3, "Intel Pentium II"},
	} {
		if f, m := familyModel(tc.eax); f != tc.family || m != tc.model {
			t.Errorf("%s: family %#x model %#x, want %#x %#x", tc.name, f, m, tc.family, tc.model)
		}
	}
}

// TestPreferred checks the selection rule of docs/PERFORMANCE.md: vaes-avx512
// first wherever it runs, except on the Intel models whose clock drops with
// 512-bit instructions.
func TestPreferred(t *testing.T) {
	for _, tc := range []struct {
		intel         bool
		family, model uint32
		first         string
	}{
		{true, 6, 0x6a, "vaes-avx2"},   // Ice Lake-SP
		{true, 6, 0x7e, "vaes-avx2"},   // Ice Lake client
		{true, 6, 0x8c, "vaes-avx2"},   // Tiger Lake
		{true, 6, 0x8f, "vaes-avx512"}, // Sapphire Rapids
		{true, 6, 0xcf, "vaes-avx512"}, // Emerald Rapids
		{true, 6, 0xad, "vaes-avx512"}, // Granite Rapids
		{true, 6, 0xa7, "vaes-avx512"}, // Rocket Lake
		{false, 0x19, 0x11, "vaes-avx512"},
		{false, 0x1a, 0x02, "vaes-avx512"},
		{false, 6, 0x6a, "vaes-avx512"}, // not Intel: model numbers mean nothing
	} {
		order := preferred(cpuFeatures{zmmDownclocks: zmmDownclocks(tc.intel, tc.family, tc.model)})
		if order[0].name != tc.first || len(order) != 3 || order[2] != aesniImpl {
			var names []string
			for _, im := range order {
				names = append(names, im.name)
			}
			t.Errorf("intel=%v family %#x model %#x: order %v, want %s first", tc.intel, tc.family, tc.model, names, tc.first)
		}
	}
}
