package fusefile

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/mount/nbd/nbdtest"
)

// newRAFS returns the loop path's filesystem over dev, with read-ahead, as
// Serve makes it, without mounting it. Chunks are not dropped for idleness
// (a slow test machine must not look like an idle reader), but in
// TestReadAheadIdle.
func newRAFS(dev Device) *volumeFS {
	v := newVolumeFS(dev, false, nil)
	v.ra = newReadAhead(dev, false)
	v.ra.idleAfter = time.Hour
	return v
}

// fsRead is a FUSE READ of n bytes at off through v.
func fsRead(t *testing.T, v *volumeFS, off int64, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	res, st := v.Read(nil, &fuse.ReadIn{Offset: uint64(off), Size: uint32(n)}, buf)
	if !st.Ok() {
		t.Fatalf("read %d at %d: %v", n, off, st)
	}
	out, st := res.Bytes(make([]byte, n))
	res.Done()
	if !st.Ok() || len(out) != n {
		t.Fatalf("read %d at %d: %d bytes, %v", n, off, len(out), st)
	}
	return out
}

// fsWrite is a FUSE WRITE of p at off through v (p is clobbered: the
// device may encrypt in it).
func fsWrite(t *testing.T, v *volumeFS, p []byte, off int64) {
	t.Helper()
	if n, st := v.Write(nil, &fuse.WriteIn{Offset: uint64(off), Size: uint32(len(p))}, p); !st.Ok() || int(n) != len(p) {
		t.Fatalf("write %d at %d: %d, %v", len(p), off, n, st)
	}
}

func randomDevice(t *testing.T, size int64) (*nbdtest.Device, []byte) {
	dev := nbdtest.New(size, 4096)
	want := make([]byte, size)
	rand.Read(want)
	dev.Set(want, 0)
	return dev, want
}

// watchUnmaps counts the read-ahead buffers unmapped until the test ends,
// and fails it if one still held anything but zeroes.
func watchUnmaps(t *testing.T) *atomic.Int64 {
	var n atomic.Int64
	raUnmap = func(b []byte) error {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Error("a read-ahead buffer is unmapped with plaintext in it")
		}
		n.Add(1)
		return unix.Munmap(b)
	}
	t.Cleanup(func() { raUnmap = unix.Munmap })
	return &n
}

// readHalves reads all of want through v as the loop device does, each MiB
// as two requests of 512 KiB, the second half first if swapped, checks the
// bytes, and waits for the read-ahead to end.
func readHalves(t *testing.T, v *volumeFS, want []byte, swapped bool) {
	t.Helper()
	halves := []int64{0, 512 << 10}
	if swapped {
		halves = []int64{512 << 10, 0}
	}
	for mib := int64(0); mib < int64(len(want)); mib += 1 << 20 {
		for _, h := range halves {
			off := mib + h
			if got := fsRead(t, v, off, 512<<10); !bytes.Equal(got, want[off:off+512<<10]) {
				t.Fatalf("read at %d: wrong bytes", off)
			}
		}
	}
	v.ra.fills.Wait()
}

// TestReadAheadSequential: a sequential reader sending each MiB as two
// requests, as the loop device does, gets the right bytes, mostly from
// chunks read ahead: the device sees about one read per MiB instead of two,
// and none past its end. The two halves, in flight together, arrive in
// either order; when the second comes first, the first must not drop the
// chunk the second started reading ahead (each MiB would be read twice).
func TestReadAheadSequential(t *testing.T) {
	for _, swapped := range []bool{false, true} {
		t.Run(map[bool]string{false: "in order", true: "second half first"}[swapped], func(t *testing.T) {
			const size = 16 << 20
			dev, want := randomDevice(t, size)
			v := newRAFS(dev)
			defer v.ra.close()
			readHalves(t, v, want, swapped)
			if n := dev.Reads(); n > size/raChunk+4 {
				t.Errorf("%d device reads for 32 requests, want at most %d", n, size/raChunk+4)
			}
		})
	}
}

// directDevice is a Device that, like cryptvol's volumes, can read around
// the page cache: it counts those reads.
type directDevice struct {
	*nbdtest.Device
	direct atomic.Int64
}

func (d *directDevice) ReadAtDirect(p []byte, off int64) (int, error) {
	d.direct.Add(1)
	return d.Device.ReadAt(p, off)
}

