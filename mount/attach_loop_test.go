package mount

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/mount/fsys"
	"github.com/cryptvol/cryptvol/mount/fusefile"
	"github.com/cryptvol/cryptvol/mount/loopdev"
	"github.com/cryptvol/cryptvol/mount/nbd/nbdtest"
)

// volumeSize fits every filesystem we make: xfs needs 300 MiB. The sparse
// device stores only what is written.
const volumeSize = 320 << 20

// attachLoopForTest attaches dev under base and closes the attachment at the
// end of the test if the test did not.
func attachLoopForTest(t *testing.T, dev fusefile.Device, base string, readOnly bool) *loopAttachment {
	t.Helper()
	a, err := attachLoop(dev, loopOptions{BaseDir: base, ID: "vol", ReadOnly: readOnly})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return a
}

// mountForTest mounts the attachment's filesystem and unmounts it at the end
// of the test if the test did not (registered after the attachment, so it
// runs before its Close).
func mountForTest(t *testing.T, a *loopAttachment, dir string, readOnly bool) {
	t.Helper()
	if err := fsys.Mount(a.DevicePath(), dir, "", readOnly, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ok, _ := fsys.IsMounted(dir); ok {
			if err := fsys.Unmount(dir, false); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
}

// testTree is what the end-to-end tests write into a filesystem.
func testTree(t *testing.T) map[string][]byte {
	big := make([]byte, 3<<20+123)
	rand.Read(big)
	return map[string][]byte{
		"small.txt":         []byte("hello from the decrypted side\n"),
		"dir/big.bin":       big,
		"dir/sub/empty":     {},
		"dir/sub/ninety.kb": bytes.Repeat([]byte{0xa5}, 90<<10),
	}
}

func writeTree(t *testing.T, root string, tree map[string][]byte) {
	t.Helper()
	for name, data := range tree {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func checkTree(t *testing.T, root string, tree map[string][]byte) {
	t.Helper()
	for name, want := range tree {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from the %d written", name, len(got), len(want))
		}
	}
}

// TestAttachLoopFilesystems is the whole path for each filesystem: attach,
// mkfs, mount, write, fsync, unmount, detach; attach again, mount, read the
// same bytes, unmount, detach.
func TestAttachLoopFilesystems(t *testing.T) {
	e2e.Root(t)
	for _, c := range []struct {
		fstype     string
		sectorSize int
	}{
		{"ext4", 4096}, {"ext4", 512},
		{"xfs", 4096}, {"xfs", 512},
		{"btrfs", 4096},
		{"vfat", 512}, {"vfat", 4096},
	} {
		t.Run(fmt.Sprintf("%s-%d", c.fstype, c.sectorSize), func(t *testing.T) {
			e2e.Tools(t, mkfsProgram(t, c.fstype))
			e2e.CheckLeaks(t)
			dev := nbdtest.New(volumeSize, c.sectorSize)
			base, mnt := t.TempDir(), filepath.Join(t.TempDir(), "mnt")
			tree := testTree(t)

			a := attachLoopForTest(t, dev, base, false)
			if dio, err := a.Loop().DirectIO(); !dio || err != nil {
				t.Errorf("loop device does not do direct I/O on the FUSE file (dio=%v, %v)", dio, err)
			}
			lbs, _ := os.ReadFile(fmt.Sprintf("/sys/block/loop%d/queue/logical_block_size", a.Loop().Number()))
			if strings.TrimSpace(string(lbs)) != strconv.Itoa(c.sectorSize) {
				t.Errorf("logical block size %s, want %d", lbs, c.sectorSize)
			}
			if err := fsys.Mkfs(a.DevicePath(), c.fstype, "CVTEST"); err != nil {
				t.Fatal(err)
			}
			if got, err := fsys.Probe(a.DevicePath()); got != c.fstype || err != nil {
				t.Fatalf("Probe = %q, %v", got, err)
			}
			if !kernelHasFS(c.fstype) {
				// Still attached: the cleanup detaches, and CheckLeaks
				// checks that it did.
				t.Skipf("made and probed %s through the loop device, but this kernel cannot mount it (not in /proc/filesystems)", c.fstype)
			}
			mountForTest(t, a, mnt, false)
			writeTree(t, mnt, tree)
			if err := fsys.Unmount(mnt, false); err != nil {
				t.Fatal(err)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			if found, _ := loopdev.BackedBy(a.FUSE().Path()); len(found) != 0 {
				t.Fatalf("loop devices still attached: %v", found)
			}

			a = attachLoopForTest(t, dev, base, false)
			if got, err := fsys.Probe(a.DevicePath()); got != c.fstype || err != nil {
				t.Fatalf("Probe after re-attaching = %q, %v", got, err)
			}
			mountForTest(t, a, mnt, false)
			checkTree(t, mnt, tree)
			if err := fsys.Unmount(mnt, false); err != nil {
				t.Fatal(err)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// kernelHasFS reports whether the running kernel can mount fstype: a kernel
// property no package installs (this project's machines are built without
// CONFIG_VFAT_FS), so a missing one skips even under CRYPTVOL_E2E=require.
func kernelHasFS(fstype string) bool {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == fstype {
			return true
		}
	}
	return false
}

// newExt4Volume returns a device holding an ext4 filesystem with tree in it.
func newExt4Volume(t *testing.T, tree map[string][]byte) *nbdtest.Device {
	t.Helper()
	e2e.Tools(t, "mkfs.ext4")
	dev := nbdtest.New(volumeSize, 4096)
	a, err := attachLoop(dev, loopOptions{BaseDir: t.TempDir(), ID: "setup"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := fsys.Mkfs(a.DevicePath(), "ext4", ""); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(t.TempDir(), "setup")
	if err := fsys.Mount(a.DevicePath(), mnt, "ext4", false, ""); err != nil {
		t.Fatal(err)
	}
	writeTree(t, mnt, tree)
	if err := fsys.Unmount(mnt, false); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	return dev
}

// TestAttachLoopReadOnly: a read-only attachment mounts read-only, refuses
// writes with EROFS and lets no write at all reach the device.
func TestAttachLoopReadOnly(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	tree := map[string][]byte{"a": []byte("read me")}
	dev := newExt4Volume(t, tree)
	writes := dev.Writes()

	a := attachLoopForTest(t, dev, t.TempDir(), true)
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := fsys.Mount(a.DevicePath(), mnt, "", false, ""); err == nil {
		fsys.Unmount(mnt, false)
		t.Error("a read-only loop device mounted read-write")
	}
	mountForTest(t, a, mnt, true)
	checkTree(t, mnt, tree)
	if err := os.WriteFile(filepath.Join(mnt, "b"), []byte("x"), 0o600); !errors.Is(err, unix.EROFS) {
		t.Errorf("write: %v, want EROFS", err)
	}
	if err := os.Remove(filepath.Join(mnt, "a")); !errors.Is(err, unix.EROFS) {
		t.Errorf("remove: %v, want EROFS", err)
	}
	if err := fsys.Unmount(mnt, false); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if n := dev.Writes() - writes; n != 0 {
		t.Errorf("%d writes reached the device of a read-only attachment", n)
	}
}

// TestAttachLoopSyncReachesDevice: fsync in the filesystem, syncfs and
// unmount each end in Device.Sync, through the loop device's flush and the
// FUSE file's fsync.
func TestAttachLoopSyncReachesDevice(t *testing.T) {
	e2e.Root(t)
	e2e.Tools(t, "mkfs.ext4")
	e2e.CheckLeaks(t)
	dev := nbdtest.New(volumeSize, 4096)
	a := attachLoopForTest(t, dev, t.TempDir(), false)
	if err := fsys.Mkfs(a.DevicePath(), "ext4", ""); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	mountForTest(t, a, mnt, false)

	f, err := os.Create(filepath.Join(mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("durable")); err != nil {
		t.Fatal(err)
	}
	before := dev.Syncs()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if dev.Syncs() == before {
		t.Error("fsync of a file in the filesystem did not reach Device.Sync")
	}

	f.Write([]byte(" and more"))
	before = dev.Syncs()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	if dev.Syncs() == before {
		t.Error("syncfs did not reach Device.Sync")
	}
	f.Close()

	os.WriteFile(filepath.Join(mnt, "g"), []byte("unsynced"), 0o600)
	before = dev.Syncs()
	if err := fsys.Unmount(mnt, false); err != nil {
		t.Fatal(err)
	}
	if dev.Syncs() == before {
		t.Error("unmount did not reach Device.Sync")
	}
}

// TestAttachLoopCloseWhileMounted: Close refuses while the filesystem on the
// loop device is mounted, names the mount, leaves everything working, and
// succeeds after the unmount. The busy unmount before it names its holders.
func TestAttachLoopCloseWhileMounted(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	tree := map[string][]byte{"sub/file": []byte("still here")}
	dev := newExt4Volume(t, tree)
	a := attachLoopForTest(t, dev, t.TempDir(), false)
	mnt := filepath.Join(t.TempDir(), "mnt")
	mountForTest(t, a, mnt, false)

	err := a.Close()
	if !errors.Is(err, fsys.ErrDeviceInUse) || !strings.Contains(err.Error(), mnt) {
		t.Fatalf("Close while mounted: %v; want fsys.ErrDeviceInUse naming %s", err, mnt)
	}
	checkTree(t, mnt, tree)

	sleeper := exec.Command("sleep", "600")
	sleeper.Dir = filepath.Join(mnt, "sub")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	open, err := os.Open(filepath.Join(mnt, "sub", "file"))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	err = fsys.Unmount(mnt, false)
	var be *fsys.BusyError
	if !errors.As(err, &be) {
		t.Fatalf("Unmount while busy: %v, want a BusyError", err)
	}
	for _, want := range []string{
		fmt.Sprintf("pid %d (sleep) working directory %s", sleeper.Process.Pid, sleeper.Dir),
		fmt.Sprintf("pid %d (", os.Getpid()),
		"open file " + open.Name(),
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("busy error %q lacks %q", err, want)
		}
	}
	open.Close()
	sleeper.Process.Kill()
	sleeper.Wait()

	if err := fsys.Unmount(mnt, false); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close after the unmount: %v", err)
	}
}

// gatedReads holds every ReadAt at or past gateFrom in its gate.
type gatedReads struct {
	*nbdtest.Device
	*nbdtest.Gate
	gateFrom int64
}

func (d *gatedReads) ReadAt(p []byte, off int64) (int, error) {
	if off >= d.gateFrom {
		d.Hold()
	}
	return d.Device.ReadAt(p, off)
}

// TestLoopRequestsReachDeviceInParallel: two reads in flight on the loop
// device are both inside Device.ReadAt at once. The loop device hands the FUSE
// file asynchronous direct I/O, which the FUSE connection serves
// asynchronously only with FUSE_ASYNC_DIO; without it the loop device's
// worker waits for each request before it sends the next, and the server sees
// one at a time whatever the queue depth.
func TestLoopRequestsReachDeviceInParallel(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	const gateFrom = 4 << 20
	dev := &gatedReads{Device: nbdtest.New(8<<20, 4096), Gate: nbdtest.NewGate(2), gateFrom: gateFrom}
	a := attachLoopForTest(t, dev, t.TempDir(), true)
	f, err := os.OpenFile(a.DevicePath(), os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			buf, err := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
			if err != nil {
				t.Error(err)
				return
			}
			defer unix.Munmap(buf)
			if _, err := f.ReadAt(buf, gateFrom+int64(i)<<20); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if most := dev.MostInside(); most < 2 {
		t.Errorf("at most %d read of 2 was inside Device.ReadAt at once: the loop device's requests are served one at a time", most)
	}
}

func mkfsProgram(t *testing.T, fstype string) string {
	t.Helper()
	f, err := fsys.Lookup(fstype)
	if err != nil {
		t.Fatal(err)
	}
	return f.MkfsProgram()
}
