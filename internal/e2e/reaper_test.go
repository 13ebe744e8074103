//go:build linux

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	ReapIfAsked()
	os.Exit(m.Run())
}

// reaperChildEnv names the directory TestReaperChild mounts a tmpfs on.
const reaperChildEnv = "CRYPTVOL_TEST_REAPER_CHILD"

// TestReaperUndoesAfterSIGKILL runs TestReaperChild in a test binary of its
// own, which mounts a tmpfs, tells its reaper, and dies of SIGKILL with no
// cleanup run: the reaper must unmount it. A second child that ends
// normally, having unmounted its own, must find its reaper gone quietly.
func TestReaperUndoesAfterSIGKILL(t *testing.T) {
	Root(t)
	for _, die := range []bool{true, false} {
		dir := filepath.Join(t.TempDir(), "mnt")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestReaperChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), reaperChildEnv+"="+dir)
		if die {
			cmd.Env = append(cmd.Env, reaperChildEnv+"_DIE=1")
		}
		out, err := cmd.CombinedOutput()
		if die {
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child: %v, want death by SIGKILL\n%s", err, out)
			}
		} else if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if !slicesContainsMount(dir) {
				break
			}
			if time.Now().After(deadline) {
				unix.Unmount(dir, unix.MNT_DETACH)
				t.Fatalf("die=%v: the tmpfs on %s is still mounted\n%s", die, dir, out)
			}
		}
	}
}

func slicesContainsMount(dir string) bool {
	for _, s := range Snapshot(filepath.Dir(dir)) {
		if s == "mount "+dir {
			return true
		}
	}
	return false
}

// TestReaperChild is TestReaperUndoesAfterSIGKILL's child; it does nothing
// in a test run of its own.
func TestReaperChild(t *testing.T) {
	dir := os.Getenv(reaperChildEnv)
	if dir == "" {
		t.Skip("run by TestReaperUndoesAfterSIGKILL")
	}
	rp := NewReaper(t)
	rp.Add(Undo{UnmountUnder: filepath.Dir(dir)})
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if os.Getenv(reaperChildEnv+"_DIE") == "1" {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
}
