package fusefile

import (
	"errors"
	"io"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// volumeFS is the whole FUSE filesystem: a root directory holding one regular
// file, FileName, whose bytes are the Device. It is written against the raw
// FUSE protocol so that nothing else can exist: every operation that would
// create, remove, rename or change anything answers EPERM.
//
// Plaintext handling: with DirectIO (the loop path) every open gets
// FOPEN_DIRECT_IO, so the kernel keeps no page cache for this file and every
// read and write becomes a request to this server, going straight to
// Device.ReadAt/WriteAt. The fuse path may let the kernel cache it (Cache). The loop device on top of
// the file, and the filesystem on top of the loop, have their own page caches
// (RAM, not disk); keeping those out of swap is the process's memory policy.
type volumeFS struct {
	fuse.RawFileSystem // ENOSYS for everything not implemented below

	dev      Device
	size     int64
	readOnly bool
	started  time.Time
	onError  func(op string, off int64, err error)
	lock     func([]byte) // Options.LockBuffer, or nil
	cache    Cache
	ra       *readAhead // with DirectIO, else nil
}

const (
	volumeRootID = fuse.FUSE_ROOT_ID
	volumeFileID = 2

	// The size never changes, so the kernel may keep attributes and the
	// name look-up for long.
	volumeAttrTimeout = time.Hour
)

func newVolumeFS(dev Device, readOnly bool, onError func(string, int64, error)) *volumeFS {
	return &volumeFS{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		dev:           dev,
		size:          dev.Size(),
		readOnly:      readOnly,
		started:       time.Now(),
		onError:       onError,
	}
}

func (v *volumeFS) String() string { return "cryptvol" }

func (v *volumeFS) attr(id uint64, a *fuse.Attr) fuse.Status {
	sec, nsec := uint64(v.started.Unix()), uint32(v.started.Nanosecond())
	*a = fuse.Attr{
		Ino:       id,
		Atime:     sec,
		Mtime:     sec,
		Ctime:     sec,
		Atimensec: nsec,
		Mtimensec: nsec,
		Ctimensec: nsec,
		Owner:     fuse.Owner{Uid: uint32(syscall.Geteuid()), Gid: uint32(syscall.Getegid())},
		Blksize:   uint32(v.dev.SectorSize()),
	}
	switch id {
	case volumeRootID:
		a.Mode = syscall.S_IFDIR | 0o700
		a.Nlink = 2
	case volumeFileID:
		a.Mode = syscall.S_IFREG | 0o600
		if v.readOnly {
			a.Mode = syscall.S_IFREG | 0o400
		}
		a.Nlink = 1
		a.Size = uint64(v.size)
		a.Blocks = uint64(v.size) / 512
	default:
		return fuse.ENOENT
	}
	return fuse.OK
}

func (v *volumeFS) Lookup(_ <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if h.NodeId != volumeRootID || name != FileName {
		return fuse.ENOENT
	}
	out.NodeId = volumeFileID
	out.SetEntryTimeout(volumeAttrTimeout)
	out.SetAttrTimeout(volumeAttrTimeout)
	return v.attr(volumeFileID, &out.Attr)
}

func (v *volumeFS) GetAttr(_ <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	out.SetTimeout(volumeAttrTimeout)
	return v.attr(in.NodeId, &out.Attr)
}

// SetAttr refuses every change: mode, owner, times and above all size (a
// truncate would silently cut the volume). With a writeback cache, though,
// the kernel sends the times it kept itself when the file is synced or
// closed, and refusing them would fail the sync: there a change of times
// alone is answered with the attributes as they are (times are not kept).
func (v *volumeFS) SetAttr(_ <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	const times = fuse.FATTR_ATIME | fuse.FATTR_MTIME | fuse.FATTR_CTIME | fuse.FATTR_ATIME_NOW |
		fuse.FATTR_MTIME_NOW | fuse.FATTR_FH | fuse.FATTR_LOCKOWNER
	if v.cache != WritebackCache || in.Valid&^times != 0 {
		return fuse.EPERM
	}
	out.SetTimeout(volumeAttrTimeout)
	return v.attr(in.NodeId, &out.Attr)
}

func (v *volumeFS) Open(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.NodeId != volumeFileID {
		return fuse.EISDIR
	}
	if in.Flags&syscall.O_TRUNC != 0 {
		return fuse.EPERM
	}
	if in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY && v.readOnly {
		return fuse.EROFS
	}
	// FOPEN_DIRECT_IO: no page cache of plaintext for this file, and loop's
	// own direct I/O maps one block request to one FUSE request.
	// FOPEN_PARALLEL_DIRECT_WRITES (Linux 6.2; ignored before): the kernel
	// does not serialise direct writes to the file on the inode lock, so
	// the loop device's concurrent writes reach Device.WriteAt in parallel,
	// as io.WriterAt allows for non-overlapping ranges.
	out.OpenFlags = fuse.FOPEN_DIRECT_IO | fuse.FOPEN_PARALLEL_DIRECT_WRITES
	if v.cache != DirectIO {
		// See Cache: nothing but this server changes the file, so the
		// cache stays valid from one open to the next.
		out.OpenFlags = fuse.FOPEN_KEEP_CACHE
	}
	return fuse.OK
}

func (v *volumeFS) Read(_ <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	off := int64(in.Offset)
	if off >= v.size {
		return fuse.ReadResultData(nil), fuse.OK
	}
	n := min(int64(in.Size), int64(len(buf)), v.size-off)
	if v.lock != nil {
		v.lock(buf[:n])
	}
	if v.ra != nil {
		// Chunks read ahead go to the kernel as they are, with no copy.
		if res := v.ra.lookup(off, int(n)); res != nil {
			return res, fuse.OK
		}
	}
	got, err := v.dev.ReadAt(buf[:n], off)
	if err != nil && !(got == int(n) && errors.Is(err, io.EOF)) {
		v.report("read", off, err)
		return nil, fuse.EIO
	}
	return fuse.ReadResultData(buf[:got]), fuse.OK
}

// Write behaves like pwrite on a block device of the same size: a write that
// starts at or past the end fails with ENOSPC, one that crosses it is cut.
func (v *volumeFS) Write(_ <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	if v.readOnly {
		return 0, fuse.EROFS
	}
	off := int64(in.Offset)
	if off >= v.size {
		return 0, fuse.Status(syscall.ENOSPC)
	}
	data = data[:min(int64(len(data)), v.size-off)]
	if v.lock != nil {
		v.lock(data)
	}
	// data is the request's own input buffer, which go-fuse reuses only
	// for a later request, after this one is answered.
	if v.ra != nil {
		// Once the write returns, no chunk read ahead from before it is
		// left, including one read while the write was on its way.
		defer v.ra.invalidate(off, int64(len(data)))
	}
	n, err := writeOwned(v.dev, data, off)
	if err != nil {
		v.report("write", off, err)
		return uint32(n), writeStatus(err)
	}
	return uint32(n), fuse.OK
}

// writeStatus is the errno for a failed write or sync: ENOSPC when the vault
// file's filesystem is full (or over quota, or the file over its size limit),
// so that the loop device and the filesystem above say "no space" as they
// can (loop passes the errno up as BLK_STS_NOSPC), EIO for anything else.
// The NBD server maps the same errors the same way (errnoFor).
func writeStatus(err error) fuse.Status {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) {
		return fuse.Status(syscall.ENOSPC)
	}
	return fuse.EIO
}

