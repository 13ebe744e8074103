package mount

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/mount/fsys"
	"github.com/cryptvol/cryptvol/mount/userfs"
)

// Via names the ways a vault is exposed: two kernel block paths, for root,
// and the userspace path, for anyone.
const (
	ViaLoop = "loop" // FUSE file + loop device; the kernel mounts the filesystem
	ViaNBD  = "nbd"  // kernel NBD device served by our NBD server
	ViaFUSE = "fuse" // FUSE file; a userspace driver mounts the filesystem in it
)

// driverExitWait bounds how long a close waits for a filesystem driver to
// write what it holds and exit once its filesystem is unmounted.
const driverExitWait = 2 * time.Minute

// attachment is the volume exposed to the system: made into a kernel block
// device (loop, NBD), or served as a FUSE file (fuse).
type attachment interface {
	DevicePath() string
	// Close detaches the device; it fails with fsys.ErrDeviceInUse while a
	// filesystem on it is still alive.
	Close() error
}

// server holds an open volume exposed as a block device, its filesystem
// mounted, until it is asked to close (control socket) or signalled.
type server struct {
	cfg   Config
	reg   Registry
	log   func(format string, args ...any)
	vol   *container.Volume
	att   attachment
	state State
	ctl   *net.UnixListener
	// lock locks buffers of decrypted data when the process could not
	// lock all its memory (memlock.go); nil otherwise.
	lock func([]byte)

	mounted bool // the filesystem was mounted on state.MountPoint

	mu      sync.Mutex     // serialises shutdown attempts
	closed  chan struct{}  // closed once the vault is closed
	replies sync.WaitGroup // control requests being answered
}

// startServer exposes vol as cfg says — records the vault in the registry,
// attaches the block device, mounts its filesystem and listens on its
// control socket — and returns once all of that is ready. It owns vol from
// then on. On error it undoes what it did and closes vol.
func startServer(vol *container.Volume, cfg Config, log func(string, ...any), lock func([]byte)) (*server, error) {
	dev, ino, err := fileIdentity(cfg.File)
	if err != nil {
		vol.Close()
		return nil, err
	}
	uuid := vol.UUID()
	s := &server{cfg: cfg, reg: Registry{Dir: cfg.Registry}, log: log, vol: vol, lock: lock, closed: make(chan struct{}), state: State{
		ID: cfg.ID, File: cfg.File, FileDev: dev, FileIno: ino, UUID: uuid,
		Via: cfg.Via, ReadOnly: cfg.ReadOnly, MountPoint: cfg.MountPoint,
		PID: os.Getpid(), PIDStart: selfStart(), UID: os.Geteuid(), Started: time.Now().UTC().Truncate(time.Second),
	}}
	// Recorded before anything is attached, so that if this process dies
	// half-way `cryptvol close` still finds what to clean up.
	if err := s.reg.Write(s.state); err != nil {
		vol.Close()
		return nil, fmt.Errorf("recording the open vault in %s: %w", s.reg.Dir, err)
	}
	if err := s.start(); err != nil {
		s.undo()
		return nil, err
	}
	return s, nil
}

