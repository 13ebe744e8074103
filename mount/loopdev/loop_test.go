package loopdev

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/mount/fsys"
)

// backingFile makes a file of size bytes, filled with a pattern, in a test
// directory (on the root filesystem, which does direct I/O).
func backingFile(t *testing.T, size int) (string, []byte) {
	t.Helper()
	data := bytes.Repeat([]byte("cryptvol"), size/8)
	p := filepath.Join(t.TempDir(), "backing")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, data
}

// attachForTest attaches and detaches at the end of the test if the test did not.
func attachForTest(t *testing.T, backing string, cfg Config, legacy bool) *Device {
	t.Helper()
	l, err := attachLoop(backing, cfg, legacy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Detach(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return l
}

func loopSysfs(t *testing.T, l *Device, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/sys/block/loop%d/%s", l.Number(), name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestLoopAttachDetach(t *testing.T) {
	e2e.Root(t)
	for _, c := range []struct {
		bs     int
		legacy bool
	}{{512, false}, {4096, false}, {4096, true}} {
		t.Run(fmt.Sprintf("bs%d legacy=%v", c.bs, c.legacy), func(t *testing.T) {
			e2e.CheckLeaks(t)
			backing, data := backingFile(t, 1<<20)
			l := attachForTest(t, backing, Config{BlockSize: c.bs}, c.legacy)

			if got := loopSysfs(t, l, "loop/backing_file"); got != backing {
				t.Errorf("backing_file %q, want %q", got, backing)
			}
			for name, want := range map[string]string{
				"queue/logical_block_size": fmt.Sprint(c.bs),
				"loop/autoclear":           "1",
				"loop/partscan":            "0",
				"ro":                       "0",
				"loop/dio":                 "1",
			} {
				if got := loopSysfs(t, l, name); got != want {
					t.Errorf("%s = %s, want %s", name, got, want)
				}
			}
			if dio, err := l.DirectIO(); !dio || err != nil {
				t.Errorf("DirectIO() = %v, %v", dio, err)
			}

			// Read through the device, write through it, see it in the file.
			f, err := os.OpenFile(l.Path(), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(data))
			if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read through the loop device: %v", err)
			}
			if _, err := f.WriteAt([]byte("written through loop"), 4096); err != nil {
				t.Fatal(err)
			}
			f.Close()

			if err := l.Detach(); err != nil {
				t.Fatal(err)
			}
			if b, err := fsys.LoopBackingFile(l.Number()); b != "" || err != nil {
				t.Errorf("after Detach backing_file is %q, %v", b, err)
			}
			if err := l.Detach(); err != nil {
				t.Errorf("second Detach: %v", err)
			}
			file, _ := os.ReadFile(backing)
			if !bytes.HasPrefix(file[4096:], []byte("written through loop")) {
				t.Error("write through the loop device is not in the backing file")
			}
		})
	}
}

func TestLoopReadOnly(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	backing, _ := backingFile(t, 1<<20)
	l := attachForTest(t, backing, Config{BlockSize: 4096, ReadOnly: true}, false)
	if got := loopSysfs(t, l, "ro"); got != "1" {
		t.Errorf("ro = %s, want 1", got)
	}
	// Linux lets a read-only block device be opened for writing and
	// refuses the write itself (EPERM); older kernels refuse the open.
	f, err := os.OpenFile(l.Path(), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteAt(make([]byte, 4096), 0)
		f.Close()
	}
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.EACCES) {
		t.Errorf("writing to a read-only loop device: %v, want EPERM, EROFS or EACCES", err)
	}
}

func TestLoopBadBlockSize(t *testing.T) {
	for _, bs := range []int{256, 1000, 8192} {
		if _, err := Attach("/nonexistent", Config{BlockSize: bs}); err == nil || !strings.Contains(err.Error(), "block size") {
			t.Errorf("block size %d: %v", bs, err)
		}
	}
}

