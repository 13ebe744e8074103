//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A test's cleanups run only while its binary lives: a `go test -timeout`
// panic, or a SIGKILL, ends the binary with every mount, server, loop device
// and user of the test still there (one such run left alice's vault mounted
// on the machine, its FUSE file and fuse2fs mount both, and the users made
// for it). A Reaper is a process of its own, started from the test binary,
// that outlives it: the test tells it, as it goes, what to undo, and at its
// normal end that it is done. If the binary dies first, the reaper finds its
// end of the pipe closed without that word and undoes it all.

// reaperEnv, set to "1", makes the test binary a reaper (ReapIfAsked).
const reaperEnv = "CRYPTVOL_TEST_REAPER"

// reaperDone is the line that tells the reaper the test cleaned up itself.
const reaperDone = "done"

// Reaper undoes what a test set up if the test binary dies before its
// cleanups run. It is safe for concurrent use.
type Reaper struct {
	mu  sync.Mutex
	w   *os.File
	cmd *exec.Cmd
}

// Undo is one thing for the reaper to undo. Whatever their order of
// arrival, it runs the commands first (closing vaults through their
// servers), then removes the users (their processes killed, the mounts in
// their runtime directories unmounted) and the empty directories, then
// unmounts what is under the directories, then restores /dev/fuse's ACL.
type Undo struct {
	// Command is run, with Env added to the reaper's environment.
	Command []string `json:",omitempty"`
	Env     []string `json:",omitempty"`
	// User is removed as at the end of NewUser's test.
	User *User `json:",omitempty"`
	// UnmountUnder: every mount under it is lazily unmounted, and every
	// loop device whose backing file is under it detached.
	UnmountUnder string `json:",omitempty"`
	// RemoveEmptyDir is removed if it is empty once the users are gone.
	RemoveEmptyDir string `json:",omitempty"`
	// FUSEACL is /dev/fuse's mode and ACL to restore.
	FUSEACL *fuseACLState `json:",omitempty"`
}

// fuseACLState is /dev/fuse's mode and ACL before GrantFUSE changed them.
type fuseACLState struct {
	Mode   uint32
	HadACL bool
	ACL    []byte
}

// NewReaper starts a reaper for t: the test binary run again, in a session
// of its own (a signal to the test's process group does not reach it). The
// binary's TestMain must call ReapIfAsked first. At the end of the test
// (the first cleanup registered after NewReaper runs before it), the reaper
// is told the test is done and exits doing nothing.
func NewReaper(t testing.TB) *Reaper {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), reaperEnv+"=1")
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the reaper: %v", err)
	}
	r.Close()
	rp := &Reaper{w: w, cmd: cmd}
	t.Cleanup(func() {
		rp.mu.Lock()
		defer rp.mu.Unlock()
		fmt.Fprintln(rp.w, reaperDone)
		rp.w.Close()
		if err := rp.cmd.Wait(); err != nil {
			t.Errorf("reaper: %v", err)
		}
	})
	return rp
}

// Add tells the reaper one more thing to undo if the test binary dies.
func (rp *Reaper) Add(u Undo) {
	if rp == nil {
		return
	}
	b, err := json.Marshal(u)
	if err != nil {
		panic("e2e: " + err.Error()) // a bug in this package
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.w.Write(append(b, '\n'))
}

// ReapIfAsked makes a test binary started by NewReaper a reaper: it reads
// what to undo until its input ends, undoes it unless the test said it was
// done, and exits. In any other process it returns at once.
func ReapIfAsked() {
	if os.Getenv(reaperEnv) != "1" {
		return
	}
	var undo []Undo
	done := false
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if sc.Text() == reaperDone {
			done = true
			continue
		}
		var u Undo
		if json.Unmarshal(sc.Bytes(), &u) == nil {
			undo = append(undo, u)
		}
	}
	if !done {
		reap(undo)
	}
	os.Exit(0)
}

// reap undoes what a dead test left, in the order Undo says.
func reap(undo []Undo) {
	env := os.Environ()
	for i, e := range env {
		if len(e) > len(reaperEnv) && e[:len(reaperEnv)+1] == reaperEnv+"=" {
			env[i] = reaperEnv + "="
		}
	}
	for _, u := range undo {
		if len(u.Command) > 0 {
			cmd := exec.Command(u.Command[0], u.Command[1:]...)
			cmd.Env = append(env, u.Env...)
			cmd.Run()
		}
	}
	time.Sleep(500 * time.Millisecond) // servers that closed unmount last
	for _, u := range undo {
		if u.User != nil {
			removeUser(nil, *u.User)
		}
	}
	for _, u := range undo {
		if u.RemoveEmptyDir != "" {
			os.Remove(u.RemoveEmptyDir)
		}
	}
	for _, u := range undo {
		if u.UnmountUnder != "" {
			UnmountUnder(u.UnmountUnder)
			detachLoopsUnder(u.UnmountUnder)
		}
	}
	for _, u := range undo {
		if u.FUSEACL != nil {
			restoreFUSE(*u.FUSEACL)
		}
	}
}

// detachLoopsUnder detaches the loop devices whose backing file is under dir
// (the kernel lets one go once its last user has).
func detachLoopsUnder(dir string) {
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, p := range loops {
		b, _ := os.ReadFile(p)
		if !under(strings.TrimSpace(string(b)), dir) {
			continue
		}
		f, err := os.Open("/dev/" + strings.Split(p, "/")[3])
		if err != nil {
			continue
		}
		unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0)
		f.Close()
	}
}
