// Package userfs mounts the filesystem in an image file on a directory with a
// userspace driver (fuse2fs for ext2/3/4, fusefat for vfat; fsys.Filesystem
// names it), so that a user who is not root can open a vault: the fuse path
// serves the decrypted volume as a FUSE file (package fusefile) and the
// driver mounts the filesystem in that file. The driver is a child process
// run in the foreground; it mounts and unmounts through fusermount3 like
// any FUSE filesystem of an ordinary user.
//
// What a driver prints can name files of the decrypted filesystem (fusefat
// prints every name it looks up), so its output is kept in memory until the
// filesystem is mounted, for the error if it is not, and discarded after.
package userfs

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cryptvol/cryptvol/mount/fsys"
)

// mountTimeout bounds how long Start waits for the driver to mount.
const mountTimeout = time.Minute

// outputMax is how much of the driver's output Start keeps for an error.
const outputMax = 16 << 10

// Options says how the driver mounts.
type Options struct {
	ReadOnly bool
	// UID and GID own the files of a filesystem without owners (vfat); -1
	// for the driver's default.
	UID, GID int
	// MountOptions are the user's, passed to the driver with -o.
	MountOptions string
	// FSName is the mount's source as the mount table shows it (required;
	// no comma, backslash or white space). It must not be a path: the
	// drivers would name the image file, and a FUSE mount made without
	// allow_other refuses everyone but its user, root too, so a root tool
	// that stats every mount's source fails on it (mkfs.btrfs: "cannot
	// check mount status ...: Permission denied").
	FSName string
}

// Mount is a filesystem mounted by a running driver process.
type Mount struct {
	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the driver has exited
	err  error         // how it exited, once done is closed
}

// ErrNoDriver means the filesystem has no userspace driver: only the kernel
// mounts it, so only root can open it.
var ErrNoDriver = errors.New("no userspace driver for this filesystem")

// Start runs fs's driver on the image file, mounting it on dir, and returns
// once the filesystem is mounted, or the driver failed (its output then in
// the error). dir must exist and must not be a mount point.
func Start(fs fsys.Filesystem, file, dir string, o Options) (*Mount, error) {
	if fs.Driver == "" {
		return nil, fmt.Errorf("%s: %w", fs.Name, ErrNoDriver)
	}
	// The drivers take the name in a -o list, where a comma would split
	// it; the mount table would show white space escaped.
	if o.FSName == "" || strings.HasPrefix(o.FSName, "/") || strings.ContainsAny(o.FSName, ",\\ \t\n") {
		return nil, fmt.Errorf("%s: mount source %q is empty, a path, or has a comma, backslash or white space", fs.Driver, o.FSName)
	}
	prog, err := fsys.LookPath(fs.Driver)
	if err != nil {
		return nil, fmt.Errorf("%s not found (install %s): %w", fs.Driver, fs.DriverPackage, err)
	}
	argv := fs.DriverCommand(file, dir, o.FSName, o.ReadOnly, o.UID, o.GID, o.MountOptions)
	out := &capture{max: outputMax}
	cmd := &exec.Cmd{
		Path:   prog,
		Args:   argv,
		Stdout: out,
		Stderr: out,
		// Its own process group: a signal to the server's group does
		// not reach it; the server unmounts it, and it then exits.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", fs.Driver, err)
	}
	m := &Mount{dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		m.err = cmd.Wait()
		close(m.done)
	}()
	for deadline := time.Now().Add(mountTimeout); ; {
		if e, ok, err := fsys.MountAt(dir); err == nil && ok && strings.HasPrefix(e.FSType, "fuse") {
			out.stop()
			return m, nil
		}
		select {
		case <-m.done:
			return nil, fmt.Errorf("%s could not mount %s: %v%s", fs.Driver, file, m.err, out.text())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.cmd.Process.Kill()
			<-m.done
			fsys.UnmountFUSE(dir, true)
			return nil, fmt.Errorf("%s did not mount %s within %v%s", fs.Driver, file, mountTimeout, out.text())
		}
	}
}

// Dir is where the filesystem is mounted.
func (m *Mount) Dir() string { return m.dir }

// PID is the driver's process.
func (m *Mount) PID() int { return m.cmd.Process.Pid }

// Done is closed when the driver has exited.
func (m *Mount) Done() <-chan struct{} { return m.done }

// Err is how the driver exited, once Done is closed.
func (m *Mount) Err() error { return m.err }

// Unmount unmounts the filesystem (fsys.UnmountFUSE: a busy one is a
// *fsys.BusyError unless lazy). The driver then writes what it still holds
// to the image and exits: Wait for it before closing the image.
func (m *Mount) Unmount(lazy bool) error {
	err := fsys.UnmountFUSE(m.dir, lazy)
	if errors.Is(err, fsys.ErrNotMounted) {
		return nil // the driver died, or someone unmounted it
	}
	return err
}

// Wait waits up to timeout for the driver to exit, and kills it if it has
// not by then. It returns how the driver exited.
func (m *Mount) Wait(timeout time.Duration) error {
	select {
	case <-m.done:
	case <-time.After(timeout):
		m.cmd.Process.Kill()
		<-m.done
		return fmt.Errorf("%s did not exit within %v after the unmount: killed", m.cmd.Args[0], timeout)
	}
	return m.err
}

// capture keeps the first max bytes written to it until stop, then
// discards everything.
type capture struct {
	mu      sync.Mutex
	max     int
	buf     bytes.Buffer
	stopped bool
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopped && c.buf.Len() < c.max {
		c.buf.Write(p[:min(len(p), c.max-c.buf.Len())])
	}
	return len(p), nil
}

func (c *capture) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	c.buf.Reset()
}

// text is the output kept, as the end of an error message.
func (c *capture) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.TrimSpace(c.buf.String())
	if s == "" {
		return ""
	}
	return ": " + strings.Join(strings.Fields(s), " ")
}

// WaitExit waits up to timeout for the process pid to exit, as alive tells
// (which must tell a reused pid from it); then sends it SIGKILL if it has
// not. It is for a driver whose server died: the driver is no one's child
// then, so only /proc tells that it is gone.
func WaitExit(pid int, alive func() bool, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); alive(); {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			for end := time.Now().Add(5 * time.Second); alive() && time.Now().Before(end); {
				time.Sleep(20 * time.Millisecond)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
