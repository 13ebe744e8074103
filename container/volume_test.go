package container

import (
	"crypto/aes"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/crypto/xts"

	"github.com/awnumar/memguard"
	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/header"
)

// TestReadWriteModel writes and reads at random offsets and lengths, aligned
// and not, and compares with an in-memory model of the plaintext.
func TestReadWriteModel(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			const size = 3 << 20
			_, vol := create(t, size, ss, "pw")
			model := make([]byte, size)
			if _, err := vol.ReadAt(model, 0); err != nil { // never-written sectors decrypt like any other
				t.Fatal(err)
			}
			rng := mrand.New(mrand.NewPCG(uint64(ss), 9))
			for i := 0; i < 300; i++ {
				off := rng.Int64N(size)
				n := rng.IntN(int(min(size-off, 3<<20)) + 1)
				if rng.IntN(3) == 0 { // aligned
					off = off / int64(ss) * int64(ss)
					n = max(n/ss, 1) * ss
					n = min(n, int(size-off))
				}
				if rng.IntN(2) == 0 {
					p := randomBytes(n)
					writeFull(t, vol, p, off)
					copy(model[off:], p)
				} else if got := readFull(t, vol, n, off); !equal(got, model[off:off+int64(n)]) {
					t.Fatalf("read %d at %d differs from the model", n, off)
				}
			}
			if err := vol.Sync(); err != nil {
				t.Fatal(err)
			}
			if got := readFull(t, vol, size, 0); !equal(got, model) {
				t.Fatal("final contents differ from the model")
			}
		})
	}
}

// TestOnDiskIsXTS checks the data area byte for byte against x/crypto/xts with
// the tweak counted from the data area (aes-xts-plain64, docs/FORMAT.md §6).
func TestOnDiskIsXTS(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		path, vol := create(t, 64<<10, ss, "pw")
		plain := randomBytes(64 << 10)
		writeFull(t, vol, plain, 0)
		vol.Sync()
		v := mustUnlock(t, path, "pw")
		ref, err := xts.NewCipher(aes.NewCipher, v1of(v).mk.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		disk := readFile(t, path, header.DataAlignment, len(plain))
		for s := 0; s < len(plain)/ss; s++ {
			want := make([]byte, ss)
			ref.Encrypt(want, plain[s*ss:(s+1)*ss], uint64(s))
			if !equal(disk[s*ss:(s+1)*ss], want) {
				t.Fatalf("sector size %d: sector %d on disk is not XTS(plain, tweak=%d)", ss, s, s)
			}
		}
		v.Close()
	}
}

