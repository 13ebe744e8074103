package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/kdf"
)

// Volume is the plaintext view of an open vault: ReadAt and WriteAt at any
// offset and length (read-modify-write inside a sector), Sync, Size. It is safe
// for concurrent use. Close wipes the cipher keys; after it every call returns
// ErrClosed.
type Volume struct {
	path     string
	f        *os.File
	readOnly bool
	typ      Type
	uuid     string
	geom     Geometry
	dataOff  int64
	size     int64
	ss       int
	ivStep   uint64 // IVs per sector (Geometry.IVStep)

	keys *memguard.LockedBuffer // expanded cipher keys, owned here
	sc   cipher.Sector

	// tripped is set by the first write that reached geom.Protected: from
	// then on every write fails, as VeraCrypt does.
	tripped atomic.Bool

	life   sync.RWMutex // held shared by every I/O call, exclusively by Close
	closed bool
	// rmw orders partial-sector writes (exclusive) against whole-sector
	// writes (shared), so a read-modify-write never loses a concurrent write.
	rmw  sync.RWMutex
	bufs sync.Pool

	// direct is the vault file opened again with O_DIRECT, for
	// ReadAtDirect: opened on its first call, nil where it cannot be.
	directOnce sync.Once
	direct     *os.File
	// noDirect is set by the first direct read that fails: the
	// filesystem refuses them, and ReadAtDirect is ReadAt from then on.
	noDirect atomic.Bool
}

// OpenOptions tune Open and OpenWithKey.
type OpenOptions struct {
	ReadOnly bool
	// Slots restricts the keyslots tried by Open (nil: all).
	Slots []int
	// Warn receives notices such as a repaired header copy.
	Warn func(msg string)
	// Context and Budget are those of Open's unlock (see UnlockOptions).
	Context context.Context
	Budget  kdf.Work
	// Header is a detached LUKS2 header file (see UnlockOptions.Header).
	Header string
	// Type is the container format (see UnlockOptions.Type), TCrypt the
	// options of a VeraCrypt or TrueCrypt unlock.
	Type   Type
	TCrypt TCryptOptions
	// Geometry is, for OpenWithKey, the geometry of the unlocked vault
	// (Vault.Geometry) for formats whose header cannot be read with the
	// master key alone (VeraCrypt, TrueCrypt). Formats that can read it
	// ignore it and verify the key against their header instead.
	Geometry *Geometry
}

// Open unlocks the vault at path with s and opens its data area. The vault is
// locked against a second read-write open (ErrInUse).
func Open(path string, s Secret, opts *OpenOptions) (*Volume, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	v, err := Unlock(path, s, &UnlockOptions{Slots: opts.Slots, ReadOnly: opts.ReadOnly, Warn: opts.Warn,
		Context: opts.Context, Budget: opts.Budget, Header: opts.Header, Type: opts.Type, TCrypt: opts.TCrypt})
	if err != nil {
		return nil, err
	}
	defer v.Close()
	return v.Open(opts)
}

// Open opens the data area of the unlocked vault v (at its path): a Volume
// with a copy of the master key, as Open returns it; v stays usable.
func (v *Vault) Open(opts *OpenOptions) (*Volume, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	key := v.k.masterKey()
	if key == nil {
		return nil, ErrClosed
	}
	o := *opts
	o.Type = v.typ
	g := v.Geometry()
	o.Geometry = &g
	mk := memguard.NewBuffer(key.Size())
	copy(mk.Bytes(), key.Bytes())
	return openWithKey(v.path, v.typ, mk, &o)
}