func TestLoopDevicesBackedBy(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	backing, _ := backingFile(t, 1<<20)
	other, _ := backingFile(t, 1<<20)
	l := attachForTest(t, backing, Config{}, false)
	got, err := BackedBy(backing)
	if err != nil || !slices.Equal(got, []string{l.Path()}) {
		t.Errorf("BackedBy(backing) = %v, %v; want [%s]", got, err, l.Path())
	}
	if got, err := BackedBy(other); len(got) != 0 || err != nil {
		t.Errorf("BackedBy(other) = %v, %v; want none", got, err)
	}
	// Still found once the file is deleted (the kernel appends " (deleted)").
	os.Remove(backing)
	if got, err := BackedBy(backing); !slices.Equal(got, []string{l.Path()}) {
		t.Errorf("after deleting the file: %v, %v", got, err)
	}
}

// TestLoopDetachRefusesWhileMounted: detaching a mounted loop device would
// only mark it to go away later; Detach refuses instead and names the mount.
func TestLoopDetachRefusesWhileMounted(t *testing.T) {
	e2e.Root(t)
	e2e.Tools(t, "mkfs.ext4")
	e2e.CheckLeaks(t)
	backing, _ := backingFile(t, 16<<20)
	l := attachForTest(t, backing, Config{BlockSize: 4096}, false)
	if err := fsys.Mkfs(l.Path(), "ext4", ""); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := fsys.Mount(l.Path(), dir, "", false, ""); err != nil {
		t.Fatal(err)
	}
	err := l.Detach()
	if !errors.Is(err, fsys.ErrDeviceInUse) || !strings.Contains(err.Error(), dir) {
		t.Errorf("Detach while mounted: %v; want fsys.ErrDeviceInUse naming %s", err, dir)
	}
	if b, _ := fsys.LoopBackingFile(l.Number()); b == "" {
		t.Fatal("the refused Detach detached")
	}
	if err := fsys.Unmount(dir, false); err != nil {
		t.Fatal(err)
	}
	if err := l.Detach(); err != nil {
		t.Fatal(err)
	}
}

// TestDetachLoopDevice cleans up a loop device someone else left behind
// (losetup attaches without autoclear, so it stays after losetup exits).
func TestDetachLoopDevice(t *testing.T) {
	e2e.Root(t)
	e2e.Tools(t, "losetup")
	e2e.CheckLeaks(t)
	backing, _ := backingFile(t, 1<<20)
	out, err := exec.Command("losetup", "--find", "--show", backing).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	found, err := BackedBy(backing)
	if err != nil || !slices.Equal(found, []string{dev}) {
		t.Fatalf("BackedBy = %v, %v; want [%s]", found, err, dev)
	}
	if err := DetachPath(dev); err != nil {
		t.Fatal(err)
	}
	if found, _ := BackedBy(backing); len(found) != 0 {
		t.Errorf("still attached: %v", found)
	}
	if err := DetachPath(dev); err != nil {
		t.Errorf("DetachPath of a free device: %v", err)
	}
	if err := DetachPath(backing); err == nil {
		t.Error("DetachPath of a regular file succeeded")
	}
}

// TestLoopBacking: Backing and BackingOf name the attached file by device and
// inode; a detached device is ErrNotAttached.
func TestLoopBacking(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	backing, _ := backingFile(t, 1<<20)
	l := attachForTest(t, backing, Config{}, false)
	var st unix.Stat_t
	if err := unix.Stat(backing, &st); err != nil {
		t.Fatal(err)
	}
	b, err := l.Backing()
	if err != nil {
		t.Fatal(err)
	}
	of, err := BackingOf(l.Path())
	if err != nil || of != b {
		t.Fatalf("BackingOf = %+v, %v; Backing = %+v", of, err, b)
	}
	if b.Ino != st.Ino || b.Dev != st.Dev || b.Path != backing {
		t.Fatalf("backing %+v, want dev %d ino %d path %s", b, st.Dev, st.Ino, backing)
	}
	path := l.Path()
	if err := l.Detach(); err != nil {
		t.Fatal(err)
	}
	if _, err := BackingOf(path); !errors.Is(err, ErrNotAttached) {
		t.Fatalf("detached: %v", err)
	}
}