// Fsync is how filesystem barriers reach the vault: a flush request on the
// loop device becomes vfs_fsync on this file, then this FSYNC request.
func (v *volumeFS) Fsync(_ <-chan struct{}, _ *fuse.FsyncIn) fuse.Status {
	return v.sync()
}

// Flush runs on every close of the file, including the loop device letting
// go of it when it detaches: whatever was written is made durable then.
func (v *volumeFS) Flush(_ <-chan struct{}, _ *fuse.FlushIn) fuse.Status {
	if v.readOnly {
		return fuse.OK
	}
	return v.sync()
}

func (v *volumeFS) sync() fuse.Status {
	if err := v.dev.Sync(); err != nil {
		v.report("sync", 0, err)
		return writeStatus(err)
	}
	return fuse.OK
}

func (v *volumeFS) Release(_ <-chan struct{}, _ *fuse.ReleaseIn) {}

// Fallocate is refused: a punched hole or zeroed range has no cheaper form in
// the encrypted volume than writing encrypted zeros, which the caller can do.
// The loop device turns EOPNOTSUPP into "discard not supported".
func (v *volumeFS) Fallocate(_ <-chan struct{}, _ *fuse.FallocateIn) fuse.Status {
	return fuse.Status(syscall.EOPNOTSUPP)
}

