// Package fusefile serves a block Device as the one regular file of a private
// FUSE mount, which package loopdev then attaches to a loop device: the
// decrypted volume becomes a block device without the plaintext ever reaching
// a disk or the page cache (every open is direct I/O).
package fusefile

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/mount/fsys"
)

// FileName is the name of the one file in a FUSE mount.
const FileName = "volume"

// fuseFSType is how our FUSE mounts show in /proc/self/mountinfo; only mounts
// of this type are ever unmounted as stale.
const fuseFSType = "fuse.cryptvol"

// fuseMaxWrite is the largest READ or WRITE request: 1 MiB, the kernel's
// ceiling (256 pages, /proc/sys/fs/fuse/max_pages_limit). go-fuse derives
// max_read and max_pages from it.
const fuseMaxWrite = 1 << 20

// fuseCachedMaxWrite is the largest request with a page cache: the kernel
// reads ahead 128 KiB at a time (the default of a FUSE mount's
// read_ahead_kb), so larger reads do not come; larger writebacks would, but
// measured no faster behind fuse2fs, and smaller buffers fit a limited
// RLIMIT_MEMLOCK better.
const fuseCachedMaxWrite = 128 << 10

// fuseUnmountWait is how long Close retries an unmount refused as busy.
const fuseUnmountWait = 2 * time.Second

// Options says where and how a Device is served as a file.
type Options struct {
	// BaseDir holds the mount directory (required: the background server
	// gives its registry directory). It is created with mode 0700 if
	// missing.
	BaseDir string
	// ID names the mount directory under BaseDir: a single path element.
	ID string
	// ReadOnly mounts read-only and refuses opens for writing.
	ReadOnly bool
	// OnError, if set, is told about every failed Device call: the kernel
	// and the program doing the I/O only see EIO, or ENOSPC for a write or
	// sync that failed for lack of space.
	OnError func(op string, off int64, err error)
	// Cache chooses whether the kernel caches the file (DirectIO, the
	// default, for a loop device; PageCache or WritebackCache for a
	// userspace filesystem driver, whose small reads and writes it
	// gathers: see Cache).
	Cache Cache
	// LockBuffer, if set, is called with every buffer that is about to
	// hold, or holds, decrypted data (a server that cannot lock all its
	// memory locks these).
	LockBuffer func([]byte)
}

// Cache says what the kernel keeps of the file in its page cache. Its pages
// hold decrypted data in kernel memory, which is never swapped: a page cache
// page is written back to its file (this server, which encrypts it) or
// dropped. They are freed, not wiped, when the mount goes, like the page
// cache of any filesystem.
type Cache int

const (
	// DirectIO: no page cache; every read and write is a request to this
	// server (FOPEN_DIRECT_IO). The loop device does direct I/O on top
	// anyway, and its filesystem has a page cache of its own.
	DirectIO Cache = iota
	// PageCache: reads are cached, with the kernel's readahead, across
	// opens (FOPEN_KEEP_CACHE: nothing else changes the file); writes go
	// through to the server before they return.
	PageCache
	// WritebackCache: PageCache, and writes are cached too
	// (FUSE_WRITEBACK_CACHE): the kernel writes them back later, in large
	// requests, and before an fsync of the file returns, which then
	// reaches Device.Sync. What was synced is as durable as without the
	// cache. What was written but not synced may still be in the kernel,
	// not yet in the vault file, when this server dies, and is then lost
	// (and the kernel writes back in its own order, not the writer's), as a
	// kernel filesystem's unsynced writes are lost on the loop and NBD
	// paths when their server dies. The kernel keeps a FUSE mount's dirty
	// pages few (a strict per-device limit).
	WritebackCache
)

// File is a Device served as the one regular file of a private FUSE mount.
//
// The mount is its user's alone, root's or another's: without allow_other
// the kernel refuses every other user (root included) before a request
// reaches the server, the directory is 0700 and the file 0600. It is mounted
// nosuid, nodev, noexec.
type File struct {
	dir    string
	server *fuse.Server
	served chan struct{} // closed when Serve returns
	vfs    *volumeFS

	mu     sync.Mutex
	closed bool
}