// TestReadAheadDirect: chunks read ahead are filled with the Device's
// ReadAtDirect where it has one (cryptvol's volumes then read the
// ciphertext around the page cache); requests the chunks do not cover are
// read with ReadAt.
func TestReadAheadDirect(t *testing.T) {
	const size = 8 << 20
	d, want := randomDevice(t, size)
	dev := &directDevice{Device: d}
	v := newRAFS(dev)
	defer v.ra.close()
	readHalves(t, v, want, false)
	direct, all := dev.direct.Load(), d.Reads()
	if direct < size/raChunk-1 || direct > size/raChunk {
		t.Errorf("%d chunks filled with ReadAtDirect, want %d or %d (about one per MiB)", direct, size/raChunk-1, size/raChunk)
	}
	if all-direct < 1 || all-direct > 4 {
		t.Errorf("%d requests read with ReadAt, want 1 to 4 (those before the read-ahead)", all-direct)
	}
}

// TestReadAheadBuffersPopulated: a chunk's buffer has its pages when it is
// handed out (btrfs reads directly only into pages already there).
func TestReadAheadBuffersPopulated(t *testing.T) {
	r := newReadAhead(nbdtest.New(4<<20, 4096), false)
	defer r.close()
	r.mu.Lock()
	b := r.buffer(raChunk)
	r.mu.Unlock()
	vec := make([]byte, raChunk/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal("mincore:", e)
	}
	for i, v := range vec {
		if v&1 == 0 {
			t.Fatalf("page %d of a new buffer is not resident", i)
		}
	}
	r.mu.Lock()
	release(b)
	r.mu.Unlock()
}

// TestReadAheadRandom: scattered reads start no read-ahead: the device
// sees each read once and nothing more.
func TestReadAheadRandom(t *testing.T) {
	// Reads 4 MiB apart, 3 MiB into each slot: further than raSlack from
	// each other and from where a reader starts (0), in any order.
	const size, apart, into = 64 << 20, 4 << 20, 3 << 20
	dev, want := randomDevice(t, size)
	v := newRAFS(dev)
	defer v.ra.close()
	order := mrand.Perm(size / apart)
	for i, k := range order {
		off, n := int64(k)*apart+into, 4096
		if i%2 == 0 {
			n = 256 << 10
		}
		if got := fsRead(t, v, off, n); !bytes.Equal(got, want[off:off+int64(n)]) {
			t.Fatalf("read at %d: wrong bytes", off)
		}
	}
	v.ra.fills.Wait()
	if n := dev.Reads(); n != int64(len(order)) {
		t.Errorf("%d device reads for %d scattered requests", n, len(order))
	}
}

// TestReadAheadWriteInvalidates: a write into chunks already read ahead is
// seen by the next read.
func TestReadAheadWriteInvalidates(t *testing.T) {
	const size = 8 << 20
	dev, want := randomDevice(t, size)
	v := newRAFS(dev)
	defer v.ra.close()
	fsRead(t, v, 0, 1<<20)
	fsRead(t, v, 1<<20, 1<<20) // chunks 2 to 5 are now read ahead
	v.ra.fills.Wait()
	p := make([]byte, 64<<10)
	rand.Read(p)
	copy(want[3<<20+4096:], p)
	fsWrite(t, v, bytes.Clone(p), 3<<20+4096)
	for off := int64(2 << 20); off < size; off += 1 << 20 {
		if got := fsRead(t, v, off, 1<<20); !bytes.Equal(got, want[off:off+1<<20]) {
			t.Fatalf("read at %d after the write: wrong bytes", off)
		}
	}
}

// lateReads is a device whose reads, once armed, read and then wait at a
// gate before they return, so a write can land between a read-ahead's read
// of the device and its end.
type lateReads struct {
	*nbdtest.Device
	armed   atomic.Bool
	arrived chan struct{}
	gate    chan struct{}
}

func (d *lateReads) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Device.ReadAt(p, off)
	if d.armed.Load() {
		d.arrived <- struct{}{}
		<-d.gate
	}
	return n, err
}

// TestReadAheadFillRacesWrite: a chunk whose read of the device came
// before a write that returned before the chunk was done is never used.
func TestReadAheadFillRacesWrite(t *testing.T) {
	const size = 8 << 20
	base, want := randomDevice(t, size)
	dev := &lateReads{Device: base, arrived: make(chan struct{}, raDepth), gate: make(chan struct{})}
	v := newRAFS(dev)
	defer v.ra.close()
	fsRead(t, v, 0, 1<<20)
	v.ra.fills.Wait()
	dev.armed.Store(true)
	fsRead(t, v, 1<<20, 1<<20) // a hit, which starts the fill of chunk 5
	<-dev.arrived              // chunk 5's bytes are read, old
	p := make([]byte, 1<<20)
	rand.Read(p)
	copy(want[5<<20:], p)
	fsWrite(t, v, bytes.Clone(p), 5<<20)
	dev.armed.Store(false)
	close(dev.gate)
	v.ra.fills.Wait()
	if got := fsRead(t, v, 5<<20, 1<<20); !bytes.Equal(got, want[5<<20:6<<20]) {
		t.Fatal("read after the write returned the bytes of before it")
	}
}

