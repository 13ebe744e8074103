package nbd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Attaching an Server to the kernel's NBD client, /dev/nbdN, with the
// classic ioctls: the kernel gets one end of a socketpair, already in the
// transmission phase, and the server serves the other end.
//
// The ioctl numbers are _IO(0xab, n) from <linux/nbd.h>. go-nbd's pkg/ioctl has
// some of them, but takes them from that header through cgo (or from a
// hand-written table on amd64 without cgo) and lacks NBD_SET_FLAGS, without
// which the kernel never sends FLUSH or FUA and treats the device as having no
// write cache; so they are defined here.
const (
	nbdIoctlSetSock       = 0xab00 // NBD_SET_SOCK
	nbdIoctlSetBlksize    = 0xab01 // NBD_SET_BLKSIZE
	nbdIoctlDoIt          = 0xab03 // NBD_DO_IT
	nbdIoctlClearSock     = 0xab04 // NBD_CLEAR_SOCK
	nbdIoctlClearQue      = 0xab05 // NBD_CLEAR_QUE
	nbdIoctlSetSizeBlocks = 0xab07 // NBD_SET_SIZE_BLOCKS
	nbdIoctlDisconnect    = 0xab08 // NBD_DISCONNECT
	nbdIoctlSetTimeout    = 0xab09 // NBD_SET_TIMEOUT
	nbdIoctlSetFlags      = 0xab0a // NBD_SET_FLAGS
)

// ErrNoKernel means the kernel's NBD client is not available: the nbd module
// is not loaded (/dev/nbd0 does not exist).
var ErrNoKernel = errors.New("the nbd kernel module is not loaded (/dev/nbd0 does not exist; `modprobe nbd` loads it)")

// KernelAvailable reports whether the kernel's NBD client can be used: nil if
// /dev/nbd0 exists, else an error wrapping ErrNoKernel. It is the one check
// of it: the CLI's --via auto, AttachKernel and the tests all ask here.
func KernelAvailable() error {
	if _, err := os.Stat("/dev/nbd0"); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return ErrNoKernel
		}
		return fmt.Errorf("nbd: %w", err)
	}
	return nil
}

// KernelOptions configures AttachKernel. The zero value is a good default.
type KernelOptions struct {
	// Device is the /dev/nbdN to attach; "" takes the first free one.
	Device string
	// Connections is how many sockets the kernel spreads requests over
	// (default 1). The server already runs MaxInFlight requests of one socket
	// in parallel, so more mainly spreads the kernel's own work.
	Connections int
	// Timeout is the kernel's time limit for one request; 0 (the default)
	// waits forever, so that a slow fsync of the vault cannot make the kernel
	// tear the device down under a mounted filesystem.
	Timeout time.Duration
}

// KernelDevice is an Server's export attached to a /dev/nbdN.
type KernelDevice struct {
	path string
	fd   int // of path; the ioctls go through it

	doItDone chan struct{} // closed when NBD_DO_IT returned and the device was cleared
	doItErr  error         // set before doItDone is closed

	conns sync.WaitGroup // the server's side of the sockets

	detachOnce sync.Once
	detachErr  error
}

// Path returns the block device, e.g. "/dev/nbd0".
func (d *KernelDevice) Path() string { return d.path }

// AttachKernel connects the server's export to a free /dev/nbdN (or
// opts.Device) and returns once the block device has its size and is usable.
// It needs CAP_SYS_ADMIN and the nbd module; without the module it returns an
// error wrapping ErrNoKernel. Call Detach before Close.
func (s *Server) AttachKernel(ctx context.Context, opts KernelOptions) (*KernelDevice, error) {
	if err := KernelAvailable(); err != nil {
		return nil, err
	}
	if opts.Connections <= 0 {
		opts.Connections = 1
	}
	if opts.Connections > 64 {
		return nil, fmt.Errorf("nbd: %d connections is more than 64", opts.Connections)
	}
	if s.size == 0 {
		return nil, errors.New("nbd: cannot attach an empty device")
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("nbd: negative timeout %v", opts.Timeout)
	}
	if s.sector > int64(os.Getpagesize()) {
		return nil, fmt.Errorf("nbd: the kernel cannot use a block size of %d, over the page size", s.sector)
	}
	var candidates []string
	if opts.Device != "" {
		candidates = []string{opts.Device}
	} else {
		var err error
		if candidates, err = freeNBDDevices("/sys/block"); err != nil {
			return nil, err
		}
		if len(candidates) == 0 {
			return nil, errors.New("nbd: every /dev/nbdN is in use (load the module with more: modprobe nbd nbds_max=N)")
		}
	}

	// The sockets: the kernel gets kernelFDs, the server the other ends.
	var kernelFDs []int
	var serverConns []*nbdConn
	abandon := func() {
		for _, fd := range kernelFDs {
			unix.Close(fd)
		}
		for _, c := range serverConns {
			c.conn.Close()
			s.untrack(c)
		}
	}
	for range opts.Connections {
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			abandon()
			return nil, fmt.Errorf("nbd: socketpair: %w", err)
		}
		kernelFDs = append(kernelFDs, pair[1])
		f := os.NewFile(uintptr(pair[0]), "nbd server socket")
		conn, err := net.FileConn(f)
		f.Close()
		if err == nil {
			var c *nbdConn
			if c, err = s.track(conn); err == nil {
				serverConns = append(serverConns, c)
			}
		}
		if err != nil {
			abandon()
			return nil, fmt.Errorf("nbd: serving the kernel: %w", err)
		}
	}
	d := &KernelDevice{fd: -1, doItDone: make(chan struct{})}
	for _, c := range serverConns {
		c.flags, c.minBlock = s.flags, s.sector // what the ioctls tell the kernel
		d.conns.Add(1)
		go d.serve(c)
	}

	setup := make(chan error, 1)
	go d.run(s, candidates, kernelFDs, opts, setup)
	if err := <-setup; err != nil {
		d.conns.Wait()
		return nil, err
	}
	if err := d.waitReady(ctx); err != nil {
		if derr := d.Detach(); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, err
	}
	return d, nil
}

