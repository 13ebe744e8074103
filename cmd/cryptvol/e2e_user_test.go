package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/mount"
)

// TestE2EUser runs the scenarios in testdata/user: the CLI as ordinary
// users made for the test (alice, bob and carol; not root, no sudo), who
// open vaults through the fuse path. They run this test binary as cryptvol,
// copied where they may run it, through setpriv. alice and bob may use
// /dev/fuse; carol's commands run with -nofuse see a /dev/fuse she cannot
// open. Each user's vaults are recorded where a login session would put
// them, /run/user/UID/cryptvol. A script must leave no mount, server,
// filesystem driver or other process of the users behind.
func TestE2EUser(t *testing.T) {
	e2e.Root(t)
	e2e.Tools(t, "useradd", "userdel", "setpriv", "unshare", "prlimit", "fusermount3", "fuse2fs", "fusefat",
		"mkfs.ext4", "mkfs.vfat", "mkfs.xfs", "e2fsck", "fsck.vfat", "findmnt", "sync")
	e2e.CheckLeaks(t)
	// If this binary dies before the cleanups run (a -timeout panic, a
	// SIGKILL), the reaper closes the scripts' vaults, removes the users
	// and unmounts what is left.
	rp := e2e.NewReaper(t)
	users := map[string]e2e.User{}
	for _, name := range []string{"alice", "bob", "carol"} {
		users[name] = e2e.NewUser(t, rp, name)
	}
	e2e.GrantFUSE(t, rp, users["alice"], users["bob"])

	// The binary, where the users may run it: a copy of this test binary
	// named cryptvol, which testscript.Main runs as the CLI.
	bin := t.TempDir()
	for d := bin; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := copyFile(self, filepath.Join(bin, "cryptvol"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A file over /dev/fuse that carol cannot open (as); root's, 0600.
	noFUSE := filepath.Join(bin, "no-fuse")
	if err := os.WriteFile(noFUSE, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	p := testscript.Params{
		Dir:                 "testdata/user",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// The users reach their directories in $WORK, not the rest.
			for d := env.WorkDir; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
				os.Chmod(d, 0o711)
			}
			os.Chmod(env.WorkDir, 0o711)
			env.Setenv("CRYPTVOL_RUN_DIR", filepath.Join(env.WorkDir, "run"))
			env.Setenv("GORACE", noRaceExitSleep)
			for name, u := range users {
				home := filepath.Join(env.WorkDir, name)
				if err := os.Mkdir(home, 0o755); err != nil {
					return err
				}
				if err := os.Chown(home, u.UID, u.GID); err != nil {
					return err
				}
				up := strings.ToUpper(name)
				env.Setenv(up+"_UID", strconv.Itoa(u.UID))
				env.Setenv(up+"_GID", strconv.Itoa(u.GID))
				env.Setenv(up+"_NAME", u.Name)
				env.Setenv(up+"_RUN", u.RunDir)
			}
			for _, u := range users {
				// Each script starts with empty registries.
				e2e.UnmountUnder(u.RunDir)
				os.RemoveAll(filepath.Join(u.RunDir, "cryptvol"))
			}
			ue := &userEnv{users: users, bin: bin, noFUSE: noFUSE}
			env.Values[userKey{}] = ue
			if err := enoughTime(t); err != nil {
				return err
			}
			rp.Add(closeAllUndo(filepath.Join(env.WorkDir, "run")))
			for name, u := range users {
				argv := asArgv(ue, u, filepath.Join(env.WorkDir, name), "", false, []string{"cryptvol", "close", "--all", "--force"})
				rp.Add(e2e.Undo{Command: argv})
			}
			rp.Add(e2e.Undo{UnmountUnder: env.WorkDir})
			before := e2e.Snapshot(env.WorkDir)
			env.Defer(func() {
				leaks := e2e.Snapshot(env.WorkDir).Minus(before)
				for name, u := range users {
					for _, pid := range e2e.ProcessesOf(u.UID) {
						comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
						leaks = append(leaks, fmt.Sprintf("process %s pid %d of %s", strings.TrimSpace(string(comm)), pid, name))
					}
				}
				if len(leaks) > 0 {
					cleanupUsers(env, users, bin)
					env.T().Fatal("the script left behind: " + strings.Join(leaks, "; "))
				}
			})
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"as":               cmdAs,
			"exits":            cmdExits,
			"mounted":          cmdMounted,
			"write-canary":     cmdWriteCanary,
			"no-canary":        cmdNoCanary,
			"kill-user-server": cmdKillUserServer,
			"vault-file":       cmdVaultFile,
			"memlock":          cmdMemlock,
			"wait-user-closed": cmdWaitUserClosed,
			"wait-busy":        cmdWaitBusy,
		},
	}
	if dl, ok := t.Deadline(); ok {
		p.Deadline = dl
	}
	testscript.RunT(serialT{t}, p)
}

type userKey struct{}

// userEnv is what the user commands of a script need.
type userEnv struct {
	users  map[string]e2e.User
	bin    string // holds cryptvol
	noFUSE string
}

func scriptUsers(ts *testscript.TestScript) *userEnv {
	return ts.Value(userKey{}).(*userEnv)
}

// asArgv is the command line that runs argv as u, in dir, with the
// environment a login shell would give: HOME, USER, XDG_RUNTIME_DIR, and
// PATH with the cryptvol under test first. memlock, if not empty, is its
// RLIMIT_MEMLOCK in bytes; noFUSE, if not empty, is put over /dev/fuse in a
// mount namespace of its own.
func asArgv(ue *userEnv, u e2e.User, dir, memlock string, noFUSE bool, argv []string) []string {
	cmd := []string{"setpriv", "--reuid=" + strconv.Itoa(u.UID), "--regid=" + strconv.Itoa(u.GID), "--clear-groups", "--",
		"env", "-i", "HOME=" + dir, "USER=" + u.Name, "XDG_RUNTIME_DIR=" + u.RunDir,
		"PATH=" + ue.bin + ":/usr/local/bin:/usr/bin:/bin", "GORACE=" + noRaceExitSleep,
		"sh", "-c", `cd "$0" && exec "$@"`, dir}
	cmd = append(cmd, argv...)
	if memlock != "" {
		cmd = append([]string{"prlimit", "--memlock=" + memlock + ":" + memlock, "--"}, cmd...)
	}
	if noFUSE {
		cmd = append([]string{"unshare", "--mount", "--propagation", "private", "--",
			"sh", "-c", `mount --bind "$0" /dev/fuse && exec "$@"`, ue.noFUSE}, cmd...)
	}
	return cmd
}

// as NAME [-memlock BYTES] [-nofuse] exits CODE PROG ARGS...
// as NAME [-memlock BYTES] [-nofuse] exec PROG ARGS...
//
// Runs PROG (cryptvol is the one under test) as the user NAME, in their
// directory $WORK/NAME; exits wants exit code CODE, exec success (or, with
// !, failure). stdout and stderr are kept for the next assertions.
func cmdAs(ts *testscript.TestScript, neg bool, args []string) {
	usage := func() { ts.Fatalf("usage: as NAME [-memlock BYTES] [-nofuse] exits CODE|exec PROG ARGS...") }
	if len(args) < 3 {
		usage()
	}
	ue := scriptUsers(ts)
	u, ok := ue.users[args[0]]
	if !ok {
		ts.Fatalf("as: no user %q", args[0])
	}
	dir := ts.MkAbs(args[0])
	args = args[1:]
	memlock, noFUSE := "", false
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch {
		case args[0] == "-memlock" && len(args) > 1:
			memlock, args = args[1], args[2:]
		case args[0] == "-nofuse":
			noFUSE, args = true, args[1:]
		default:
			usage()
		}
	}
	exits, want := false, 0
	switch {
	case len(args) >= 3 && args[0] == "exits" && !neg:
		var err error
		if want, err = strconv.Atoi(args[1]); err != nil {
			usage()
		}
		exits, args = true, args[2:]
	case len(args) >= 2 && args[0] == "exec":
		args = args[1:]
	default:
		usage()
	}
	argv := asArgv(ue, u, dir, memlock, noFUSE, args)
	err := ts.Exec(argv[0], argv[1:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("as: %v", err)
	}
	switch {
	case exits && got != want:
		ts.Fatalf("%s as %s exited with %d, want %d", args[0], u.Name, got, want)
	case !exits && neg && got == 0:
		ts.Fatalf("%s as %s succeeded unexpectedly", args[0], u.Name)
	case !exits && !neg && got != 0:
		ts.Fatalf("%s as %s failed: exit %d", args[0], u.Name, got)
	}
}

// kill-user-server NAME [-TERM]: send SIGKILL (or SIGTERM) to every
// cryptvol server of the user NAME and wait until they are gone.
func cmdKillUserServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: kill-user-server NAME [-TERM]")
	}
	u := scriptUsers(ts).users[args[0]]
	sig := syscall.SIGKILL
	if len(args) == 2 && args[1] == "-TERM" {
		sig = syscall.SIGTERM
	}
	states, err := mount.Registry{Dir: filepath.Join(u.RunDir, "cryptvol")}.List()
	ts.Check(err)
	if len(states) == 0 {
		ts.Fatalf("%s has no open vault", args[0])
	}
	for _, st := range states {
		ts.Check(syscall.Kill(st.PID, sig))
		for deadline := time.Now().Add(30 * time.Second); st.Alive(); {
			if time.Now().After(deadline) {
				ts.Fatalf("server %d survived %v", st.PID, sig)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// wait-user-closed NAME: wait until the user NAME has no open vault whose
// server runs (a deferred close finishing).
func cmdWaitUserClosed(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: wait-user-closed NAME")
	}
	reg := mount.Registry{Dir: filepath.Join(scriptUsers(ts).users[args[0]].RunDir, "cryptvol")}
	for deadline := time.Now().Add(30 * time.Second); ; {
		states, err := reg.List()
		ts.Check(err)
		alive := 0
		for _, st := range states {
			if st.Alive() {
				alive++
			}
		}
		if alive == 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%d vaults of %s still open", alive, args[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// vault-file NAME VAR: set VAR to the FUSE file (the decrypted volume) of
// the one open vault of the user NAME.
func cmdVaultFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: vault-file NAME VAR")
	}
	u := scriptUsers(ts).users[args[0]]
	states, err := mount.Registry{Dir: filepath.Join(u.RunDir, "cryptvol")}.List()
	ts.Check(err)
	if len(states) != 1 || states[0].Via != mount.ViaFUSE {
		ts.Fatalf("%s has %d open vaults, want one on the fuse path", args[0], len(states))
	}
	ts.Setenv(args[1], states[0].Device)
}

// memlock NAME MAXBYTES: the server of the user NAME's one open vault has
// locked some memory, and no more than MAXBYTES.
func cmdMemlock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: memlock NAME MAXBYTES")
	}
	u := scriptUsers(ts).users[args[0]]
	maxBytes, err := strconv.ParseUint(args[1], 10, 64)
	ts.Check(err)
	states, err := mount.Registry{Dir: filepath.Join(u.RunDir, "cryptvol")}.List()
	ts.Check(err)
	if len(states) != 1 {
		ts.Fatalf("%s has %d open vaults, want one", args[0], len(states))
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", states[0].PID))
	ts.Check(err)
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmLck:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			ts.Check(err)
			ts.Logf("server VmLck %d KiB", kb)
			if kb == 0 || kb<<10 > maxBytes {
				ts.Fatalf("server locks %d KiB, want some and at most %d", kb, maxBytes>>10)
			}
			return
		}
	}
	ts.Fatalf("no VmLck in the server's status")
}

