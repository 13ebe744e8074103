// Package nbdtest provides an in-memory block device for the tests of
// package nbd and of everything else that serves a block device (the FUSE
// file, the loop path).
package nbdtest

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// chunk is the unit of storage: only chunks written to take memory, so a
// 320 MiB device for mkfs.xfs costs what mkfs writes.
const chunk = 64 << 10

// Device is an in-memory block device. Unwritten space reads as zeroes. It
// keeps the contents as of the last Sync apart (Durable), so tests can check
// what a flush made durable; it counts calls; it can fail calls on request;
// and it counts any two calls that ran at once on overlapping sectors where
// one of them wrote (Conflicts), which a server must never let happen.
type Device struct {
	size   int64
	sector int

	mu       sync.Mutex
	data     map[int64][]byte // chunk index -> contents
	durable  map[int64][]byte
	dirty    map[int64]bool // chunks written since the last Sync
	readErr  error
	writeErr error
	syncErr  error
	discards [][2]int64

	gate chan struct{} // if non-nil, WriteAt waits for it to be closed or fed

	syncs, reads, writes, conflicts atomic.Int64

	activeMu sync.Mutex
	active   []*span
}

// New returns a zeroed device of size bytes with the given sector size.
func New(size int64, sectorSize int) *Device {
	return &Device{size: size, sector: sectorSize,
		data: map[int64][]byte{}, durable: map[int64][]byte{}, dirty: map[int64]bool{}}
}

func (d *Device) Size() int64     { return d.size }
func (d *Device) SectorSize() int { return d.sector }

// Syncs, Reads and Writes count the calls so far; Conflicts counts
// overlapping calls of which one wrote.
func (d *Device) Syncs() int64     { return d.syncs.Load() }
func (d *Device) Reads() int64     { return d.reads.Load() }
func (d *Device) Writes() int64    { return d.writes.Load() }
func (d *Device) Conflicts() int64 { return d.conflicts.Load() }

// span is a sector range a call is working on.
type span struct {
	start, end int64
	write      bool
}

func (d *Device) enter(off int64, n int, write bool) *span {
	s := int64(d.sector)
	r := &span{start: off / s * s, end: (off + int64(n) + s - 1) / s * s, write: write}
	d.activeMu.Lock()
	for _, a := range d.active {
		if (a.write || r.write) && a.start < r.end && r.start < a.end {
			d.conflicts.Add(1)
		}
	}
	d.active = append(d.active, r)
	d.activeMu.Unlock()
	return r
}

func (d *Device) exit(r *span) {
	d.activeMu.Lock()
	for i, a := range d.active {
		if a == r {
			d.active = append(d.active[:i], d.active[i+1:]...)
			break
		}
	}
	d.activeMu.Unlock()
}

// copyOut copies [off, off+len(p)) of m into p; the caller holds mu.
func copyOut(m map[int64][]byte, p []byte, off int64) {
	for n := 0; n < len(p); {
		c, in := (off+int64(n))/chunk, (off+int64(n))%chunk
		k := min(len(p)-n, int(chunk-in))
		if b, ok := m[c]; ok {
			copy(p[n:n+k], b[in:])
		} else {
			clear(p[n : n+k])
		}
		n += k
	}
}

// copyIn copies p into m at off and marks the chunks dirty; the caller holds mu.
func (d *Device) copyIn(p []byte, off int64) {
	for n := 0; n < len(p); {
		c, in := (off+int64(n))/chunk, (off+int64(n))%chunk
		k := min(len(p)-n, int(chunk-in))
		b, ok := d.data[c]
		if !ok {
			b = make([]byte, chunk)
			d.data[c] = b
		}
		copy(b[in:], p[n:n+k])
		d.dirty[c] = true
		n += k
	}
}

// ReadAt reads like io.ReaderAt; reading past the end returns io.EOF.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	r := d.enter(off, len(p), false)
	defer d.exit(r)
	d.reads.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.readErr != nil {
		return 0, d.readErr
	}
	if off < 0 || off > d.size {
		return 0, errors.New("nbdtest: read offset out of range")
	}
	n := int(min(int64(len(p)), d.size-off))
	copyOut(d.data, p[:n], off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt writes inside the device; a write past the end is an error.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	r := d.enter(off, len(p), true)
	defer d.exit(r)
	d.mu.Lock()
	gate := d.gate
	d.mu.Unlock()
	if gate != nil {
		<-gate
	}
	d.writes.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.writeErr != nil {
		return 0, d.writeErr
	}
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, errors.New("nbdtest: write out of range")
	}
	d.copyIn(p, off)
	return len(p), nil
}

// Sync makes the current contents durable.
func (d *Device) Sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.syncErr != nil {
		return d.syncErr
	}
	for c := range d.dirty {
		if b, ok := d.durable[c]; ok {
			copy(b, d.data[c])
		} else {
			d.durable[c] = append([]byte(nil), d.data[c]...)
		}
	}
	clear(d.dirty)
	d.syncs.Add(1)
	return nil
}

// Contents returns a copy of the whole device as it reads now.
func (d *Device) Contents() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := make([]byte, d.size)
	copyOut(d.data, b, 0)
	return b
}

// Durable returns a copy of the whole device as of the last Sync.
func (d *Device) Durable() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := make([]byte, d.size)
	copyOut(d.durable, b, 0)
	return b
}

// Set writes p at off behind any server's back: not counted, not gated, not
// failed, not durable until the next Sync.
func (d *Device) Set(p []byte, off int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.copyIn(p, off)
}

// SetErrors makes every later ReadAt, WriteAt or Sync fail with the given
// error (nil: succeed).
func (d *Device) SetErrors(read, write, sync error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.readErr, d.writeErr, d.syncErr = read, write, sync
}

// HoldWrites makes WriteAt wait until release is called (once).
func (d *Device) HoldWrites() (release func()) {
	g := make(chan struct{})
	d.mu.Lock()
	d.gate = g
	d.mu.Unlock()
	return sync.OnceFunc(func() { close(g) })
}

// Discarding is a Device that can discard sectors (nbd.Discarder).
// Discarded sectors read back as 0xdd, which a server must never pass off
// as zeroes.
type Discarding struct{ *Device }

// Discard fills whole sectors with 0xdd and records the call.
func (d Discarding) Discard(off, length int64) error {
	r := d.enter(off, int(length), true)
	defer d.exit(r)
	d.mu.Lock()
	defer d.mu.Unlock()
	if off%int64(d.sector) != 0 || length%int64(d.sector) != 0 {
		return fmt.Errorf("nbdtest: discard of %d bytes at %d is not whole sectors", length, off)
	}
	fill := make([]byte, min(length, chunk))
	for i := range fill {
		fill[i] = 0xdd
	}
	for done := int64(0); done < length; done += int64(len(fill)) {
		d.copyIn(fill[:min(int64(len(fill)), length-done)], off+done)
	}
	d.discards = append(d.discards, [2]int64{off, length})
	return nil
}

// Discards returns the (offset, length) of every Discard call so far.
func (d Discarding) Discards() [][2]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][2]int64(nil), d.discards...)
}