// serve runs the server's side of one kernel socket.
func (d *KernelDevice) serve(c *nbdConn) {
	defer d.conns.Done()
	defer c.srv.untrack(c)
	if err := c.finish(c.transmit()); err != nil {
		c.srv.report(fmt.Errorf("nbd: kernel connection: %w", err))
	}
}

// run is the goroutine that owns the nbd device: NBD_SET_SOCK ties the device
// to the thread that called it, and every later setup ioctl must come from
// that thread, so run locks itself to one and never unlocks (the thread ends
// with the goroutine). It blocks all signals on that thread too: NBD_DO_IT
// sleeps interruptibly, and a signal delivered there would make the kernel
// tear the device down. It reports the setup on setup, then sits in NBD_DO_IT
// until the device is disconnected.
func (d *KernelDevice) run(s *Server, candidates []string, kernelFDs []int, opts KernelOptions, setup chan<- error) {
	runtime.LockOSThread()
	var all unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	closeKernelFDs := func() {
		for _, fd := range kernelFDs {
			unix.Close(fd)
		}
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, nil); err != nil {
		closeKernelFDs()
		setup <- fmt.Errorf("nbd: blocking signals: %w", err)
		return
	}

	fd, path, err := claim(candidates, kernelFDs[0])
	if err == nil {
		err = configure(fd, s, kernelFDs[1:], opts)
		if err != nil {
			ioctl(fd, nbdIoctlClearSock)
			unix.Close(fd)
			err = fmt.Errorf("nbd: setting up %s: %w", path, err)
		}
	}
	if err != nil {
		closeKernelFDs() // the server sees EOF on its ends and stops
		close(d.doItDone)
		setup <- err
		return
	}
	d.fd, d.path = fd, path
	setup <- nil

	// Returns when the device is disconnected (or its sockets fail).
	err = ioctl(fd, nbdIoctlDoIt)
	ioctl(fd, nbdIoctlClearQue) // obsolete on current kernels, harmless
	ioctl(fd, nbdIoctlClearSock)
	closeKernelFDs()
	if err != nil {
		d.doItErr = fmt.Errorf("nbd: %s: NBD_DO_IT: %w", path, err)
	}
	close(d.doItDone)
}

// claim opens the first candidate that accepts the first socket. A device
// being set up or run by someone else answers NBD_SET_SOCK with EBUSY, which is
// what makes picking a free device safe against a race with another process.
func claim(candidates []string, sock int) (int, string, error) {
	var busy []string
	for _, path := range candidates {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, "", fmt.Errorf("nbd: %w", &fs.PathError{Op: "open", Path: path, Err: err})
		}
		err = ioctl(fd, nbdIoctlSetSock, uintptr(sock))
		if err == nil {
			return fd, path, nil
		}
		unix.Close(fd)
		if !errors.Is(err, unix.EBUSY) {
			return -1, "", fmt.Errorf("nbd: %s: NBD_SET_SOCK: %w", path, err)
		}
		busy = append(busy, path)
	}
	return -1, "", fmt.Errorf("nbd: no free device: %s busy", strings.Join(busy, ", "))
}

