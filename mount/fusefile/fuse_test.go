package fusefile

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
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/mount/fsys"
	"github.com/cryptvol/cryptvol/mount/nbd/nbdtest"
)

// serveForTest serves dev under a new base directory and closes it at the
// end of the test if the test did not.
func serveForTest(t *testing.T, dev Device, readOnly bool) *File {
	t.Helper()
	f, err := Serve(dev, Options{BaseDir: filepath.Join(t.TempDir(), "base"), ID: "vol", ReadOnly: readOnly})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return f
}

func TestFUSEFileMount(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dev := nbdtest.New(8<<20, 4096)
	f := serveForTest(t, dev, false)

	for _, d := range []string{filepath.Dir(f.Dir()), f.Dir()} {
		if st, err := os.Stat(d); err != nil || st.Mode() != os.ModeDir|0o700 {
			t.Errorf("%s: %v, %v; want a 0700 directory", d, st.Mode(), err)
		}
	}
	st, err := os.Stat(f.Path())
	if err != nil || st.Mode() != 0o600 || st.Size() != dev.Size() {
		t.Errorf("the file: %v %d, %v; want a regular 0600 file of %d bytes", st.Mode(), st.Size(), err, dev.Size())
	}
	names, err := os.ReadDir(f.Dir())
	if err != nil || len(names) != 1 || names[0].Name() != FileName {
		t.Errorf("directory holds %v, %v; want only %s", names, err, FileName)
	}

	m, ok, err := fsys.MountAt(f.Dir())
	if err != nil || !ok {
		t.Fatalf("MountAt: %v %v", ok, err)
	}
	if m.FSType != fuseFSType {
		t.Errorf("type %s", m.FSType)
	}
	for _, o := range []string{"nosuid", "nodev", "noexec"} {
		if !strings.Contains(m.Options, o) {
			t.Errorf("mount options %q lack %s", m.Options, o)
		}
	}
	if strings.Contains(m.SuperOptions, "allow_other") || !strings.Contains(m.SuperOptions, "max_read=1048576") ||
		!strings.Contains(m.SuperOptions, "user_id=0") {
		t.Errorf("fuse options %q: want max_read=1048576, user_id=0 and no allow_other", m.SuperOptions)
	}
}

func TestFUSEFileReadWrite(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dev := nbdtest.New(8<<20, 512)
	f := serveForTest(t, dev, false)
	file, err := os.OpenFile(f.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()

	// Written through the file: on the device at once (no page cache).
	msg := []byte("plaintext only in memory")
	if _, err := file.WriteAt(msg, 5000); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	dev.ReadAt(got, 5000)
	if !bytes.Equal(got, msg) {
		t.Errorf("device holds %q after the write", got)
	}
	// A page read through the file, changed on the device behind the
	// kernel's back, read again: the change shows, so the first read left
	// nothing in a page cache.
	page := make([]byte, 8192)
	if _, err := file.ReadAt(page, 8192); err != nil {
		t.Fatal(err)
	}
	dev.WriteAt([]byte("CHANGED"), 8192)
	if _, err := file.ReadAt(page, 8192); err != nil || !bytes.HasPrefix(page, []byte("CHANGED")) {
		t.Errorf("read after a device-side change: %q, %v; a page cache holds the old data", page[:7], err)
	}

	// At the end: a write crossing it is cut short, one past it fails.
	// (os.File.WriteAt would retry the rest and drop the count.)
	n, err := unix.Pwrite(int(file.Fd()), make([]byte, 100), dev.Size()-10)
	if n != 10 || err != nil {
		t.Errorf("write across the end wrote %d, %v; want 10", n, err)
	}
	if _, err := file.WriteAt([]byte("x"), dev.Size()); !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EFBIG) {
		t.Errorf("write past the end: %v, want ENOSPC", err)
	}
	if n, err := file.ReadAt(make([]byte, 10), dev.Size()); n != 0 {
		t.Errorf("read past the end: %d, %v", n, err)
	}

	// fsync and close reach Device.Sync.
	before := dev.Syncs()
	if err := file.Sync(); err != nil {
		t.Fatal(err)
	}
	if dev.Syncs() == before {
		t.Error("fsync of the file did not sync the device")
	}
	before = dev.Syncs()
	file.Close()
	if dev.Syncs() == before {
		t.Error("close of the file did not sync the device")
	}
}

