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
)

// Via names the two block paths.
const (
	ViaLoop = "loop" // FUSE file + loop device
	ViaNBD  = "nbd"  // kernel NBD device served by our NBD server
)

// ServerConfig says how an open vault is exposed by the background server.
type ServerConfig struct {
	Registry     Registry
	ID           string
	File         string // absolute path of the vault file
	MountPoint   string // "" to attach the device only
	Via          string // ViaLoop or ViaNBD
	ReadOnly     bool
	MountOptions string
	// VFATOptions are added to MountOptions when the filesystem is vfat,
	// which has no file owners (e.g. uid= and gid= of the user who opened it).
	VFATOptions  string
	AllowDiscard bool
	// Log receives what the server does and what goes wrong, for its log
	// file; never secrets.
	Log func(format string, args ...any)
}

// attachment is the volume made into a kernel block device.
type attachment interface {
	DevicePath() string
	// Close detaches the device; it fails with ErrDeviceInUse while a
	// filesystem on it is still alive.
	Close() error
}

// Server holds an open volume exposed as a block device, its filesystem
// mounted, until it is asked to close (control socket) or signalled.
type Server struct {
	cfg   ServerConfig
	vol   *container.Volume
	att   attachment
	state State
	ctl   *net.UnixListener

	mu      sync.Mutex     // serialises shutdown attempts
	closed  chan struct{}  // closed once the vault is closed
	replies sync.WaitGroup // control requests being answered
}

// StartServer exposes vol as cfg says — attaches the block device, mounts its
// filesystem, records the vault in the registry and listens on its control
// socket — and returns once all of that is ready. It owns vol from then on. On
// error it undoes what it did and closes vol.
func StartServer(vol *container.Volume, cfg ServerConfig) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	dev, ino, err := FileIdentity(cfg.File)
	if err != nil {
		vol.Close()
		return nil, err
	}
	uuid := vol.UUID()
	s := &Server{cfg: cfg, vol: vol, closed: make(chan struct{}), state: State{
		ID: cfg.ID, File: cfg.File, FileDev: dev, FileIno: ino, UUID: container.FormatUUID(uuid),
		Via: cfg.Via, ReadOnly: cfg.ReadOnly, MountPoint: cfg.MountPoint,
		PID: os.Getpid(), PIDStart: SelfStart(), Started: time.Now().UTC().Truncate(time.Second),
	}}
	// Recorded before anything is attached, so that if this process dies
	// half-way `cryptvol close` still finds what to clean up.
	if err := cfg.Registry.Write(s.state); err != nil {
		vol.Close()
		return nil, fmt.Errorf("recording the open vault in %s: %w", cfg.Registry.Dir, err)
	}
	if err := s.start(); err != nil {
		s.undo()
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	var err error
	switch s.cfg.Via {
	case ViaLoop:
		s.att, err = AttachLoop(s.vol, LoopOptions{BaseDir: s.cfg.Registry.Dir, ID: s.cfg.ID, ReadOnly: s.cfg.ReadOnly,
			OnError: func(op string, off int64, err error) { s.cfg.Log("%s at %d: %v", op, off, err) }})
	case ViaNBD:
		s.att, err = attachKernelNBD(s.vol, s.cfg)
	default:
		err = fmt.Errorf("unknown block path %q", s.cfg.Via)
	}
	if err != nil {
		return err
	}
	s.state.Device = s.att.DevicePath()
	s.cfg.Log("attached %s as %s via %s", s.cfg.File, s.state.Device, s.cfg.Via)
	if err := s.cfg.Registry.Write(s.state); err != nil {
		return err
	}
	if mp := s.cfg.MountPoint; mp != "" {
		if err := os.MkdirAll(mp, 0o755); err != nil {
			return fmt.Errorf("creating the mount point: %w", err)
		}
		fstype, err := Probe(s.state.Device)
		if err != nil {
			return fmt.Errorf("%w (open it with --no-mount to reach the device, or create the vault with a filesystem)", err)
		}
		opts := s.cfg.MountOptions
		if fstype == "vfat" && s.cfg.VFATOptions != "" {
			opts = strings.Trim(opts+","+s.cfg.VFATOptions, ",")
		}
		if err := Mount(s.state.Device, mp, fstype, s.cfg.ReadOnly, opts); err != nil {
			return err
		}
		s.cfg.Log("mounted %s (%s) on %s", s.state.Device, fstype, mp)
	}
	s.ctl, err = listenControl(s.cfg.Registry.SocketPath(s.cfg.ID))
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	go serveControl(s.ctl, &s.replies, s.handle)
	return nil
}