// OpenWithKey opens the data area with a master key read from r (as written by
// Vault.WriteKey), verifying it against the header where the format allows
// (cryptvol's, LUKS); a VeraCrypt or TrueCrypt volume needs opts.Type and
// opts.Geometry, as Vault.Type and Vault.Geometry gave them.
func OpenWithKey(path string, r io.Reader, opts *OpenOptions) (*Volume, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	typ := opts.Type
	var err error
	if typ == "" {
		if typ, err = detectFile(headerPath(path, opts.Header)); err != nil {
			return nil, err
		}
	}
	size := 0
	switch typ {
	case TypeCryptvol:
		size = header.MasterKeySize
	case TypeLUKS1, TypeLUKS2:
		if size, err = luksKeySize(headerPath(path, opts.Header)); err != nil {
			return nil, err
		}
	case TypeVeraCrypt, TypeTrueCrypt:
		if opts.Geometry == nil {
			return nil, fmt.Errorf("%s: a %s volume's geometry must come with its key", path, typ)
		}
		spec, err := cipher.ParseSpec(opts.Geometry.Cipher, opts.Geometry.KeySize)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, &damagedError{err})
		}
		size = spec.KeySize
	default:
		return nil, fmt.Errorf("%s: %w", path, damaged("unsupported container format %q", typ))
	}
	mk := memguard.NewBuffer(size)
	if _, err := io.ReadFull(r, mk.Bytes()); err != nil {
		mk.Destroy()
		return nil, fmt.Errorf("reading the master key: %w", err)
	}
	return openWithKey(path, typ, mk, opts)
}

// openWithKey opens the data area; it consumes (destroys) mk.
func openWithKey(path string, typ Type, mk *memguard.LockedBuffer, opts *OpenOptions) (*Volume, error) {
	defer mk.Destroy()
	flag := os.O_RDWR
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	vol, err := newVolume(f, path, opts.Header, typ, mk, opts.ReadOnly, opts.Geometry)
	if err != nil {
		f.Close()
		return nil, err
	}
	return vol, nil
}

// newVolume locks f's data area, verifies mk against the header (or, for a
// format whose header the key alone does not open, takes the geometry given
// with the key), and sets up the cipher. It does not consume mk.
func newVolume(f *os.File, path, hdr string, typ Type, mk *memguard.LockedBuffer, readOnly bool, given *Geometry) (*Volume, error) {
	if err := lockByte(f, dataLockByte, !readOnly, false); err != nil {
		if errors.Is(err, ErrInUse) {
			return nil, fmt.Errorf("%s: %w (already open)", path, err)
		}
		return nil, err
	}
	var g Geometry
	var uuid string
	var err error
	switch typ {
	case TypeCryptvol:
		g, uuid, err = v1KeyGeometry(f, path, mk)
	case TypeLUKS1, TypeLUKS2:
		g, uuid, err = luksKeyGeometry(path, headerPath(path, hdr), mk)
	case TypeVeraCrypt, TypeTrueCrypt:
		g, err = checkGivenGeometry(f, path, given)
	default:
		err = fmt.Errorf("%s: %w", path, damaged("unsupported container format %q", typ))
	}
	if err != nil {
		return nil, err
	}
	return newVolumeAt(f, path, typ, uuid, g, mk, readOnly)
}

// v1KeyGeometry reads the header of a v1 vault and authenticates it with mk:
// a key handed over by another process opens only the vault it came from.
func v1KeyGeometry(f *os.File, path string, mk *memguard.LockedBuffer) (Geometry, string, error) {
	if err := lockByte(f, headerLockByte, false, true); err != nil {
		return Geometry{}, "", err
	}
	l, err := readLayout(f)
	unlockByte(f, headerLockByte)
	if err != nil {
		return Geometry{}, "", fmt.Errorf("%s: %w", path, err)
	}
	h := l.winner.h
	if ok, err := verifyMAC(h, mk); err != nil {
		return Geometry{}, "", err
	} else if !ok {
		other := &l.backup
		if l.winner == other {
			other = &l.primary
		}
		if ok, _ := verifyMAC(other.h, mk); !ok {
			return Geometry{}, "", fmt.Errorf("%s: %w", path, damaged("header authentication failed with this key (tampered, damaged, or another vault's key)"))
		}
		h = other.h
	}
	return v1Geometry(h), FormatUUID(h.UUID), nil
}

