package mount

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/mount/fsys"
)

// The control socket speaks one JSON request and one JSON reply per
// connection. Only root or the server's own user may connect (SO_PEERCRED);
// the socket is 0600 in the 0700 registry directory besides.

// controlRequest is a request to a running server.
type controlRequest struct {
	Op    string `json:"op"`              // "status" or "close"
	Force bool   `json:"force,omitempty"` // close: unmount lazily if busy
}

// controlReply is the server's answer.
type controlReply struct {
	OK      bool          `json:"ok"`
	Error   string        `json:"error,omitempty"`
	Busy    bool          `json:"busy,omitempty"`    // close refused: the filesystem is in use
	Holders []fsys.Holder `json:"holders,omitempty"` // who keeps it busy
	// Deferred: close --force unmounted a busy filesystem lazily; the server
	// finishes closing when its last user lets go.
	Deferred bool   `json:"deferred,omitempty"`
	State    *State `json:"state,omitempty"`
}

// listenControl creates the control socket at path.
func listenControl(path string) (*net.UnixListener, error) {
	os.Remove(path) // a stale socket of a dead server with this id
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	l.SetUnlinkOnClose(true)
	return l, nil
}

// serveControl answers requests with handle until the listener is closed;
// active tracks connections being answered, so that a server closing itself
// can wait until its reply has been sent.
func serveControl(l *net.UnixListener, active *sync.WaitGroup, handle func(controlRequest) controlReply) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		active.Add(1)
		go func() {
			defer active.Done()
			defer c.Close()
			if !peerAllowed(c) {
				return
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			var req controlRequest
			if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
				return
			}
			c.SetReadDeadline(time.Time{})
			json.NewEncoder(c).Encode(handle(req))
		}()
	}
}

func peerAllowed(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	return err == nil && (cred.Uid == 0 || int(cred.Uid) == os.Geteuid())
}

// ErrServerGone means the control socket did not answer: the server is not
// running (killed, crashed) or is stuck.
var ErrServerGone = errors.New("the vault's server process does not answer")

// control sends req to the server of an open vault and returns its reply.
func (r Registry) control(ctx context.Context, id string, req controlRequest) (controlReply, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "unix", r.SocketPath(id))
	if err != nil {
		return controlReply{}, fmt.Errorf("%w: %v", ErrServerGone, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return controlReply{}, fmt.Errorf("%w: %v", ErrServerGone, err)
	}
	var rep controlReply
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		return controlReply{}, fmt.Errorf("%w: %v", ErrServerGone, err)
	}
	return rep, nil
}