// configure tells the kernel what negotiation would have: the block size, the
// size, the transmission flags, the timeout, and the remaining sockets.
func configure(fd int, s *Server, more []int, opts KernelOptions) error {
	if err := ioctl(fd, nbdIoctlSetBlksize, uintptr(s.sector)); err != nil {
		return fmt.Errorf("NBD_SET_BLKSIZE %d: %w", s.sector, err)
	}
	if err := ioctl(fd, nbdIoctlSetSizeBlocks, uintptr(s.size/s.sector)); err != nil {
		return fmt.Errorf("NBD_SET_SIZE_BLOCKS %d: %w", s.size/s.sector, err)
	}
	if err := ioctl(fd, nbdIoctlSetFlags, uintptr(s.flags)); err != nil {
		return fmt.Errorf("NBD_SET_FLAGS %#x: %w", s.flags, err)
	}
	timeout := uintptr((opts.Timeout + time.Second - 1) / time.Second)
	if err := ioctl(fd, nbdIoctlSetTimeout, timeout); err != nil {
		return fmt.Errorf("NBD_SET_TIMEOUT %d: %w", timeout, err)
	}
	for _, sock := range more {
		if err := ioctl(fd, nbdIoctlSetSock, uintptr(sock)); err != nil {
			return fmt.Errorf("NBD_SET_SOCK (connection %d): %w", len(more)+1, err)
		}
	}
	return nil
}

// waitReady waits until the kernel shows the device as running with its size.
func (d *KernelDevice) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sys := filepath.Join("/sys/block", filepath.Base(d.path))
	for {
		if _, err := os.Stat(filepath.Join(sys, "pid")); err == nil {
			if b, err := os.ReadFile(filepath.Join(sys, "size")); err == nil && strings.TrimSpace(string(b)) != "0" {
				return nil
			}
		}
		select {
		case <-d.doItDone:
			if d.doItErr != nil {
				return d.doItErr
			}
			return fmt.Errorf("nbd: %s: the kernel stopped the device while it started", d.path)
		case <-ctx.Done():
			return fmt.Errorf("nbd: waiting for %s to start: %w", d.path, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Detach flushes the block device, disconnects it (the server finishes the
// requests in flight and syncs the Device), and waits until the kernel has let
// go of it and the server's side has ended. A filesystem on it must already be
// unmounted. Later calls return the first call's result.
func (d *KernelDevice) Detach() error {
	d.detachOnce.Do(func() {
		var errs []error
		select {
		case <-d.doItDone: // already stopped, e.g. the server was closed
		default:
			// Push out dirty page cache of the block device itself; the
			// kernel's NBD_DISCONNECT does not. The first fsync also
			// reports, once, any write that failed since the device was
			// opened, even one the filesystem saw fail and reported long
			// ago (a full disk under the vault): as loopdev does, only a
			// second failure, a write failing now, is an error.
			if err := unix.Fsync(d.fd); err != nil {
				if err := unix.Fsync(d.fd); err != nil {
					errs = append(errs, fmt.Errorf("nbd: flushing %s: %w", d.path, err))
				}
			}
			if err := ioctl(d.fd, nbdIoctlDisconnect); err != nil {
				errs = append(errs, fmt.Errorf("nbd: %s: NBD_DISCONNECT: %w", d.path, err))
			}
			select {
			case <-d.doItDone:
			case <-time.After(60 * time.Second):
				errs = append(errs, fmt.Errorf("nbd: %s did not disconnect within a minute", d.path))
				d.detachErr = errors.Join(errs...)
				return // leave the fd to the thread still in NBD_DO_IT
			}
		}
		if d.fd >= 0 {
			unix.Close(d.fd)
		}
		d.conns.Wait()
		errs = append(errs, d.doItErr)
		d.detachErr = errors.Join(errs...)
	})
	return d.detachErr
}

func ioctl(fd int, req uint, arg ...uintptr) error {
	var a uintptr
	if len(arg) > 0 {
		a = arg[0]
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), a)
	if errno != 0 {
		return errno
	}
	return nil
}

// freeNBDDevices lists the /dev/nbdN that look free in sysBlock (/sys/block):
// no pid (no NBD_DO_IT running) and size 0 (not configured), lowest N first.
func freeNBDDevices(sysBlock string) ([]string, error) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, fmt.Errorf("nbd: %w", err)
	}
	var nums []int
	for _, e := range ents {
		n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "nbd"))
		if !strings.HasPrefix(e.Name(), "nbd") || err != nil || n < 0 {
			continue
		}
		dir := filepath.Join(sysBlock, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "pid")); err == nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, "size")); err != nil || strings.TrimSpace(string(b)) != "0" {
			continue
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	paths := make([]string, len(nums))
	for i, n := range nums {
		paths[i] = "/dev/nbd" + strconv.Itoa(n)
	}
	return paths, nil
}

// DisconnectKernel disconnects a /dev/nbdN left connected by a server that
// died: its socket is gone, so the kernel only needs to be told to let go.
// The caller checks first that no filesystem on it is alive.
func DisconnectKernel(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("nbd: %w", err)
	}
	defer unix.Close(fd)
	ioctl(fd, nbdIoctlDisconnect)
	ioctl(fd, nbdIoctlClearSock)
	return nil
}