// Serve mounts a FUSE filesystem on BaseDir/ID whose only file,
// FileName, reads and writes dev, and serves it until Close. Root mounts it
// with mount(2); any other user through fusermount3, which needs read-write
// access to /dev/fuse (Available).
func Serve(dev Device, opts Options) (*File, error) {
	if err := checkFUSEID(opts.ID); err != nil {
		return nil, err
	}
	if dev.Size() <= 0 {
		return nil, fmt.Errorf("fuse: device size %d is not positive", dev.Size())
	}
	base := opts.BaseDir
	if base == "" {
		return nil, errors.New("fuse: no base directory for the mount")
	}
	dir := filepath.Join(base, opts.ID)
	if err := makeMountDir(base, dir); err != nil {
		return nil, err
	}

	mo := &fuse.MountOptions{
		FsName: "cryptvol",
		Name:   "cryptvol", // type fuse.cryptvol
		// The kernel checks the 0700/0600 modes too, on top of the
		// owner-only rule that holds without allow_other.
		Options:            []string{"default_permissions"},
		MaxWrite:           fuseMaxWrite,
		DisableXAttrs:      true,
		DisableReadDirPlus: true,
		// The loop device submits its direct I/O to the file as
		// asynchronous requests. With FUSE_ASYNC_DIO the kernel sends
		// them on as background requests and lets the loop device go
		// on to its next one, so as many as max_background (12, the
		// kernel's default) reach Device.ReadAt/WriteAt in parallel.
		// Without it the loop device waits for each reply before it
		// sends the next request, whatever the queue depth above it.
		ExtraCapabilities: fuse.CAP_ASYNC_DIO,
		// go-fuse would first try to splice every READ reply through
		// a pipe, which works only for replies read from a file
		// descriptor: ours are built in memory, so each try cost two
		// system calls for nothing.
		DisableSplice: true,
		// Nothing below cmd prints; I/O errors go to OnError.
		Logger: log.New(io.Discard, "", 0),
	}
	if os.Geteuid() == 0 {
		// Root mounts with mount(2) directly, and fails rather than
		// fall back to fusermount.
		flags := uintptr(syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC)
		if opts.ReadOnly {
			flags |= syscall.MS_RDONLY
		}
		mo.DirectMountStrict = true
		mo.DirectMountFlags = flags
	} else {
		// Any other user mounts through fusermount3, which opens
		// /dev/fuse as that user and adds nosuid and nodev itself.
		if err := Available(); err != nil {
			return nil, err
		}
		mo.Options = append(mo.Options, "nosuid", "nodev", "noexec")
		if opts.ReadOnly {
			mo.Options = append(mo.Options, "ro")
		}
	}
	if opts.Cache != DirectIO {
		mo.MaxWrite = fuseCachedMaxWrite
	}
	if opts.Cache == WritebackCache && !opts.ReadOnly {
		mo.ExtraCapabilities |= fuse.CAP_WRITEBACK_CACHE
	}
	vfs := newVolumeFS(dev, opts.ReadOnly, opts.OnError)
	vfs.lock = opts.LockBuffer
	vfs.cache = opts.Cache
	if opts.Cache == DirectIO {
		vfs.ra = newReadAhead(dev, opts.LockBuffer != nil)
	}
	server, err := fuse.NewServer(vfs, dir, mo)
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("fuse: mount %s: %w", dir, err)
	}
	f := &File{dir: dir, server: server, served: make(chan struct{}), vfs: vfs}
	go func() {
		defer close(f.served)
		server.Serve()
	}()
	if err := server.WaitMount(); err != nil {
		f.Close()
		return nil, fmt.Errorf("fuse: mount %s: %w", dir, err)
	}
	return f, nil
}

// Dir is the mount directory.
func (f *File) Dir() string { return f.dir }

