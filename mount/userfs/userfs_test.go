package userfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/mount/fsys"
)

// image makes an ext4 image file of 32 MiB.
func image(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	if err := fsys.MkfsImage(img, "ext4", fsys.ImageOptions{SectorSize: 4096, UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	return img
}

func prerequisites(t *testing.T) fsys.Filesystem {
	t.Helper()
	e2e.Root(t)
	e2e.Tools(t, "fuse2fs", "mkfs.ext4", "e2fsck")
	e2e.CheckLeaks(t)
	f, err := fsys.Lookup("ext4")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// start mounts img on a new directory and makes sure it goes at the end.
func start(t *testing.T, f fsys.Filesystem, img string, o Options) *Mount {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	m, err := Start(f, img, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Unmount(true)
		m.Wait(10 * time.Second)
	})
	return m
}

func TestMountWriteUnmount(t *testing.T) {
	f := prerequisites(t)
	img := image(t)
	m := start(t, f, img, Options{UID: -1, GID: -1, FSName: "cryptvol:test"})
	if e, ok, err := fsys.MountAt(m.Dir()); err != nil || !ok || e.FSType != "fuse.ext4" || e.Source != "cryptvol:test" {
		t.Fatalf("mount at %s: %+v %v %v", m.Dir(), e, ok, err)
	}
	if err := os.WriteFile(filepath.Join(m.Dir(), "a.txt"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Unmount(false); err != nil {
		t.Fatal(err)
	}
	// The driver writes what it holds once unmounted, then exits.
	if err := m.Wait(time.Minute); err != nil {
		t.Fatalf("driver exit: %v", err)
	}
	if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck after the unmount: %v\n%s", err, out)
	}
	m = start(t, f, img, Options{ReadOnly: true, UID: -1, GID: -1, FSName: "cryptvol:test"})
	if b, err := os.ReadFile(filepath.Join(m.Dir(), "a.txt")); err != nil || string(b) != "hello" {
		t.Fatalf("read back: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(m.Dir(), "b.txt"), nil, 0o600); err == nil {
		t.Error("wrote to a read-only mount")
	}
}

func TestUnmountBusy(t *testing.T) {
	f := prerequisites(t)
	m := start(t, f, image(t), Options{UID: -1, GID: -1, FSName: "cryptvol:test"})
	h, err := os.Create(filepath.Join(m.Dir(), "held"))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Unmount(false)
	var be *fsys.BusyError
	if !errors.As(err, &be) || len(be.Holders) == 0 || be.Holders[0].PID != os.Getpid() {
		t.Fatalf("unmount of a busy mount: %v", err)
	}
	select {
	case <-m.Done():
		t.Fatal("the driver exited after a refused unmount")
	default:
	}
	h.Close()
	if err := m.Unmount(false); err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(time.Minute); err != nil {
		t.Fatal(err)
	}
}

func TestStartFails(t *testing.T) {
	f := prerequisites(t)
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err := Start(f, junk, dir, Options{UID: -1, GID: -1, FSName: "cryptvol:test"})
	if err == nil || !strings.Contains(err.Error(), "fuse2fs could not mount") || !strings.Contains(err.Error(), "e2fsck") {
		t.Errorf("mounting a file of zeros: %v, want fuse2fs's own message", err)
	}
	if ok, _ := fsys.IsMounted(dir); ok {
		t.Error("something is mounted after a failed start")
	}
	xfs, _ := fsys.Lookup("xfs")
	if _, err := Start(xfs, junk, dir, Options{}); !errors.Is(err, ErrNoDriver) {
		t.Errorf("xfs: %v, want ErrNoDriver", err)
	}
	for _, name := range []string{"", "/a", "a,b", `a\b`, "a b"} {
		if _, err := Start(f, junk, dir, Options{FSName: name}); err == nil || !strings.Contains(err.Error(), "mount source") {
			t.Errorf("mount source %q: %v", name, err)
		}
	}
}