// TestFUSEFileOneMiBRequests: a 1 MiB page-aligned write reaches the device
// as one WriteAt, so MaxWrite and max_pages are in effect.
func TestFUSEFileOneMiBRequests(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dev := nbdtest.New(8<<20, 4096)
	f := serveForTest(t, dev, false)
	buf, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	file, err := os.OpenFile(f.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	before := dev.Writes()
	if _, err := file.WriteAt(buf, 1<<20); err != nil {
		t.Fatal(err)
	}
	if n := dev.Writes() - before; n != 1 {
		t.Errorf("a 1 MiB write arrived as %d writes, want 1", n)
	}
}

// gatedWrites holds every WriteAt in its gate.
type gatedWrites struct {
	*nbdtest.Device
	*nbdtest.Gate
}

func (d *gatedWrites) WriteAt(p []byte, off int64) (int, error) {
	d.Hold()
	return d.Device.WriteAt(p, off)
}

// TestFUSEFileParallelWrites: with FOPEN_PARALLEL_DIRECT_WRITES (Linux 6.2)
// the kernel does not serialise writes to the file, so two reach the device
// together.
func TestFUSEFileParallelWrites(t *testing.T) {
	e2e.Root(t)
	if !kernelAtLeast(6, 2) {
		t.Skip("parallel direct writes to FUSE need Linux 6.2")
	}
	e2e.CheckLeaks(t)
	dev := &gatedWrites{Device: nbdtest.New(8<<20, 4096), Gate: nbdtest.NewGate(2)}
	f := serveForTest(t, dev, false)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			file, err := os.OpenFile(f.Path(), os.O_RDWR, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer file.Close()
			if _, err := file.WriteAt(make([]byte, 4096), int64(i)<<20); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if most := dev.MostInside(); most < 2 {
		t.Errorf("at most %d writes reached the device together, want 2", most)
	}
}

func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var ma, mi int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi)
	return ma > major || ma == major && mi >= minor
}

func TestFUSEFileRefusesChanges(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	f := serveForTest(t, nbdtest.New(1<<20, 4096), false)
	other := filepath.Join(f.Dir(), "other")
	for name, op := range map[string]func() error{
		"create":   func() error { return os.WriteFile(other, nil, 0o600) },
		"mkdir":    func() error { return os.Mkdir(other, 0o700) },
		"mknod":    func() error { return unix.Mknod(other, unix.S_IFIFO|0o600, 0) },
		"symlink":  func() error { return os.Symlink(f.Path(), other) },
		"link":     func() error { return os.Link(f.Path(), other) },
		"rename":   func() error { return os.Rename(f.Path(), other) },
		"unlink":   func() error { return os.Remove(f.Path()) },
		"chmod":    func() error { return os.Chmod(f.Path(), 0o644) },
		"chown":    func() error { return os.Chown(f.Path(), 1, 1) },
		"utimes":   func() error { return os.Chtimes(f.Path(), time.Now(), time.Now()) },
		"truncate": func() error { return os.Truncate(f.Path(), 0) },
		"O_TRUNC": func() error {
			file, err := os.OpenFile(f.Path(), os.O_RDWR|os.O_TRUNC, 0)
			if err == nil {
				file.Close()
			}
			return err
		},
		"setxattr": func() error { return unix.Setxattr(f.Path(), "user.x", []byte("y"), 0) },
	} {
		if err := op(); err == nil {
			t.Errorf("%s succeeded", name)
		}
	}
	if st, err := os.Stat(f.Path()); err != nil || st.Size() != 1<<20 || st.Mode() != 0o600 {
		t.Errorf("file changed: %v, %v", st, err)
	}
	if names, _ := os.ReadDir(f.Dir()); len(names) != 1 {
		t.Errorf("directory now holds %v", names)
	}
}

func TestFUSEFileReadOnly(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dev := nbdtest.New(1<<20, 4096)
	dev.WriteAt([]byte("data"), 0)
	f := serveForTest(t, dev, true)
	if _, err := os.OpenFile(f.Path(), os.O_RDWR, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("open for writing: %v, want EROFS", err)
	}
	got, err := os.ReadFile(f.Path())
	if err != nil || !bytes.HasPrefix(got, []byte("data")) {
		t.Errorf("read: %v", err)
	}
	if n := dev.Writes(); n != 1 {
		t.Errorf("%d writes reached the device", n-1)
	}
}