// cleanupUsers closes whatever a failed script left open of the users':
// their vaults through close --all --force, then, whatever that did not
// end, by killing their processes and cleaning up after the dead servers,
// and at last by unmounting what is still mounted.
func cleanupUsers(env *testscript.Env, users map[string]e2e.User, bin string) {
	ue := env.Values[userKey{}].(*userEnv)
	closeAll := func() {
		for name, u := range users {
			argv := asArgv(ue, u, filepath.Join(env.WorkDir, name), "", false, []string{"cryptvol", "close", "--all", "--force"})
			exec.Command(argv[0], argv[1:]...).Run()
		}
	}
	closeAll()
	time.Sleep(time.Second)
	for _, u := range users {
		for _, pid := range e2e.ProcessesOf(u.UID) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	time.Sleep(500 * time.Millisecond)
	closeAll()
	cleanupAfterScript(filepath.Join(env.WorkDir, "run"))
	for _, u := range users {
		e2e.UnmountUnder(u.RunDir)
	}
	e2e.UnmountUnder(env.WorkDir)
}

// writeCanaryAs writes lines of token into file as the user u, from a pipe:
// the token is never on disk but in file.
func writeCanaryAs(u e2e.User, file, token string) error {
	cmd := exec.Command("setpriv", "--reuid="+strconv.Itoa(u.UID), "--regid="+strconv.Itoa(u.GID), "--clear-groups", "--",
		"sh", "-c", `cat > "$0" && sync "$0"`, file)
	cmd.Stdin = strings.NewReader(strings.Repeat(token+"\n", 1000))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v: %s", err, out.String())
	}
	return nil
}

// newCanary returns a random token that exists only in this process.
func newCanary() string {
	var b [16]byte
	rand.Read(b[:])
	return "CRYPTVOL-CANARY-" + hex.EncodeToString(b[:])
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