func TestBoundaries(t *testing.T) {
	_, vol := create(t, 8192, 4096, "pw")
	if vol.Size() != 8192 || vol.SectorSize() != 4096 {
		t.Fatalf("size %d, sector size %d", vol.Size(), vol.SectorSize())
	}
	p := make([]byte, 100)
	if n, err := vol.ReadAt(p, 8192); n != 0 || err != io.EOF {
		t.Errorf("read at end: %d, %v", n, err)
	}
	if n, err := vol.ReadAt(p, 8150); n != 42 || err != io.EOF {
		t.Errorf("read across end: %d, %v", n, err)
	}
	if _, err := vol.ReadAt(p, -1); err == nil {
		t.Error("negative offset read")
	}
	if _, err := vol.WriteAt(p, 8150); err == nil {
		t.Error("write across the end accepted")
	}
	if _, err := vol.WriteAt(p, 1<<62); err == nil {
		t.Error("write far past the end accepted")
	}
	if err := vol.Discard(0, 100); err == nil {
		t.Error("partial-sector discard accepted")
	}
	if err := vol.Discard(4096, 4096); err != nil {
		t.Errorf("discard: %v", err)
	}
	vol.Close()
	if _, err := vol.ReadAt(p, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
	if vol.Close() != nil {
		t.Error("second close failed")
	}
}

func TestReadOnlyAndLocking(t *testing.T) {
	path := createClosed(t, 8192, "pw")
	rw := mustOpen(t, path, "pw", nil)
	if _, err := Open(path, Passphrase([]byte("pw")), nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("second read-write open: %v", err)
	}
	if _, err := Open(path, Passphrase([]byte("pw")), &OpenOptions{ReadOnly: true}); !errors.Is(err, ErrInUse) {
		t.Fatalf("read-only open beside a read-write one: %v", err)
	}
	// Key management works while the volume is open.
	v := mustUnlock(t, path, "pw")
	if _, err := v.AddPassphrase(Passphrase([]byte("second")), tiny, -1); err != nil {
		t.Fatal(err)
	}
	v.Close()
	rw.Close()

	ro1 := mustOpen(t, path, "pw", &OpenOptions{ReadOnly: true})
	ro2 := mustOpen(t, path, "second", &OpenOptions{ReadOnly: true})
	if _, err := ro1.WriteAt(make([]byte, 4096), 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write to read-only volume: %v", err)
	}
	if !equal(readFull(t, ro1, 8192, 0), readFull(t, ro2, 8192, 0)) {
		t.Fatal("two read-only opens disagree")
	}
}

func TestConcurrentIO(t *testing.T) {
	const size = 4 << 20
	_, vol := create(t, size, 512, "pw")
	var wg sync.WaitGroup
	// Each writer owns a region; partial-sector writes at region edges share
	// sectors with the neighbour, which read-modify-write must not lose.
	const writers = 8
	region := int64(size / writers)
	want := make([]byte, size)
	for w := 0; w < writers; w++ {
		data := randomBytes(int(region))
		copy(want[int64(w)*region:], data)
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(w), 1))
			for i := 0; i < 200; i++ {
				off := rng.Int64N(region)
				n := rng.Int64N(region-off) + 1
				n = min(n, 300000)
				if _, err := vol.WriteAt(data[off:off+n], int64(w)*region+off); err != nil {
					t.Error(err)
					return
				}
			}
			if _, err := vol.WriteAt(data, int64(w)*region+0); err != nil {
				t.Error(err)
			}
			for i := 0; i < 50; i++ {
				off := rng.Int64N(region)
				p := make([]byte, rng.Int64N(region-off)+1)
				if _, err := vol.ReadAt(p, int64(w)*region+off); err != nil {
					t.Error(err)
					return
				}
				if !equal(p, data[off:off+int64(len(p))]) {
					t.Errorf("writer %d read back other bytes", w)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := readFull(t, vol, size, 0); !equal(got, want) {
		t.Fatal("concurrent writes lost data")
	}
}

func TestSparseAndRandomFill(t *testing.T) {
	path, vol := create(t, 1<<20, 4096, "pw")
	vol.Close()
	st, _ := os.Stat(path)
	if st.Size() != header.DataAlignment+1<<20+header.Size {
		t.Fatalf("file size %d", st.Size())
	}
	if allZero(readFile(t, path, header.DataAlignment, 1<<20)) == false {
		t.Fatal("sparse vault has data written")
	}
	path2 := path + "2"
	var last int64
	vol2, err := Create(t.Context(), path2, Passphrase([]byte("pw")), &CreateOptions{Size: 3 << 20, KDF: tiny, Fill: FillRandom,
		Progress: func(done, total int64) { last = done }})
	if err != nil {
		t.Fatal(err)
	}
	defer vol2.Close()
	if last != 3<<20 {
		t.Fatalf("progress ended at %d", last)
	}
	disk := readFile(t, path2, header.DataAlignment, 3<<20)
	for s := 0; s < 3<<20; s += 4096 {
		if allZero(disk[s : s+4096]) {
			t.Fatalf("random fill left sector %d zero", s/4096)
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func TestOpenWithKeyPipe(t *testing.T) {
	path, vol := create(t, 8192, 4096, "pw")
	writeFull(t, vol, []byte("hello through a pipe"), 100)
	vol.Close()
	v := mustUnlock(t, path, "pw")
	r, w, _ := os.Pipe()
	go func() { v.WriteKey(w); w.Close() }()
	vol2, err := OpenWithKey(path, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	defer vol2.Close()
	if got := readFull(t, vol2, 20, 100); string(got) != "hello through a pipe" {
		t.Fatalf("got %q", got)
	}
	// Another key fails the header MAC.
	bad := randomBytes(64)
	r2, w2, _ := os.Pipe()
	w2.Write(bad)
	w2.Close()
	vol2.Close()
	if _, err := OpenWithKey(path, r2, nil); !errors.Is(err, ErrDamaged) {
		t.Fatalf("wrong key: %v", err)
	}
}

// BenchmarkCryptSplit measures one request's cipher work done by one goroutine
// or split over two, by request size: where splitting starts to pay is where
// parallelMin belongs. Each call is one request from an idle start, as for a
// client with one request in flight; with many in flight every CPU is busy
// anyway and splitting only adds hand-offs.
func BenchmarkCryptSplit(b *testing.B) {
	_, vol := create(b, 8<<20, 4096, "pw")
	for _, size := range []int{128 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20} {
		for _, parts := range []int{1, 2} {
			b.Run(fmt.Sprintf("bytes=%d/parts=%d", size, parts), func(b *testing.B) {
				buf := make([]byte, size)
				b.SetBytes(int64(size))
				for b.Loop() {
					vol.cryptIn(parts, vol.sc.Encrypt, buf, buf, 0)
				}
			})
		}
	}
}

// TestCryptSplitMatchesOnePass: cipher work split over goroutines gives the
// bytes of one pass, whatever the number of parts and however the length
// divides into sectors.
func TestCryptSplitMatchesOnePass(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		_, vol := create(t, 8<<20, ss, "pw")
		for _, n := range []int{ss, 2 * ss, 3 * ss, 257 * ss, 1<<20 + 3*ss} {
			src := randomBytes(n)
			want := make([]byte, n)
			vol.sc.Encrypt(want, src, 5)
			for parts := 1; parts <= 4; parts++ {
				got := make([]byte, n)
				vol.cryptIn(parts, vol.sc.Encrypt, got, src, 5*int64(ss))
				if !equal(got, want) {
					t.Fatalf("sector size %d, %d bytes in %d parts: differs from one pass", ss, n, parts)
				}
				vol.cryptIn(parts, vol.sc.Decrypt, got, got, 5*int64(ss))
				if !equal(got, src) {
					t.Fatalf("sector size %d, %d bytes in %d parts: decryption differs", ss, n, parts)
				}
			}
		}
	}
}

func TestCryptParts(t *testing.T) {
	cpus := runtime.GOMAXPROCS(0)
	for _, c := range []struct{ n, want int }{
		{128 << 10, 1}, {parallelMin - 1, 1},
		{parallelMin, min(cpus, 2)}, {8 * parallelMin, min(cpus, 16)},
	} {
		if got := cryptParts(c.n); got != c.want {
			t.Errorf("cryptParts(%d) = %d, want %d (%d CPUs)", c.n, got, c.want, cpus)
		}
	}
}

// TestWriteAtInPlace: a whole-sector write leaves its ciphertext, the bytes
// now on disk, in the caller's buffer; an unaligned one leaves the buffer
// alone; both read back as written.
func TestWriteAtInPlace(t *testing.T) {
	path, vol := create(t, 1<<20, 4096, "pw")
	plain := randomBytes(64 << 10)
	p := append([]byte(nil), plain...)
	if n, err := vol.WriteAtInPlace(p, 8192); n != len(p) || err != nil {
		t.Fatalf("WriteAtInPlace = %d, %v", n, err)
	}
	if got := readFull(t, vol, len(plain), 8192); !equal(got, plain) {
		t.Fatal("in-place write reads back wrong")
	}
	vol.Sync()
	if disk := readFile(t, path, header.DataAlignment+8192, len(p)); !equal(p, disk) {
		t.Fatal("the buffer does not hold the ciphertext written")
	}
	odd := randomBytes(1000)
	p = append([]byte(nil), odd...)
	if n, err := vol.WriteAtInPlace(p, 100); n != len(p) || err != nil {
		t.Fatalf("unaligned WriteAtInPlace = %d, %v", n, err)
	}
	if !equal(p, odd) {
		t.Fatal("unaligned in-place write changed the buffer")
	}
	if got := readFull(t, vol, len(odd), 100); !equal(got, odd) {
		t.Fatal("unaligned in-place write reads back wrong")
	}
}

// TestVolumeOtherGeometry: a Volume runs any sector cipher of package cipher
// at any data offset, and adds the geometry's IV offset to each sector's
// index, as LUKS (iv_tweak) and VeraCrypt (absolute unit numbers) need.
func TestVolumeOtherGeometry(t *testing.T) {
	for _, g := range []Geometry{
		{Offset: 4096, Size: 64 << 10, SectorSize: 512, IVOffset: 8, Cipher: "serpent-twofish-aes-xts-plain64", KeySize: 192},
		{Offset: 16 << 10, Size: 64 << 10, SectorSize: 4096, IVOffset: 3, Cipher: "aes-xts-plain64", KeySize: 64},
		{Offset: 2048, Size: 32 << 10, SectorSize: 512, Cipher: "aes-cbc-essiv:sha256", KeySize: 32},
	} {
		t.Run(g.Cipher, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "v")
			if err := os.WriteFile(path, make([]byte, g.Offset+g.Size), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			mk := memguard.NewBufferFromBytes(randomBytes(g.KeySize))
			defer mk.Destroy()
			vol, err := newVolumeAt(f, path, "test", "", g, mk, false)
			if err != nil {
				t.Fatal(err)
			}
			defer vol.Close()
			plain := randomBytes(int(g.Size))
			writeFull(t, vol, plain, 0)
			spec, err := cipher.ParseSpec(g.Cipher, g.KeySize)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := cipher.NewSector(spec, mk.Bytes(), make([]byte, spec.StateSize()), g.SectorSize)
			if err != nil {
				t.Fatal(err)
			}
			disk := readFile(t, path, g.Offset, int(g.Size))
			ref.Decrypt(disk, disk, g.IVOffset)
			if !equal(disk, plain) {
				t.Fatal("the data area does not decrypt with the geometry's cipher and IV offset")
			}
			if !equal(readFull(t, vol, int(g.Size), 0), plain) {
				t.Fatal("read back differs")
			}
		})
	}
}