// newVolumeAt sets up the cipher for geometry g with mk (not consumed).
func newVolumeAt(f *os.File, path string, typ Type, uuid string, g Geometry, mk *memguard.LockedBuffer, readOnly bool) (*Volume, error) {
	spec, err := cipher.ParseSpec(g.Cipher, g.KeySize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, &damagedError{err})
	}
	if mk.Size() != g.KeySize {
		return nil, fmt.Errorf("%s: the master key is %d bytes, the cipher takes %d", path, mk.Size(), g.KeySize)
	}
	keys := memguard.NewBuffer(spec.StateSize())
	var sc cipher.Sector
	// Key expansion leaves words of the key in its stack frames.
	kdf.OnCleanStack(func() { sc, err = cipher.NewSector(spec, mk.Bytes(), keys.Bytes(), g.SectorSize) })
	if err != nil {
		keys.Destroy()
		return nil, err
	}
	v := &Volume{
		path: path, f: f, readOnly: readOnly, typ: typ, uuid: uuid, geom: g,
		dataOff: g.Offset, size: g.Size, ss: g.SectorSize, ivStep: max(g.IVStep, 1),
		keys: keys, sc: sc,
	}
	v.bufs.New = func() any { b := make([]byte, chunkSize); return &b }
	return v, nil
}

// chunkSize is the unit of write encryption (through a pooled buffer, since the
// caller's plaintext must not be modified) and of unaligned I/O.
const chunkSize = 1 << 20

// parallelMin is the smallest request whose cipher work is split across CPUs.
// Below it, waking a goroutine on another CPU costs more than it saves:
// BenchmarkCryptSplit on the 2-CPU CI machine found two goroutines slower
// than one up to 1 MiB (82 µs alone, 79-105 µs split) and at 2 MiB even at
// best, and 1.6 times faster at 4 MiB when the other CPU was idle. With
// several requests in flight, as servers have, every CPU is busy anyway.
const parallelMin = 4 << 20

// Path returns the vault file's path.
func (v *Volume) Path() string { return v.path }

// Size returns the plaintext size in bytes.
func (v *Volume) Size() int64 { return v.size }

// SectorSize returns the encryption sector size (512 or 4096).
func (v *Volume) SectorSize() int { return v.ss }

// ReadOnly reports whether the volume was opened read-only.
func (v *Volume) ReadOnly() bool { return v.readOnly }

// UUID returns the vault's uuid in its usual text form.
func (v *Volume) UUID() string { return v.uuid }

// Type returns the vault's format.
func (v *Volume) Type() Type { return v.typ }

// Geometry returns where the data is and how it is encrypted.
func (v *Volume) Geometry() Geometry { return v.geom }

// CipherImplementation names the XTS code path in use.
func (v *Volume) CipherImplementation() string { return v.sc.Implementation() }

func (v *Volume) enter() error {
	v.life.RLock()
	if v.closed {
		v.life.RUnlock()
		return ErrClosed
	}
	return nil
}

func (v *Volume) leave() { v.life.RUnlock() }

// span clips [off, off+len) to the volume and reports whether it was clipped.
func (v *Volume) span(n int, off int64) (int, bool, error) {
	if off < 0 {
		return 0, false, fmt.Errorf("negative offset %d", off)
	}
	if off >= v.size {
		return 0, true, nil
	}
	if int64(n) > v.size-off {
		return int(v.size - off), true, nil
	}
	return n, false, nil
}

func (v *Volume) aligned(n int, off int64) bool {
	return off%int64(v.ss) == 0 && n%v.ss == 0
}

// ReadAt reads plaintext. Reading at or past the end returns io.EOF, as
// io.ReaderAt requires.
func (v *Volume) ReadAt(p []byte, off int64) (int, error) {
	return v.read(p, off, false)
}

