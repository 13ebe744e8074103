package container

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/internal/e2e"
)

// alignedBuf returns n bytes starting on a page boundary, as O_DIRECT needs,
// every page of them touched: btrfs serves a direct read into pages never
// touched through the page cache (as the server's buffers, populated when
// mapped, are not).
func alignedBuf(n int) []byte {
	b := make([]byte, n+directAlign)
	for i := range b {
		b[i] = 0xa5
	}
	k := directAlign - int(uintptrOf(b)%directAlign)
	return b[k%directAlign:][:n:n]
}

// cachedPages is how many pages of the n bytes at off of f are in the page
// cache, and false if the kernel cannot tell (no cachestat before Linux 6.5).
func cachedPages(t *testing.T, f *os.File, off, n int64) (uint64, bool) {
	t.Helper()
	var cs unix.Cachestat_t
	if err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{Off: uint64(off), Len: uint64(n)}, &cs, 0); err != nil {
		t.Logf("cachestat: %v (Linux 6.5 has it): which path a read took is not checked", err)
		return 0, false
	}
	return cs.Cache, true
}

// dropCache writes f back and drops its pages from the page cache.
func dropCache(t *testing.T, f *os.File) {
	t.Helper()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}

// checkDirect writes random bytes over vol (size bytes) and checks what
// every filesystem with direct reads must give: a direct read of ciphertext
// not in the page cache leaves it so, and sees a dirty page and a write
// whose writeback has started. It returns the bytes and a read buffer.
func checkDirect(t *testing.T, vol *Volume, size int) ([]byte, []byte) {
	t.Helper()
	want := randomBytes(size)
	writeFull(t, vol, want, 0)
	dropCache(t, vol.f)

	p := alignedBuf(1 << 20)
	if n, err := vol.ReadAtDirect(p, 1<<20); err != nil || n != len(p) || !equal(p, want[1<<20:2<<20]) {
		t.Fatalf("ReadAtDirect(1 MiB at 1 MiB) = %d, %v, same bytes %v", n, err, equal(p, want[1<<20:2<<20]))
	}
	if c, ok := cachedPages(t, vol.f, vol.dataOff, int64(size)); ok && c != 0 {
		t.Errorf("%d pages of the vault in the page cache after a direct read, want 0", c)
	}

	// One dirty page in an uncached MiB: the read goes to the disk,
	// which the kernel first gives the page to.
	patch := randomBytes(4096)
	writeFull(t, vol, patch, 2<<20+8192)
	copy(want[2<<20+8192:], patch)
	if n, err := vol.ReadAtDirect(p, 2<<20); err != nil || n != len(p) || !equal(p, want[2<<20:3<<20]) {
		t.Fatalf("ReadAtDirect after a write still in the page cache = %d, %v, same bytes %v", n, err, equal(p, want[2<<20:3<<20]))
	}
	// 256 KiB whose writeback the write has started (Volume.pwrite).
	patch = randomBytes(256 << 10)
	writeFull(t, vol, patch, 3<<20+64<<10)
	copy(want[3<<20+64<<10:], patch)
	if n, err := vol.ReadAtDirect(p, 3<<20); err != nil || n != len(p) || !equal(p, want[3<<20:4<<20]) {
		t.Fatalf("ReadAtDirect after a write being written back = %d, %v, same bytes %v", n, err, equal(p, want[3<<20:4<<20]))
	}
	return want, p
}