// undo tears down a half-started server.
func (s *Server) undo() {
	if s.ctl != nil {
		s.ctl.Close()
	}
	if s.cfg.MountPoint != "" {
		if ok, _ := IsMounted(s.cfg.MountPoint); ok && s.att != nil {
			Unmount(s.cfg.MountPoint, false)
		}
	}
	if s.att != nil {
		if err := s.att.Close(); err != nil {
			s.cfg.Log("detaching: %v", err)
		}
	}
	s.vol.Close()
	s.cfg.Registry.Remove(s.cfg.ID)
}

// State returns what the server recorded about the open vault.
func (s *Server) State() State { return s.state }

func (s *Server) handle(req ControlRequest) ControlReply {
	switch req.Op {
	case "status":
		st := s.state
		return ControlReply{OK: true, State: &st}
	case "close":
		return s.shutdown(req.Force)
	}
	return ControlReply{Error: fmt.Sprintf("unknown request %q", req.Op)}
}

// Wait serves until the vault is closed through the control socket, or ctx
// ends (a signal), in which case it closes the vault itself: unmounting
// lazily if the filesystem is busy, after flushing it, and waiting for its
// last user before detaching.
func (s *Server) Wait(ctx context.Context) error {
	select {
	case <-s.closed:
	case <-ctx.Done():
		s.cfg.Log("signalled: closing")
		if rep := s.shutdown(false); rep.Busy {
			s.cfg.Log("the filesystem is busy (%s): unmounting lazily", rep.Error)
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
func (s *Server) shutdown(force bool) ControlReply {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return ControlReply{OK: true}
	default:
	}
	if s.state.Closing {
		return ControlReply{OK: true, Deferred: true}
	}
	if mp := s.cfg.MountPoint; mp != "" {
		if ok, _ := IsMounted(mp); ok {
			if force {
				syncfs(mp) // flush what can be flushed before it leaves the tree
			}
			if err := Unmount(mp, force); err != nil {
				var be *BusyError
				if errors.As(err, &be) {
					return ControlReply{Busy: true, Error: err.Error(), Holders: be.Holders}
				}
				return ControlReply{Error: err.Error()}
			}
			s.cfg.Log("unmounted %s (lazy: %v)", mp, force)
		}
	}
	err := s.att.Close()
	if errors.Is(err, ErrDeviceInUse) && force {
		s.state.Closing = true
		s.cfg.Registry.Write(s.state)
		s.cfg.Log("the lazily unmounted filesystem is still in use; closing when it is released")
		go func() {
			for errors.Is(err, ErrDeviceInUse) {
				time.Sleep(200 * time.Millisecond)
				err = s.att.Close()
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			s.finish(err)
		}()
		return ControlReply{OK: true, Deferred: true}
	}
	return s.finish(err)
}

// finish completes a shutdown once the device is detached (or failed to).
func (s *Server) finish(detachErr error) ControlReply {
	if detachErr != nil {
		s.cfg.Log("detaching: %v", detachErr)
		return ControlReply{Error: detachErr.Error()}
	}
	s.cfg.Log("detached %s", s.state.Device)
	var errs []error
	if err := s.vol.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("flushing the vault: %w", err))
	}
	if err := s.vol.Close(); err != nil {
		errs = append(errs, err)
	}
	s.ctl.Close()
	s.cfg.Registry.Remove(s.cfg.ID)
	close(s.closed)
	if err := errors.Join(errs...); err != nil {
		s.cfg.Log("%v", err)
		return ControlReply{Error: err.Error()}
	}
	s.cfg.Log("closed; keys wiped")
	s.cfg.Registry.RemoveLog(s.cfg.ID) // a clean close leaves nothing behind
	return ControlReply{OK: true}
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