// Path is the served file, to be attached to a loop device.
func (f *File) Path() string { return filepath.Join(f.dir, FileName) }

// Close unmounts the filesystem, waits until the server has stopped and
// removes the mount directory. It fails while the file is open, for example
// by a loop device (detach that first); the error then names the holders
// that can be found, and Close can be called again once they are gone. After
// a successful Close it does nothing.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	if err := f.close(); err != nil {
		return err
	}
	f.closed = true
	return nil
}

func (f *File) close() error {
	// A loop device that has just detached can release the file a moment
	// later.
	var err error
	for deadline := time.Now().Add(fuseUnmountWait); ; {
		err = fsys.UnmountFUSE(f.dir, false)
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if errors.Is(err, syscall.EBUSY) {
		return err
	}
	if err != nil {
		return fmt.Errorf("fuse: %w", err)
	}
	<-f.served
	if f.vfs.ra != nil {
		f.vfs.ra.close()
	}
	if err := os.Remove(f.dir); err != nil {
		return fmt.Errorf("fuse: remove mount directory: %w", err)
	}
	return nil
}

// ErrNoAccess means this user may not use FUSE: /dev/fuse is missing, or
// not open to them for reading and writing.
var ErrNoAccess = errors.New("FUSE is not available to this user")

// Available checks that this process can serve a FUSE file: it may open
// /dev/fuse for reading and writing (Debian makes it 0666; a system that
// restricts it leaves FUSE to root and the users it lets in) and, if it is
// not root, fusermount3 is there to mount with.
func Available() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoAccess, err)
	}
	f.Close()
	if os.Geteuid() != 0 {
		if _, err := fsys.LookPath("fusermount3"); err != nil {
			return fmt.Errorf("%w: %w", ErrNoAccess, fsys.ErrNoFusermount)
		}
	}
	return nil
}

// UnmountStale cleans up after a process that served a FUSE file and died
// (or was killed) without unmounting: the mount is left behind and every
// access to it fails with ENOTCONN. If dir holds a cryptvol FUSE mount it is
// lazily unmounted (MNT_DETACH: gone from the tree now, released by the kernel
// when its last user lets go); then the empty directory is removed. A missing
// dir is not an error; a mount of any other type is refused.
//
// The caller must know that the serving process is gone: a mount still being
// served would be cut off from its server. Detach loop devices backed by the
// file first (loopdev.BackedBy, loopdev.DetachPath).
func UnmountStale(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("fuse: %w", err)
	}
	m, mounted, err := fsys.MountAt(dir)
	if err != nil {
		return err
	}
	if mounted {
		if m.FSType != fuseFSType {
			return fmt.Errorf("fuse: %s is a %s mount, not a stale cryptvol one: left alone", dir, m.FSType)
		}
		if err := fsys.UnmountFUSE(dir, true); err != nil && !errors.Is(err, fsys.ErrNotMounted) {
			return fmt.Errorf("fuse: lazy %w", err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("fuse: remove mount directory: %w", err)
	}
	return nil
}

func checkFUSEID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("fuse: mount id %q is not a single path element", id)
	}
	return nil
}

// makeMountDir creates base (0700 if new) and the empty 0700 mount directory
// dir in it. An existing dir is reused only if it is an empty directory and
// not a mount point.
func makeMountDir(base, dir string) error {
	if err := os.MkdirAll(base, 0o700); err != nil {
		return fmt.Errorf("fuse: create base directory: %w", err)
	}
	err := os.Mkdir(dir, 0o700)
	if err == nil || !errors.Is(err, os.ErrExist) {
		if err != nil {
			return fmt.Errorf("fuse: create mount directory: %w", err)
		}
		return nil
	}
	if m, mounted, err := fsys.MountAt(dir); err != nil {
		return err
	} else if mounted {
		return fmt.Errorf("fuse: %s is already a %s mount (a stale one is removed by UnmountStale)", dir, m.FSType)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("fuse: mount directory: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("fuse: mount directory %s is not empty", dir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("fuse: mount directory: %w", err)
	}
	return nil
}