// TestReadAtDirect: ReadAtDirect returns what ReadAt does, for every
// alignment; aligned reads of ciphertext not in the page cache go around
// it (the cache stays empty), and see writes still dirty in it.
func TestReadAtDirect(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(map[int]string{512: "512", 4096: "4096"}[ss], func(t *testing.T) {
			const size = 4 << 20
			_, vol := create(t, size, ss, "pw")
			if vol.directFile() == nil {
				t.Skipf("no direct reads of a vault in %s (its filesystem is not ext4, XFS or btrfs)", os.TempDir())
			}
			want, p := checkDirect(t, vol, size)

			// All in the page cache: read from there, as ReadAt does.
			readFull(t, vol, 1<<20, 0)
			if n, err := vol.ReadAtDirect(p, 0); err != nil || n != len(p) || !equal(p, want[:1<<20]) {
				t.Fatalf("ReadAtDirect of cached data = %d, %v", n, err)
			}

			// Not aligned for O_DIRECT: the buffer, the offset, the length.
			// Such reads go through the page cache, and never try a
			// direct read (which would fail, and turn direct reads off).
			for _, c := range []struct {
				name   string
				bufOff int
				n      int
				off    int64
			}{
				{"buffer", 512, 64 << 10, 0},
				{"offset", 0, 64 << 10, 512},
				{"length", 0, 64<<10 + 512, 4096},
				{"sector", 0, 1000, 3},
			} {
				dropCache(t, vol.f)
				q := alignedBuf(c.n + c.bufOff)[c.bufOff:]
				if n, err := vol.ReadAtDirect(q, c.off); err != nil || n != c.n || !equal(q, want[c.off:c.off+int64(c.n)]) {
					t.Errorf("%s not aligned: ReadAtDirect = %d, %v", c.name, n, err)
				}
				if cached, ok := cachedPages(t, vol.f, vol.dataOff, size); ok && cached == 0 {
					t.Errorf("%s not aligned: the read did not go through the page cache", c.name)
				}
				if vol.noDirect.Load() {
					t.Fatalf("%s not aligned: a direct read was tried", c.name)
				}
			}

			// Past the end, as io.ReaderAt says.
			dropCache(t, vol.f)
			if n, err := vol.ReadAtDirect(p, size-4096); n != 4096 || err != io.EOF || !equal(p[:4096], want[size-4096:]) {
				t.Errorf("ReadAtDirect across the end = %d, %v; want 4096, EOF", n, err)
			}
			if n, err := vol.ReadAtDirect(p, size); n != 0 || err != io.EOF {
				t.Errorf("ReadAtDirect at the end = %d, %v; want 0, EOF", n, err)
			}

			// A direct read that fails is done again through the page
			// cache, and none is tried after it.
			vol.direct.Close()
			dropCache(t, vol.f)
			if n, err := vol.ReadAtDirect(p, 1<<20); err != nil || n != len(p) || !equal(p, want[1<<20:2<<20]) {
				t.Errorf("ReadAtDirect with the direct descriptor failing = %d, %v", n, err)
			}
			if !vol.noDirect.Load() {
				t.Error("direct reads still on after one failed")
			}

			vol.Close()
			if _, err := vol.ReadAtDirect(p, 0); !errors.Is(err, ErrClosed) {
				t.Errorf("ReadAtDirect after Close: %v, want ErrClosed", err)
			}
		})
	}
}

// TestReadAtDirectXFSBtrfs: the same on the other filesystems direct reads
// are used on, each on a loop-mounted image of its own.
func TestReadAtDirectXFSBtrfs(t *testing.T) {
	e2e.Root(t)
	for _, fs := range []string{"xfs", "btrfs"} {
		t.Run(fs, func(t *testing.T) {
			e2e.Tools(t, "mkfs."+fs)
			dir := t.TempDir()
			img, mnt := filepath.Join(dir, "img"), filepath.Join(dir, "mnt")
			if err := os.Mkdir(mnt, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(img, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, 320<<20); err != nil { // mkfs.xfs wants 300 MiB
				t.Fatal(err)
			}
			for _, cmd := range [][]string{{"mkfs." + fs, "-q", img}, {"mount", "-o", "loop", img, mnt}} {
				if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
					t.Fatalf("%v: %v\n%s", cmd, err, out)
				}
			}
			// The loop device detaches itself when the image is unmounted.
			t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
			vol, err := Create(context.Background(), filepath.Join(mnt, "vault.cv"), Passphrase([]byte("pw")), &CreateOptions{Size: 4 << 20, KDF: tiny})
			if err != nil {
				t.Fatal(err)
			}
			defer vol.Close()
			if vol.directFile() == nil {
				t.Fatalf("a vault on %s is not read directly", fs)
			}
			checkDirect(t, vol, 4<<20)
		})
	}
}

// TestReadAtDirectElsewhere: a vault on a filesystem whose direct reads are
// not known to see its buffered writes (tmpfs here) is read through the
// page cache.
func TestReadAtDirectElsewhere(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "cryptvol-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	vol, err := Create(context.Background(), filepath.Join(dir, "vault.cv"), Passphrase([]byte("pw")), &CreateOptions{Size: 1 << 20, KDF: tiny})
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Close()
	want := randomBytes(1 << 20)
	writeFull(t, vol, want, 0)
	p := alignedBuf(1 << 20)
	if n, err := vol.ReadAtDirect(p, 0); err != nil || n != len(p) || !equal(p, want) {
		t.Fatalf("ReadAtDirect = %d, %v", n, err)
	}
	if vol.direct != nil {
		t.Error("the vault on tmpfs was opened for direct reads")
	}
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