// ReadAtDirect is ReadAt for data that will not be read again soon, such as
// what a server reads ahead of a sequential reader: the ciphertext goes from
// the disk straight into p (O_DIRECT) and is decrypted there, instead of
// passing through the page cache, which costs a page and a copy per 4 KiB
// and pushes other data out; and several such reads in flight keep the disk
// busier than the kernel's read-ahead of a buffered file does. Ciphertext
// already all in the page cache is read from there, as ReadAt does (where
// the kernel can tell: cachestat, Linux 6.5). So is everything where direct
// reads are not known to see the vault's own buffered writes (the vault file
// on a filesystem other than ext4, XFS or btrfs), and every read that
// O_DIRECT cannot do: p not starting on a 4096-byte boundary, len(p) or the
// position in the vault file (its data offset plus off) not a multiple of
// 4096.
func (v *Volume) ReadAtDirect(p []byte, off int64) (int, error) {
	return v.read(p, off, true)
}

// read is ReadAt, or ReadAtDirect if direct.
func (v *Volume) read(p []byte, off int64, direct bool) (int, error) {
	if err := v.enter(); err != nil {
		return 0, err
	}
	defer v.leave()
	n, clipped, err := v.span(len(p), off)
	if err != nil {
		return 0, err
	}
	p = p[:n]
	switch {
	case !v.aligned(n, off):
		err = v.readUnaligned(p, off)
	case direct && directAligned(p, v.dataOff+off) && !v.noDirect.Load() && v.directFile() != nil && !cachedAll(v.f, v.dataOff+off, int64(n)):
		err = v.readDirect(p, off)
	default:
		err = v.readSectors(p, off)
	}
	if err != nil {
		return 0, err
	}
	if clipped {
		return n, io.EOF
	}
	return n, nil
}

// directFile returns the vault file opened for direct reads, or nil.
func (v *Volume) directFile() *os.File {
	v.directOnce.Do(func() { v.direct = openDirect(v.f) })
	return v.direct
}

// readDirect reads whole sectors from the disk straight into p and decrypts
// them in place. A direct read that fails (a filesystem may refuse one it
// did not refuse at open, such as a device whose blocks are larger than
// 4096 bytes) is done again through the page cache, which reports its own
// error if the data cannot be read at all, and no direct read is tried
// again.
func (v *Volume) readDirect(p []byte, off int64) error {
	if _, err := v.direct.ReadAt(p, v.dataOff+off); err != nil {
		v.noDirect.Store(true)
		return v.readSectors(p, off)
	}
	v.crypt(v.sc.Decrypt, p, p, off)
	return nil
}

// readSectors reads whole sectors straight into p and decrypts them in place.
func (v *Volume) readSectors(p []byte, off int64) error {
	if err := v.pread(p, off); err != nil {
		return err
	}
	v.crypt(v.sc.Decrypt, p, p, off)
	return nil
}

