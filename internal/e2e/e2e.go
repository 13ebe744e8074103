// Package e2e holds what end-to-end tests share: the CRYPTVOL_E2E switch that
// turns a missing tool or privilege into a failure instead of a skip, and the
// leak check that fails a test which leaves a mount, loop or NBD device, or
// cryptvol process behind.
package e2e

import (
	"os"
	"os/exec"
	"testing"
)

// Required reports whether CRYPTVOL_E2E=require is set (as in CI): then every
// end-to-end prerequisite that is missing fails the test.
func Required() bool { return os.Getenv("CRYPTVOL_E2E") == "require" }

// Skip skips the test with reason, or fails it when end-to-end tests are required.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("end-to-end prerequisite missing (CRYPTVOL_E2E=require): %s", reason)
	}
	t.Skip(reason)
}

// Tools skips (or fails) unless every named program is in PATH.
func Tools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Skip(t, n+" is not installed (see .ci/run for the packages)")
		}
	}
}

// Root skips (or fails) unless the test runs as root with /dev/fuse and loop
// devices available.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (mounts and loop devices)")
	}
	for _, p := range []string{"/dev/fuse", "/dev/loop-control"} {
		if _, err := os.Stat(p); err != nil {
			Skip(t, p+" is not available")
		}
	}
}

// KernelNBD skips unless the kernel's NBD client is available: available is
// what nbd.KernelAvailable says (the caller asks, as package nbd's own tests
// cannot be imported from here). It never fails under CRYPTVOL_E2E=require:
// the project's machines have no nbd module, which is a property of the
// machine, not a missing package; the kernel lab (internal/vmtest) runs these
// tests in a guest that has it, and there (CRYPTVOL_LAB=guest) a missing
// client fails.
func KernelNBD(t testing.TB, available error) {
	t.Helper()
	if available != nil {
		if os.Getenv("CRYPTVOL_LAB") == "guest" {
			t.Fatalf("the kernel NBD client is missing in the lab's guest: %v", available)
		}
		t.Skip(NoKernelNBD)
	}
}

// NoKernelNBD is the reason kernel NBD tests give for skipping.
const NoKernelNBD = "kernel NBD path not tested here: /dev/nbd0 does not exist (no nbd module); the kernel lab runs it: scripts/kernel-lab, or TestLab in internal/vmtest"