// TestFUSEFileRootOnly: without allow_other only the user who mounted (root)
// gets in, whatever the modes on the way.
func TestFUSEFileRootOnly(t *testing.T) {
	e2e.Root(t)
	e2e.Tools(t, "cat")
	e2e.CheckLeaks(t)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	f, err := Serve(nbdtest.New(1<<20, 4096), Options{BaseDir: base, ID: "vol"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("cat", f.Path())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Errorf("another user reads the volume: %v: %s", err, out)
	}
}

func TestFUSEFileBadPlaces(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dev := nbdtest.New(1<<20, 4096)
	base := t.TempDir()
	for _, id := range []string{"", ".", "..", "a/b", "nul\x00"} {
		if f, err := Serve(dev, Options{BaseDir: base, ID: id}); err == nil {
			f.Close()
			t.Errorf("id %q accepted", id)
		}
	}
	os.MkdirAll(filepath.Join(base, "full", "x"), 0o700)
	if f, err := Serve(dev, Options{BaseDir: base, ID: "full"}); err == nil {
		f.Close()
		t.Error("a non-empty mount directory accepted")
	}
	// An empty leftover directory is reused, and tightened to 0700.
	os.Mkdir(filepath.Join(base, "empty"), 0o755)
	f, err := Serve(dev, Options{BaseDir: base, ID: "empty"})
	if err != nil {
		t.Fatalf("empty leftover directory: %v", err)
	}
	defer f.Close()
	if _, err := Serve(dev, Options{BaseDir: base, ID: "empty"}); err == nil || !strings.Contains(err.Error(), "already a fuse.cryptvol mount") {
		t.Errorf("second mount on the same id: %v", err)
	}
}

// TestFUSEFileCloseBusy: Close refuses while the file is open, names who has
// it, and works once it is closed.
func TestFUSEFileCloseBusy(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	f := serveForTest(t, nbdtest.New(1<<20, 4096), false)
	file, err := os.Open(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	err = f.Close()
	var be *fsys.BusyError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) ||
		!strings.Contains(err.Error(), "open file "+f.Path()) {
		t.Errorf("Close with the file open: %v; want a BusyError naming this process", err)
	}
	file.Close()
	if err := f.Close(); err != nil {
		t.Fatalf("Close after closing the file: %v", err)
	}
	if _, err := os.Stat(f.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount directory left: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestUnmountStaleFUSE makes the state a killed server leaves: a FUSE mount
// whose /dev/fuse descriptor is closed, where every access fails with
// ENOTCONN.
func TestUnmountStaleFUSE(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dir := filepath.Join(t.TempDir(), "stale")
	os.Mkdir(dir, 0o700)
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("cryptvol", dir, fuseFSType, unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	unix.Close(fd) // the server "dies"
	if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("stat in the stale mount: %v, want ENOTCONN", err)
	}

	if err := UnmountStale(dir); err != nil {
		t.Fatal(err)
	}
	if ok, _ := fsys.IsMounted(dir); ok {
		t.Error("still mounted")
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory left: %v", err)
	}
	if err := UnmountStale(dir); err != nil {
		t.Errorf("on a missing directory: %v", err)
	}
}

func TestUnmountStaleFUSERefusesOtherMounts(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := fsys.Mount("tmpfs", dir, "tmpfs", false, ""); err != nil {
		t.Fatal(err)
	}
	if err := UnmountStale(dir); err == nil || !strings.Contains(err.Error(), "tmpfs") {
		t.Errorf("UnmountStale on a tmpfs: %v", err)
	}
	if ok, _ := fsys.IsMounted(dir); !ok {
		t.Fatal("the tmpfs was unmounted")
	}
	fsys.Unmount(dir, false)
}

// failingDevice fails every read at or past 1 MiB, and every write there
// with ENOSPC, as a vault file on a full filesystem does.
type failingDevice struct{ *nbdtest.Device }

var errBadSector = errors.New("bad sector")

func (d failingDevice) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > 1<<20 {
		return 0, &os.PathError{Op: "write", Path: "vault", Err: syscall.ENOSPC}
	}
	return d.Device.WriteAt(p, off)
}

func (d failingDevice) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > 1<<20 {
		return 0, errBadSector
	}
	return d.Device.ReadAt(p, off)
}

// TestFUSEFileDeviceErrors: a failing Device call is EIO for the reader (ENOSPC
// for a write that failed for lack of space) and reported to OnError with its
// cause.
func TestFUSEFileDeviceErrors(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	var mu sync.Mutex
	var reported []string
	f, err := Serve(failingDevice{nbdtest.New(2<<20, 4096)}, Options{
		BaseDir: t.TempDir(), ID: "vol",
		OnError: func(op string, off int64, err error) {
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, errBadSector) {
				reported = append(reported, fmt.Sprintf("%s at %d", op, off))
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	file, err := os.Open(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Errorf("good read: %v", err)
	}
	if _, err := file.ReadAt(make([]byte, 4096), 1<<20); !errors.Is(err, syscall.EIO) {
		t.Errorf("bad read: %v, want EIO", err)
	}
	wfile, err := os.OpenFile(f.Path(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer wfile.Close()
	if _, err := wfile.WriteAt(make([]byte, 4096), 0); err != nil {
		t.Errorf("good write: %v", err)
	}
	if _, err := wfile.WriteAt(make([]byte, 4096), 1<<20); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write to a full vault file: %v, want ENOSPC", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 || reported[0] != fmt.Sprintf("read at %d", 1<<20) {
		t.Errorf("OnError saw %v", reported)
	}
}

// TestFUSEFileWriteInPlace: WRITE requests go to an InPlaceWriter, and its
// scribbling on the request buffer changes nothing that is read back.
func TestFUSEFileWriteInPlace(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dev := &nbdtest.Scribbling{Device: nbdtest.New(8<<20, 4096)}
	f := serveForTest(t, dev, false)
	want := make([]byte, 3<<20)
	rand.Read(want)
	file, err := os.OpenFile(f.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	if dev.InPlace() == 0 {
		t.Fatal("no write went through WriteAtInPlace")
	}
	got := make([]byte, len(want))
	if _, err := file.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read back differs from what was written")
	}
}

// TestFUSEFilePageCache: with the page cache, reads are cached (a change
// made behind the kernel's back does not show), writes still reach the
// device before they return, and requests are at most fuseCachedMaxWrite.
func TestFUSEFilePageCache(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dev := nbdtest.New(8<<20, 4096)
	f, err := Serve(dev, Options{BaseDir: filepath.Join(t.TempDir(), "base"), ID: "vol", Cache: PageCache})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}()
	m, _, err := fsys.MountAt(f.Dir())
	if err != nil || !strings.Contains(m.SuperOptions, "max_read=131072") {
		t.Errorf("fuse options %q, %v: want max_read=131072", m.SuperOptions, err)
	}
	file, err := os.OpenFile(f.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	msg := []byte("written through")
	if _, err := file.WriteAt(msg, 12288); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	dev.ReadAt(got, 12288)
	if !bytes.Equal(got, msg) {
		t.Errorf("device holds %q once the write returned", got)
	}
	page := make([]byte, 4096)
	if _, err := file.ReadAt(page, 8192); err != nil {
		t.Fatal(err)
	}
	dev.WriteAt([]byte("CHANGED"), 8192)
	if _, err := file.ReadAt(page, 8192); err != nil || bytes.HasPrefix(page, []byte("CHANGED")) {
		t.Errorf("read after a device-side change: %q, %v; want the cached page", page[:7], err)
	}
	// Another open keeps the cache (FOPEN_KEEP_CACHE).
	again, err := os.Open(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, err := again.ReadAt(page, 8192); err != nil || bytes.HasPrefix(page, []byte("CHANGED")) {
		t.Errorf("read by a second open: %q, %v; want the cached page", page[:7], err)
	}
}

// TestFUSEFileWritebackCache: with the writeback cache, an fsync of the file
// brings what was written to the device and syncs it; a change of times
// alone is accepted (the kernel sends its own at fsync), any other refused.
func TestFUSEFileWritebackCache(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dev := nbdtest.New(8<<20, 4096)
	f, err := Serve(dev, Options{BaseDir: filepath.Join(t.TempDir(), "base"), ID: "vol", Cache: WritebackCache})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}()
	file, err := os.OpenFile(f.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	data := bytes.Repeat([]byte("written back "), 1000)
	if _, err := file.WriteAt(data, 4096); err != nil {
		t.Fatal(err)
	}
	before := dev.Syncs()
	if err := file.Sync(); err != nil {
		t.Fatalf("fsync: %v", err)
	}
	if dev.Syncs() == before {
		t.Error("fsync did not sync the device")
	}
	got := make([]byte, len(data))
	dev.ReadAt(got, 4096)
	if !bytes.Equal(got, data) {
		t.Error("the device lacks data written before an fsync")
	}
	if err := os.Chtimes(f.Path(), time.Now(), time.Now()); err != nil {
		t.Errorf("changing the times: %v", err)
	}
	if err := os.Truncate(f.Path(), 4096); !errors.Is(err, syscall.EPERM) {
		t.Errorf("truncate: %v, want EPERM", err)
	}
	if err := os.Chmod(f.Path(), 0o644); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chmod: %v, want EPERM", err)
	}
	if st, err := os.Stat(f.Path()); err != nil || st.Size() != dev.Size() {
		t.Errorf("size %v, %v after the refused truncate", st.Size(), err)
	}
}