func (v *volumeFS) OpenDir(_ <-chan struct{}, in *fuse.OpenIn, _ *fuse.OpenOut) fuse.Status {
	if in.NodeId != volumeRootID {
		return fuse.ENOTDIR
	}
	return fuse.OK
}

func (v *volumeFS) ReadDir(_ <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	entries := []fuse.DirEntry{
		{Name: ".", Mode: syscall.S_IFDIR, Ino: volumeRootID},
		{Name: "..", Mode: syscall.S_IFDIR, Ino: volumeRootID},
		{Name: FileName, Mode: syscall.S_IFREG, Ino: volumeFileID},
	}
	for i := int(in.Offset); i < len(entries); i++ {
		entries[i].Off = uint64(i + 1)
		if !out.AddDirEntry(entries[i]) {
			break
		}
	}
	return fuse.OK
}

func (v *volumeFS) ReleaseDir(_ *fuse.ReleaseIn) {}

func (v *volumeFS) StatFs(_ <-chan struct{}, _ *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	bs := uint32(v.dev.SectorSize())
	*out = fuse.StatfsOut{
		Blocks:  uint64(v.size) / uint64(bs),
		Files:   1,
		Bsize:   bs,
		Frsize:  bs,
		NameLen: 255,
	}
	return fuse.OK
}

// Every call that would change the tree is refused with EPERM rather than the
// default ENOSYS, which the kernel would remember as "not implemented".
func (v *volumeFS) Mknod(<-chan struct{}, *fuse.MknodIn, string, *fuse.EntryOut) fuse.Status {
	return fuse.EPERM
}
func (v *volumeFS) Mkdir(<-chan struct{}, *fuse.MkdirIn, string, *fuse.EntryOut) fuse.Status {
	return fuse.EPERM
}
func (v *volumeFS) Unlink(<-chan struct{}, *fuse.InHeader, string) fuse.Status { return fuse.EPERM }
func (v *volumeFS) Rmdir(<-chan struct{}, *fuse.InHeader, string) fuse.Status  { return fuse.EPERM }
func (v *volumeFS) Rename(<-chan struct{}, *fuse.RenameIn, string, string) fuse.Status {
	return fuse.EPERM
}
func (v *volumeFS) Link(<-chan struct{}, *fuse.LinkIn, string, *fuse.EntryOut) fuse.Status {
	return fuse.EPERM
}
func (v *volumeFS) Symlink(<-chan struct{}, *fuse.InHeader, string, string, *fuse.EntryOut) fuse.Status {
	return fuse.EPERM
}
func (v *volumeFS) Create(<-chan struct{}, *fuse.CreateIn, string, *fuse.CreateOut) fuse.Status {
	return fuse.EPERM
}
func (v *volumeFS) Tmpfile(<-chan struct{}, *fuse.CreateIn, *fuse.CreateOut) fuse.Status {
	return fuse.EPERM
}
func (v *volumeFS) SetXAttr(<-chan struct{}, *fuse.SetXAttrIn, string, []byte) fuse.Status {
	return fuse.EPERM
}
func (v *volumeFS) RemoveXAttr(<-chan struct{}, *fuse.InHeader, string) fuse.Status {
	return fuse.EPERM
}

func (v *volumeFS) report(op string, off int64, err error) {
	if v.onError != nil {
		v.onError(op, off, err)
	}
}
