package nbd

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/mount/nbd/nbdtest"
)

func TestFreeNBDDevices(t *testing.T) {
	sys := t.TempDir()
	for name, files := range map[string]map[string]string{
		"nbd0":  {"size": "2048\n", "pid": "123\n"}, // running
		"nbd1":  {"size": "0\n"},                    // free
		"nbd2":  {"size": "8\n"},                    // configured, not running
		"nbd10": {"size": "0\n"},                    // free, sorts after nbd1 numerically
		"nbd3":  {"size": "0\n", "pid": "7\n"},      // running, size not set yet
		"loop0": {"size": "0\n"},
		"nbdx":  {"size": "0\n"},
	} {
		dir := filepath.Join(sys, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, content := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := freeNBDDevices(sys)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/dev/nbd1", "/dev/nbd10"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("free devices %v, want %v", got, want)
	}
}

// TestNBDKernelMissing runs where the nbd module is not loaded (as on the
// project's machines) and checks the error says what to do.
func TestNBDKernelMissing(t *testing.T) {
	if KernelAvailable() == nil {
		t.Skip("the nbd module is loaded")
	}
	srv, _ := startNBD(t, nbdtest.New(1<<20, 4096), Options{})
	_, err := srv.AttachKernel(context.Background(), KernelOptions{})
	if !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), "modprobe nbd") {
		t.Fatalf("AttachKernel without the module: %v", err)
	}
}

// TestNBDKernelAttach attaches a memory device to /dev/nbdN, writes and reads
// through the block device (bypassing the page cache), makes a filesystem on
// it if mkfs.ext4 is there, and detaches, leaving nothing behind.
func TestNBDKernelAttach(t *testing.T) {
	e2e.KernelNBD(t, KernelAvailable()) // skips here; runs in the kernel lab (internal/vmtest)
	if os.Geteuid() != 0 {
		e2e.Skip(t, "attaching /dev/nbdN needs root")
	}
	for _, tc := range []struct {
		sector, conns int
	}{{4096, 1}, {512, 2}} {
		t.Run(fmt.Sprintf("%d-%d", tc.sector, tc.conns), func(t *testing.T) {
			const size = 64 << 20
			dev := nbdtest.New(size, tc.sector)
			srv, _ := startNBD(t, dev, Options{})
			kd, err := srv.AttachKernel(context.Background(), KernelOptions{Connections: tc.conns})
			if err != nil {
				t.Fatal(err)
			}
			detached := false
			t.Cleanup(func() {
				if !detached {
					kd.Detach()
				}
			})
			if b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(kd.Path()), "size")); err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(size/512) {
				t.Fatalf("%s size %q %v", kd.Path(), b, err)
			}

			f, err := os.OpenFile(kd.Path(), os.O_RDWR|unix.O_DIRECT, 0)
			if err != nil {
				t.Fatal(err)
			}
			buf := alignedBuffer(1 << 20)
			rand.Read(buf)
			if _, err := f.WriteAt(buf, 3*4096); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			data, durable := dev.Contents(), dev.Durable()
			if !bytes.Equal(data[3*4096:3*4096+len(buf)], buf) || !bytes.Equal(durable[3*4096:3*4096+len(buf)], buf) {
				t.Fatal("write through the kernel did not reach the device durably")
			}
			// Reads come from the server: change the device behind the
			// kernel's back and read with O_DIRECT.
			pattern := bytes.Repeat([]byte{0x3c}, 1<<20)
			dev.Set(pattern, 8<<20)
			if _, err := f.ReadAt(buf, 8<<20); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf, pattern) {
				t.Fatal("read through the kernel differs from the device")
			}
			f.Close()

			if _, err := exec.LookPath("mkfs.ext4"); err == nil {
				run(t, "mkfs.ext4", "-q", "-F", kd.Path())
				run(t, "e2fsck", "-f", "-n", kd.Path())
			}

			detached = true
			if err := kd.Detach(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join("/sys/block", filepath.Base(kd.Path()), "pid")); err == nil {
				t.Fatalf("%s still running after Detach", kd.Path())
			}
			if dev.Syncs() == 0 {
				t.Fatal("no sync reached the device")
			}
		})
	}
}

// alignedBuffer returns n bytes aligned for O_DIRECT.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+4096)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & 4095)
	return b[off : off+n]
}