func (v *Volume) readUnaligned(p []byte, off int64) error {
	bp := v.bufs.Get().(*[]byte)
	defer v.bufs.Put(bp)
	ss := int64(v.ss)
	for len(p) > 0 {
		s0 := off / ss * ss
		end := min(off+int64(len(p)), s0+chunkSize)
		end = (end + ss - 1) / ss * ss
		b := (*bp)[:end-s0]
		if err := v.readSectors(b, s0); err != nil {
			return err
		}
		n := copy(p, b[off-s0:])
		clear(b) // plaintext does not linger in pooled buffers
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// WriteAt writes plaintext; p is not modified. Writing past the end is an error.
func (v *Volume) WriteAt(p []byte, off int64) (int, error) {
	return v.write(p, off, false)
}

// WriteAtInPlace is WriteAt for a caller that owns p and has no further use
// for its contents, such as a server writing a request's payload: a write of
// whole sectors is encrypted in p itself, which then holds ciphertext, instead
// of being copied through a buffer of the Volume's. That spares the buffer
// (the memory of one per write in flight) and leaves no plaintext behind in p.
// An unaligned write leaves p unchanged.
func (v *Volume) WriteAtInPlace(p []byte, off int64) (int, error) {
	return v.write(p, off, true)
}

func (v *Volume) write(p []byte, off int64, inPlace bool) (int, error) {
	if err := v.enter(); err != nil {
		return 0, err
	}
	defer v.leave()
	if v.readOnly {
		return 0, ErrReadOnly
	}
	n, clipped, err := v.span(len(p), off)
	if err != nil {
		return 0, err
	}
	if clipped {
		return 0, fmt.Errorf("write of %d bytes at %d goes past the end of the volume (%d bytes)", len(p), off, v.size)
	}
	if err := v.checkProtected(off, int64(n)); err != nil {
		return 0, err
	}
	switch {
	case v.aligned(n, off) && inPlace:
		v.rmw.RLock()
		v.crypt(v.sc.Encrypt, p, p, off)
		err = v.pwrite(p, off)
		v.rmw.RUnlock()
	case v.aligned(n, off):
		v.rmw.RLock()
		err = v.writeSectors(p, off)
		v.rmw.RUnlock()
	default:
		v.rmw.Lock()
		err = v.writeUnaligned(p, off)
		v.rmw.Unlock()
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// writeSectors encrypts whole sectors chunk by chunk into a pooled buffer and
// writes them.
func (v *Volume) writeSectors(p []byte, off int64) error {
	bp := v.bufs.Get().(*[]byte)
	defer v.bufs.Put(bp)
	for len(p) > 0 {
		n := min(len(p), chunkSize)
		b := (*bp)[:n]
		v.crypt(v.sc.Encrypt, b, p[:n], off)
		if err := v.pwrite(b, off); err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// writeUnaligned merges p into the partial sectors at its edges (decrypted
// from disk) and writes whole sectors. The caller holds rmw exclusively.
func (v *Volume) writeUnaligned(p []byte, off int64) error {
	bp := v.bufs.Get().(*[]byte)
	defer v.bufs.Put(bp)
	ss := int64(v.ss)
	for len(p) > 0 {
		s0 := off / ss * ss
		end := min(off+int64(len(p)), s0+chunkSize)
		end = (end + ss - 1) / ss * ss
		b := (*bp)[:end-s0]
		head := off - s0
		n := min(len(p), len(b)-int(head))
		if head != 0 {
			if err := v.readSectors(b[:ss], s0); err != nil {
				return err
			}
		}
		if tail := (head + int64(n)) % ss; tail != 0 && (len(b) > v.ss || head == 0) {
			if err := v.readSectors(b[len(b)-v.ss:], end-ss); err != nil {
				return err
			}
		}
		copy(b[head:], p[:n])
		v.crypt(v.sc.Encrypt, b, b, s0)
		if err := v.pwrite(b, s0); err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// crypt applies op to whole sectors of src starting at plaintext offset off,
// split across CPUs when the request is large enough to gain from it.
func (v *Volume) crypt(op func(dst, src []byte, sector uint64), dst, src []byte, off int64) {
	v.cryptIn(cryptParts(len(src)), op, dst, src, off)
}

// cryptParts is how many goroutines crypt spreads n bytes over: one below
// parallelMin, else one per parallelMin/2 bytes, at most one per CPU.
func cryptParts(n int) int {
	if n < parallelMin {
		return 1
	}
	return max(1, min(runtime.GOMAXPROCS(0), n/(parallelMin/2)))
}

// cryptIn is crypt over parts goroutines (BenchmarkCryptSplit chooses them).
func (v *Volume) cryptIn(parts int, op func(dst, src []byte, sector uint64), dst, src []byte, off int64) {
	index := uint64(off / int64(v.ss))
	if parts < 2 || len(src) < 2*v.ss {
		v.apply(op, dst, src, index)
		return
	}
	per := (len(src)/parts + v.ss - 1) / v.ss * v.ss
	var wg sync.WaitGroup
	for start := 0; start < len(src); start += per {
		end := min(start+per, len(src))
		wg.Go(func() { v.apply(op, dst[start:end], src[start:end], index+uint64(start/v.ss)) })
	}
	wg.Wait()
}

// apply runs op over the whole sectors of src, the first of index n, with
// their IVs: consecutive ones in one call, or sector by sector when IVs step
// by more than one (LUKS with sectors larger than 512 bytes).
func (v *Volume) apply(op func(dst, src []byte, sector uint64), dst, src []byte, n uint64) {
	if v.ivStep == 1 {
		op(dst, src, v.geom.IVOffset+n)
		return
	}
	for i := 0; i < len(src); i += v.ss {
		op(dst[i:i+v.ss], src[i:i+v.ss], v.geom.IVOffset+(n+uint64(i/v.ss))*v.ivStep)
	}
}

func (v *Volume) pread(b []byte, off int64) error {
	if _, err := v.f.ReadAt(b, v.dataOff+off); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", v.path, damaged("vault file is shorter than its header says"))
		}
		return err
	}
	return nil
}

// writeBehindMin is the smallest write whose writeback pwrite starts at once.
// Smaller writes stay dirty in the page cache, where rewrites of the same
// blocks (metadata, journals) and neighbours merge: started one by one, 4 KiB
// random writes ran at half the rate (fio, 16 in flight, on the loop path).
const writeBehindMin = 128 << 10

// pwrite writes ciphertext to the data area; a large write it also starts
// writing back to the disk at once (sync_file_range SYNC_FILE_RANGE_WRITE:
// no waiting, no durability promise; Sync still gives that). Writes reach a
// Volume from a cache of their own (the filesystem's above the loop device, a
// virtual machine's, an NBD client's) that has already decided to write them;
// held back as dirty pages of the vault file they only piled up for the next
// flush, which then had to write them all while its caller waited. dm-crypt
// sends its writes on to the disk the same way. The cost: writes that are
// never flushed now go at the disk's pace rather than memory's. Errors are
// ignored: this only changes when the kernel writes.
func (v *Volume) pwrite(b []byte, off int64) error {
	if _, err := v.f.WriteAt(b, v.dataOff+off); err != nil {
		return err
	}
	if len(b) >= writeBehindMin {
		writeBehind(v.f, v.dataOff+off, int64(len(b)))
	}
	return nil
}

// Sync makes every completed write durable (fdatasync of the vault file).
func (v *Volume) Sync() error {
	if err := v.enter(); err != nil {
		return err
	}
	defer v.leave()
	if v.readOnly {
		return nil
	}
	return fdatasync(v.f)
}

// Discard releases whole sectors of the vault file (punches a hole): they read
// back as pseudo-random plaintext. It reveals on disk which sectors are unused,
// so callers offer it only on request (see SECURITY.md).
func (v *Volume) Discard(off, length int64) error {
	if err := v.enter(); err != nil {
		return err
	}
	defer v.leave()
	if v.readOnly {
		return ErrReadOnly
	}
	if length <= 0 {
		return fmt.Errorf("discard of %d bytes: length must be positive", length)
	}
	if n, clipped, err := v.span(int(min(length, v.size)), off); err != nil || clipped || int64(n) != length || !v.aligned(n, off) {
		return fmt.Errorf("discard of %d bytes at %d: not whole sectors inside the volume", length, off)
	}
	if err := v.checkProtected(off, length); err != nil {
		return err
	}
	v.rmw.Lock()
	defer v.rmw.Unlock()
	return punchHole(v.f, v.dataOff+off, length)
}

// checkProtected refuses a write of n bytes at off that reaches the
// protected range, and every write once one has.
func (v *Volume) checkProtected(off, n int64) error {
	p := v.geom.Protected
	if p == nil {
		return nil
	}
	if v.tripped.Load() {
		return &ProtectedError{Offset: off, Size: n, Range: *p, After: true}
	}
	if n > 0 && off < p.End() && off+n > p.Offset {
		v.tripped.Store(true)
		return &ProtectedError{Offset: off, Size: n, Range: *p}
	}
	return nil
}

// Close waits for I/O in progress, wipes the keys and closes the file (which
// releases the vault's lock). It does not sync: call Sync first to make writes
// durable.
func (v *Volume) Close() error {
	v.life.Lock()
	defer v.life.Unlock()
	if v.closed {
		return nil
	}
	v.closed = true
	v.keys.Destroy()
	v.sc = nil
	if v.direct != nil {
		v.direct.Close()
	}
	return v.f.Close()
}
