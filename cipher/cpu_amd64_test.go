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
	t.Logf("implementations: %v; x/sys/cpu: AES=%v AVX2=%v AVX512F=%v VAES=%v VPCLMULQDQ=%v",
		Implementations(), xcpu.X86.HasAES, xcpu.X86.HasAVX2, xcpu.X86.HasAVX512F,
		xcpu.X86.HasAVX512VAES, xcpu.X86.HasAVX512VPCLMULQDQ)
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
	impls := Implementations()
	if slices.Contains(impls, "aesni") != cpu.aesni || slices.Contains(impls, "vaes-avx2") != cpu.vaesAVX2 {
		t.Errorf("implementations %v do not match the detected features %+v", impls, cpu)
	}
}