// lateWrites is a device whose writes, once armed, wait at a gate before
// they reach the device.
type lateWrites struct {
	*nbdtest.Device
	armed   atomic.Bool
	arrived chan struct{}
	gate    chan struct{}
}

func (d *lateWrites) WriteAt(p []byte, off int64) (int, error) {
	if d.armed.Load() {
		d.arrived <- struct{}{}
		<-d.gate
	}
	return d.Device.WriteAt(p, off)
}

// TestReadAheadFillDuringWrite: a chunk read ahead while a write to it was
// on its way to the device, so holding the bytes of before it, is not used
// once the write has returned.
func TestReadAheadFillDuringWrite(t *testing.T) {
	const size = 8 << 20
	base, want := randomDevice(t, size)
	dev := &lateWrites{Device: base, arrived: make(chan struct{}, 1), gate: make(chan struct{})}
	v := newRAFS(dev)
	defer v.ra.close()
	fsRead(t, v, 0, 1<<20) // chunks 1 to 4 are read ahead
	v.ra.fills.Wait()
	dev.armed.Store(true)
	p := make([]byte, 1<<20)
	rand.Read(p)
	copy(want[5<<20:], p)
	wrote := make(chan fuse.Status, 1)
	go func() {
		_, st := v.Write(nil, &fuse.WriteIn{Offset: 5 << 20, Size: 1 << 20}, bytes.Clone(p))
		wrote <- st
	}()
	<-dev.arrived              // the write is on its way
	fsRead(t, v, 1<<20, 1<<20) // a hit, which reads chunk 5 ahead: old bytes
	v.ra.fills.Wait()
	dev.armed.Store(false)
	close(dev.gate)
	if st := <-wrote; !st.Ok() {
		t.Fatalf("write: %v", st)
	}
	if got := fsRead(t, v, 5<<20, 1<<20); !bytes.Equal(got, want[5<<20:6<<20]) {
		t.Fatal("read after the write returned the bytes of before it")
	}
}

