package mount

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cryptvol/cryptvol/mount/fsys"
)

// closeTimeout bounds one close request: flushing and unmounting a large
// filesystem can take a while.
const closeTimeout = 2 * time.Minute

// exitWait is how long Close waits for a server to exit after it replied.
const exitWait = 30 * time.Second

// CloseResult says how Close ended.
type CloseResult int

const (
	// Closed: unmounted, flushed, detached; the server has exited and its
	// keys are wiped.
	Closed CloseResult = iota
	// Deferred: --force unmounted a busy filesystem lazily; the server
	// finishes closing when the last user lets go.
	Deferred
	// CleanedUp: the server had died (killed, crashed); what it left
	// (mounts, device, FUSE mount, registry entries) was removed.
	CleanedUp
)

// Close closes the open vault st: asks its server to unmount, flush, detach
// and exit, and waits until it has; or, if the server died, cleans up what it
// left, and returns CleanupStale's notes. A busy filesystem is refused with a
// *fsys.BusyError naming its holders (nothing changed) unless force, which
// unmounts it lazily. A server that does not answer is ErrServerGone.
func Close(ctx context.Context, reg Registry, st State, force bool) (CloseResult, []string, error) {
	if !st.Alive() {
		notes, err := reg.CleanupStale(st, force)
		if err != nil {
			return 0, notes, err
		}
		reg.RemoveLog(st.ID)
		return CleanedUp, notes, nil
	}
	cctx, cancel := context.WithTimeout(ctx, closeTimeout)
	defer cancel()
	rep, err := reg.control(cctx, st.ID, controlRequest{Op: "close", Force: force})
	if errors.Is(err, ErrServerGone) && !st.Alive() { // died just now
		return Close(ctx, reg, st, force)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("%w (pid %d)", err, st.PID)
	}
	if !rep.OK {
		if rep.Busy {
			return 0, nil, &fsys.BusyError{Dir: st.MountPoint, Holders: rep.Holders, Err: errors.New(rep.Error)}
		}
		return 0, nil, errors.New(rep.Error)
	}
	if rep.Deferred {
		return Deferred, nil, nil
	}
	// The server replies, then exits; wait for it, so that when Close
	// returns nothing of the vault is left.
	for deadline := time.Now().Add(exitWait); st.Alive() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	reg.RemoveLog(st.ID)
	return Closed, nil, nil
}

// Liveness is what Status found of an open vault's server.
type Liveness string

const (
	Open         Liveness = "open"
	Closing      Liveness = "closing"      // lazily unmounted, waiting for its last user
	Dead         Liveness = "dead"         // the server is gone: Close cleans up
	Unresponsive Liveness = "unresponsive" // alive, but its control socket does not answer
)

// Status asks the server of st for its state: the server's answer is the
// truth, the registry entry only what it recorded last.
func (r Registry) Status(ctx context.Context, st State) (State, Liveness) {
	if !st.Alive() {
		return st, Dead
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	rep, err := r.control(ctx, st.ID, controlRequest{Op: "status"})
	switch {
	case err != nil || rep.State == nil:
		return st, Unresponsive
	case rep.State.Closing:
		return *rep.State, Closing
	}
	return *rep.State, Open
}