func (s *server) start() error {
	var err error
	switch s.cfg.Via {
	case ViaLoop:
		s.att, err = attachLoop(s.vol, s.fileOptions())
	case ViaNBD:
		s.att, err = attachKernelNBD(s.vol, s.cfg, s.log)
	case ViaFUSE:
		s.att, err = attachFUSE(s.vol, s.fileOptions())
	default:
		err = fmt.Errorf("unknown block path %q", s.cfg.Via)
	}
	if err != nil {
		return err
	}
	s.state.Device = s.att.DevicePath()
	if err := s.recordOwner(); err != nil {
		return err
	}
	s.log("attached %s as %s via %s", s.cfg.File, s.state.Device, s.cfg.Via)
	if err := s.reg.Write(s.state); err != nil {
		return err
	}
	if s.cfg.MountPoint != "" {
		// The mount point is opened (a symbolic link refused) and mounted on
		// by its descriptor, so that no one who may write a directory on its
		// path can redirect the mount; its resolved path is recorded, which
		// is what mountinfo shows and what close looks for.
		mp, err := fsys.OpenMountPoint(s.cfg.MountPoint, 0o755)
		if err != nil {
			return err
		}
		defer mp.Close()
		s.state.MountPoint = mp.Path()
		if err := s.reg.Write(s.state); err != nil {
			return err
		}
		fstype, err := fsys.Probe(s.state.Device)
		if err != nil {
			return fmt.Errorf("%w (open it with --no-mount to reach the device, or create the vault with a filesystem)", err)
		}
		if s.cfg.Check {
			// The filesystem's own checker reads it first: whoever could
			// write the vault file could shape what the kernel's
			// filesystem code is about to parse, as root.
			cmd, err := fsys.Check(context.Background(), s.state.Device, fstype)
			if err != nil {
				return err
			}
			s.state.Checked = cmd
			s.log("checked %s (%s): no problems found", s.state.Device, cmd)
		}
		opts := s.cfg.MountOptions
		if fstype == "vfat" && s.cfg.VFATOptions != "" {
			opts = strings.Trim(opts+","+s.cfg.VFATOptions, ",")
		}
		if fa, ok := s.att.(*fuseAttachment); ok {
			if err := s.mountUserspace(fa, fstype, mp.Path(), opts); err != nil {
				return err
			}
		} else if err := fsys.MountOn(s.state.Device, mp, fstype, s.cfg.ReadOnly, opts); err != nil {
			return err
		}
		s.mounted = true
		s.log("mounted %s (%s) on %s", s.state.Device, fstype, mp.Path())
	}
	s.ctl, err = listenControl(s.reg.SocketPath(s.cfg.ID))
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	go serveControl(s.ctl, &s.replies, s.handle)
	return nil
}

// recordOwner notes in the state what identifies the device as this vault's
// (State.Backing, State.NBDPid), for a cleanup after this process died.
func (s *server) recordOwner() error {
	switch a := s.att.(type) {
	case *loopAttachment:
		b, err := a.Loop().Backing()
		if err != nil {
			return err
		}
		s.state.Backing = &b
	case *nbdAttachment:
		pid, err := nbdTask(sysBlock, a.DevicePath())
		if err != nil {
			return err
		}
		s.state.NBDPid = pid
	}
	return nil
}

// fileOptions place the FUSE file of the loop and fuse paths.
func (s *server) fileOptions() loopOptions {
	return loopOptions{BaseDir: s.reg.Dir, ID: s.cfg.ID, ReadOnly: s.cfg.ReadOnly, LockBuffer: s.lock,
		OnError: func(op string, off int64, err error) { s.log("%s at %d: %v", op, off, err) }}
}

// mountUserspace mounts the filesystem of type fstype in the FUSE file of a
// on dir (the mount point, resolved) with its userspace driver, and records
// the driver. The driver mounts through fusermount3, which opens dir itself
// and refuses one the user may not write, or a symbolic link.
func (s *server) mountUserspace(a *fuseAttachment, fstype, dir, options string) error {
	fs, err := fsys.ForType(fstype)
	if err != nil {
		return err
	}
	if fs.Driver == "" {
		return fmt.Errorf("the vault holds %s, which only the kernel mounts: %w", fstype, ErrNeedsKernel)
	}
	o := userfs.Options{ReadOnly: s.cfg.ReadOnly, UID: -1, GID: -1, MountOptions: options, FSName: driverSource(s.cfg.ID)}
	if os.Geteuid() == 0 {
		// Root's kernel mounts are open to every user the files'
		// modes allow; so is this one.
		o.MountOptions = strings.Trim("allow_other,default_permissions,"+options, ",")
	} else if !fs.Owners {
		o.UID, o.GID = os.Getuid(), os.Getgid()
	}
	m, err := userfs.Start(fs, a.DevicePath(), dir, o)
	if err != nil {
		return err
	}
	a.drv = m
	s.state.Driver, s.state.DriverPID = fs.Driver, m.PID()
	s.state.DriverStart, _ = processStart(m.PID())
	go func() {
		<-m.Done()
		s.log("%s exited: %v", fs.Driver, m.Err())
	}()
	return s.reg.Write(s.state)
}

// ErrNeedsKernel means a vault's filesystem has no userspace driver (xfs,
// btrfs): only root can open it, through the kernel.
var ErrNeedsKernel = errors.New("opening it needs root")