// TestReadAheadConcurrent: sequential readers and a writer at once. Every
// 4 KiB block holds the number of the write that wrote it; a read must
// never return a block older than the last write to it that had returned
// when the read began.
func TestReadAheadConcurrent(t *testing.T) {
	const size, block = 16 << 20, 4096
	dev := nbdtest.New(size, block)
	v := newRAFS(dev)
	defer v.ra.close()
	var committed [size / block]atomic.Uint64
	var version atomic.Uint64
	ops := 400
	if testing.Short() {
		ops = 100
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 2 { // sequential readers, two requests in flight each
		wg.Go(func() {
			pos := int64(mrand.IntN(size/raChunk)) * raChunk
			for range ops {
				var inner sync.WaitGroup
				for half := range int64(2) {
					off := (pos + half*raChunk/2) % size
					var need [raChunk / 2 / block]uint64
					for i := range need {
						need[i] = committed[off/block+int64(i)].Load()
					}
					inner.Go(func() {
						buf := make([]byte, raChunk/2)
						res, st := v.Read(nil, &fuse.ReadIn{Offset: uint64(off), Size: raChunk / 2}, buf)
						if !st.Ok() {
							errs <- fmt.Errorf("read at %d: %v", off, st)
							return
						}
						got, _ := res.Bytes(make([]byte, raChunk/2))
						res.Done()
						for i := range need {
							for _, w := range []int{0, block - 8} { // the block's first and last words
								if have := binary.LittleEndian.Uint64(got[i*block+w:]); have < need[i] {
									errs <- fmt.Errorf("block %d: write %d read back after write %d had returned", off/block+int64(i), have, need[i])
									return
								}
							}
						}
					})
				}
				inner.Wait()
				pos = (pos + raChunk) % size
				if mrand.IntN(20) == 0 {
					pos = int64(mrand.IntN(size/raChunk)) * raChunk
				}
			}
		})
	}
	wg.Go(func() {
		for range ops {
			n := (1 + mrand.IntN(64)) * block
			off := int64(mrand.IntN((size-n)/block)) * block
			ver := version.Add(1)
			p := make([]byte, n)
			for w := 0; w < n; w += 8 {
				binary.LittleEndian.PutUint64(p[w:], ver)
			}
			if _, st := v.Write(nil, &fuse.WriteIn{Offset: uint64(off), Size: uint32(n)}, p); !st.Ok() {
				errs <- fmt.Errorf("write at %d: %v", off, st)
				return
			}
			for b := off / block; b < (off+int64(n))/block; b++ {
				for {
					old := committed[b].Load()
					if old >= ver || committed[b].CompareAndSwap(old, ver) {
						break
					}
				}
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestReadAheadClose: close waits for the reads ahead and clears every
// chunk's plaintext; later reads go to the device.
func TestReadAheadClose(t *testing.T) {
	const size = 8 << 20
	dev, want := randomDevice(t, size)
	unmapped := watchUnmaps(t)
	v := newRAFS(dev)
	fsRead(t, v, 0, 1<<20)
	fsRead(t, v, 1<<20, 1<<20)
	v.ra.fills.Wait()
	v.ra.mu.Lock()
	held := len(v.ra.chunks) + len(v.ra.free)
	v.ra.mu.Unlock()
	if held == 0 {
		t.Fatal("nothing was read ahead")
	}
	v.ra.close()
	if n := unmapped.Load(); n != int64(held) {
		t.Fatalf("close unmapped %d buffers of %d", n, held)
	}
	if got := fsRead(t, v, 2<<20, 1<<20); !bytes.Equal(got, want[2<<20:3<<20]) {
		t.Fatal("read after close: wrong bytes")
	}
}

// TestReadAheadIdle: chunks answered in full go at once, and the rest, with
// the spare buffers, when no read comes for a while; all cleared.
func TestReadAheadIdle(t *testing.T) {
	const size = 8 << 20
	dev, _ := randomDevice(t, size)
	unmapped := watchUnmaps(t)
	v := newRAFS(dev)
	defer v.ra.close()
	fsRead(t, v, 0, 1<<20)
	fsRead(t, v, 1<<20, 1<<20)
	v.ra.fills.Wait()
	v.ra.mu.Lock()
	_, kept := v.ra.chunks[1<<20]
	chunks := len(v.ra.chunks)
	v.ra.mu.Unlock()
	if kept {
		t.Error("chunk 1, answered in full, is still kept")
	}
	if chunks != raDepth {
		t.Fatalf("%d chunks read ahead, want %d", chunks, raDepth)
	}
	v.ra.mu.Lock()
	v.ra.idleAfter = 10 * time.Millisecond // as if the hour had passed
	v.ra.idle.Reset(v.ra.idleAfter)
	v.ra.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v.ra.mu.Lock()
		n, spare := len(v.ra.chunks), len(v.ra.free)
		v.ra.mu.Unlock()
		if n == 0 && spare == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d chunks and %d spare buffers still kept after a long idle time", n, spare)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Chunk 1, then the spare it became, and the four chunks.
	if n := unmapped.Load(); n != 1+raDepth {
		t.Errorf("%d buffers unmapped, want %d", n, 1+raDepth)
	}
}

// TestFUSEFileReadAhead: through the kernel, sequential 1 MiB reads of the
// loop path's file, with writes between them, return what was written;
// the replies made from chunks read ahead (written to the kernel without a
// copy) included.
func TestFUSEFileReadAhead(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	const size = 16 << 20
	dev, want := randomDevice(t, size)
	f := serveForTest(t, dev, false)
	file, err := os.OpenFile(f.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for pass := range 2 {
		buf := make([]byte, 1<<20)
		for off := int64(0); off < size; off += 1 << 20 {
			if _, err := file.ReadAt(buf, off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf, want[off:off+1<<20]) {
				t.Fatalf("pass %d: read at %d: wrong bytes", pass, off)
			}
			if off%(3<<20) == 0 && off+3<<20 < size {
				p := make([]byte, 128<<10)
				rand.Read(p)
				at := off + 2<<20 + 4096
				copy(want[at:], p)
				if _, err := file.WriteAt(p, at); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// Each pass's first MiB, and each MiB a write dropped, is read from
	// the device; the rest were read ahead.
	if hits := f.vfs.ra.hits.Load(); hits < 2*(size>>20)-14 {
		t.Errorf("%d of %d sequential 1 MiB reads were answered from chunks read ahead", hits, 2*(size>>20))
	}
}