// unmount unmounts the vault's filesystem: through its driver on the fuse
// path (waiting, unless lazy, for the driver to write what it holds and
// exit), with umount2 on the others. Busy is a *fsys.BusyError unless lazy.
func (s *server) unmount(lazy bool) error {
	if !s.mounted {
		return nil
	}
	if fa, ok := s.att.(*fuseAttachment); ok && fa.drv != nil {
		if err := fa.drv.Unmount(lazy); err != nil {
			return err
		}
		s.mounted = false
		if !lazy {
			if err := fa.drv.Wait(driverExitWait); err != nil {
				s.log("%s: %v", s.state.Driver, err)
			}
		}
		return nil
	}
	if ok, _ := fsys.IsMounted(s.state.MountPoint); ok {
		if err := fsys.Unmount(s.state.MountPoint, lazy); err != nil {
			return err
		}
	}
	s.mounted = false
	return nil
}

// undo tears down a half-started server.
func (s *server) undo() {
	if s.ctl != nil {
		s.ctl.Close()
	}
	if s.mounted {
		if err := s.unmount(false); err != nil {
			s.log("unmounting: %v", err)
			s.unmount(true)
		}
	}
	if s.att != nil {
		if err := s.att.Close(); err != nil {
			s.log("detaching: %v", err)
		}
	}
	s.vol.Close()
	s.reg.Remove(s.cfg.ID)
}

func (s *server) handle(req controlRequest) controlReply {
	switch req.Op {
	case "status":
		st := s.state
		return controlReply{OK: true, State: &st}
	case "close":
		return s.shutdown(req.Force)
	}
	return controlReply{Error: fmt.Sprintf("unknown request %q", req.Op)}
}

// wait serves until the vault is closed through the control socket, or ctx
// ends (a signal), in which case it closes the vault itself: unmounting
// lazily if the filesystem is busy, after flushing it, and waiting for its
// last user before detaching.
func (s *server) wait(ctx context.Context) error {
	select {
	case <-s.closed:
	case <-ctx.Done():
		s.log("signalled: closing")
		if rep := s.shutdown(false); rep.Busy {
			s.log("the filesystem is busy (%s): unmounting lazily", rep.Error)
			s.shutdown(true)
		}
		<-s.closed
	}
	s.replies.Wait() // the close request's reply goes out before we exit
	return nil
}

// shutdown unmounts, detaches, flushes and closes the volume, wiping its keys.
// A busy filesystem is refused (Busy reply, nothing changed) unless force,
// which unmounts it lazily: it leaves the tree at once, and the server keeps
// serving it until its last user lets go, then finishes (Deferred reply).
func (s *server) shutdown(force bool) controlReply {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return controlReply{OK: true}
	default:
	}
	if s.state.Closing {
		return controlReply{OK: true, Deferred: true}
	}
	if mp := s.state.MountPoint; s.mounted {
		if force {
			syncfs(mp) // flush what can be flushed before it leaves the tree
		}
		if err := s.unmount(force); err != nil {
			var be *fsys.BusyError
			if errors.As(err, &be) {
				return controlReply{Busy: true, Error: err.Error(), Holders: be.Holders}
			}
			return controlReply{Error: err.Error()}
		}
		s.log("unmounted %s (lazy: %v)", mp, force)
	}
	err := s.att.Close()
	if errors.Is(err, fsys.ErrDeviceInUse) && force {
		s.state.Closing = true
		s.reg.Write(s.state)
		s.log("the lazily unmounted filesystem is still in use; closing when it is released")
		go func() {
			for errors.Is(err, fsys.ErrDeviceInUse) {
				time.Sleep(200 * time.Millisecond)
				err = s.att.Close()
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			s.finish(err)
		}()
		return controlReply{OK: true, Deferred: true}
	}
	return s.finish(err)
}

// finish completes a shutdown once the device is detached (or failed to).
func (s *server) finish(detachErr error) controlReply {
	if detachErr != nil {
		s.log("detaching: %v", detachErr)
		return controlReply{Error: detachErr.Error()}
	}
	s.log("detached %s", s.state.Device)
	var errs []error
	if err := s.vol.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("flushing the vault: %w", err))
	}
	if err := s.vol.Close(); err != nil {
		errs = append(errs, err)
	}
	s.ctl.Close()
	s.reg.Remove(s.cfg.ID)
	close(s.closed)
	if err := errors.Join(errs...); err != nil {
		s.log("%v", err)
		return controlReply{Error: err.Error()}
	}
	s.log("closed; keys wiped")
	s.reg.RemoveLog(s.cfg.ID) // a clean close leaves nothing behind
	return controlReply{OK: true}
}

// syncfs flushes the filesystem mounted at dir.
func syncfs(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	unix.Syncfs(int(f.Fd()))
}
