package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/internal/e2e"
)

// pty is the controller side of a pseudo-terminal whose other side is the
// controlling terminal of a cryptvol process: what a user sees and types.
type pty struct {
	t      *testing.T
	master *os.File
	seen   bytes.Buffer
	out    chan []byte
}

// startWithTerminal runs the CLI (this test binary, see TestMain) with a new
// pseudo-terminal as its controlling terminal and stdin; stdout and stderr are
// captured apart from it.
func startWithTerminal(t *testing.T, dir string, args ...string) (*pty, *exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	master, slave := openPTY(t)
	t.Cleanup(func() { master.Close() })
	defer slave.Close()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CRYPTVOL_TEST_RUN_MAIN=1", "GORACE="+noRaceExitSleep)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pty{t: t, master: master, out: make(chan []byte, 64)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				p.out <- bytes.Clone(buf[:n])
			}
			if err != nil {
				close(p.out)
				return
			}
		}
	}()
	return p, cmd, &stdout, &stderr
}

// expect waits until the terminal has shown s.
func (p *pty) expect(s string) {
	p.t.Helper()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(p.seen.String(), s) {
		select {
		case b, ok := <-p.out:
			if !ok {
				p.t.Fatalf("terminal closed before %q; it showed %q", s, p.seen.String())
			}
			p.seen.Write(b)
		case <-deadline:
			p.t.Fatalf("timed out waiting for %q; the terminal showed %q", s, p.seen.String())
		}
	}
}

func (p *pty) typeLine(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.master, s+"\r"); err != nil {
		p.t.Fatal(err)
	}
}

func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("cryptvol did not exit")
	}
	return cmd.ProcessState.ExitCode()
}

var tiny = []string{"--kdf-memory", "8M", "--kdf-iterations", "1", "--kdf-threads", "1", "--filesystem", "none"}

// TestTerminalPassphrase types passphrases at a real terminal: they are not
// echoed, the prompt is erased, a confirmation mismatch changes nothing, and
// a wrong passphrase exits 3.
func TestTerminalPassphrase(t *testing.T) {
	dir := t.TempDir()

	p, cmd, _, stderr := startWithTerminal(t, dir, append([]string{"create", "v.cv", "--size", "1M"}, tiny...)...)
	p.expect("Enter a passphrase for the new vault v.cv: ")
	p.typeLine("correct horse")
	p.expect("Repeat the passphrase: ")
	p.typeLine("battery staple")
	if code := waitExit(t, cmd); code != exitError {
		t.Fatalf("confirmation mismatch exited %d, want %d; stderr %q", code, exitError, stderr)
	}
	if !strings.Contains(stderr.String(), "the passphrases do not match") {
		t.Fatalf("stderr %q", stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "v.cv")); err == nil {
		t.Fatal("a vault was created after a confirmation mismatch")
	}

	p, cmd, stdout, stderr := startWithTerminal(t, dir, append([]string{"create", "v.cv", "--size", "1M"}, tiny...)...)
	p.expect("new vault v.cv: ")
	p.typeLine("correct horse")
	p.expect("Repeat the passphrase: ")
	p.typeLine("correct horse")
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("create exited %d; stderr %q", code, stderr)
	}
	if strings.Contains(p.seen.String(), "correct horse") {
		t.Fatalf("the passphrase was echoed: %q", p.seen.String())
	}
	if !strings.Contains(p.seen.String(), "\r\x1b[K") {
		t.Fatalf("the prompt was not erased: %q", p.seen.String())
	}
	if !strings.Contains(stdout.String(), "created v.cv") {
		t.Fatalf("stdout %q", stdout)
	}

	p, cmd, _, stderr = startWithTerminal(t, dir, "open", "v.cv", "--test-passphrase")
	p.expect("Enter passphrase for v.cv: ")
	p.typeLine("correct horsE")
	if code := waitExit(t, cmd); code != exitBadPassphrase {
		t.Fatalf("wrong passphrase exited %d; stderr %q", code, stderr)
	}

	p, cmd, _, _ = startWithTerminal(t, dir, "open", "v.cv", "--test-passphrase")
	p.expect("Enter passphrase for v.cv: ")
	p.typeLine("correct horse")
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("right passphrase exited %d", code)
	}
}

// TestTerminalInterruptRestoresEcho interrupts a passphrase prompt: the process
// exits 130 and the terminal has echo back on. The interrupt comes at a range
// of moments around the prompt: a signal handler's restore once raced
// term.ReadPassword's turning echo off (about 1 in 75 runs left echo off).
func TestTerminalInterruptRestoresEcho(t *testing.T) {
	dir := t.TempDir()
	for i := range 24 {
		p, cmd, _, stderr := startWithTerminal(t, dir, append([]string{"create", "v.cv", "--size", "1M"}, tiny...)...)
		p.expect("new vault v.cv: ")
		time.Sleep(time.Duration(i%8) * 50 * time.Microsecond)
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if code := waitExit(t, cmd); code != exitInterrupted || stderr.String() != "cryptvol: error: interrupted\n" {
			t.Fatalf("run %d: interrupted prompt exited %d, want %d; stderr %q", i, code, exitInterrupted, stderr)
		}
		tio, err := unix.IoctlGetTermios(int(p.master.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			t.Fatalf("run %d: echo is still off after the interrupt", i)
		}
		p.master.Close()
	}
}

// TestTerminalEndOfInput ends the input (Ctrl-D) at an empty passphrase
// prompt: an error, not an empty passphrase, and no vault.
func TestTerminalEndOfInput(t *testing.T) {
	dir := t.TempDir()
	p, cmd, _, stderr := startWithTerminal(t, dir, append([]string{"create", "v.cv", "--size", "1M"}, tiny...)...)
	p.expect("new vault v.cv: ")
	if _, err := p.master.Write([]byte{4}); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != exitError || !strings.Contains(stderr.String(), "the input ended (Ctrl-D)") {
		t.Fatalf("end of input exited %d; stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "v.cv")); err == nil {
		t.Fatal("a vault was created")
	}
}

// TestTerminalRestoreConfirmation answers the restore question.
func TestTerminalRestoreConfirmation(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pw\n"), 0o600)
	run := func(args ...string) {
		c := exec.Command(os.Args[0], args...)
		c.Dir, c.Env = dir, append(os.Environ(), "CRYPTVOL_TEST_RUN_MAIN=1", "GORACE="+noRaceExitSleep)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run(append([]string{"create", "v.cv", "--size", "1M", "--passphrase-file", "pw"}, tiny...)...)
	run("header", "backup", "v.cv", "v.hdr")

	p, cmd, _, stderr := startWithTerminal(t, dir, "header", "restore", "v.cv", "v.hdr", "--passphrase-file", "pw")
	p.expect(`Type "yes" to continue: `)
	p.typeLine("no")
	if code := waitExit(t, cmd); code != exitError || !strings.Contains(stderr.String(), "not confirmed") {
		t.Fatalf("declined restore exited %d; stderr %q", code, stderr)
	}
	p, cmd, stdout, _ := startWithTerminal(t, dir, "header", "restore", "v.cv", "v.hdr", "--passphrase-file", "pw")
	p.expect(`Type "yes" to continue: `)
	p.typeLine("yes")
	if code := waitExit(t, cmd); code != 0 || !strings.Contains(stdout.String(), "restored") {
		t.Fatalf("confirmed restore exited %d; stdout %q", code, stdout)
	}
}

// TestNotRoot runs open and close as an unprivileged user (nobody): the
// kernel paths are refused with a clear error and what to do instead, exit 1,
// nothing attempted; close looks in nobody's own registries only. (The fuse
// path, which such a user gets, is TestE2EUser's.)
func TestNotRoot(t *testing.T) {
	exe, dir := unprivilegedCopy(t)
	for _, c := range []struct {
		args       []string
		want, hint string
	}{
		{[]string{"open", "v.cv", "mnt", "--via", "loop"}, "--via loop needs root", "hint: as an ordinary user only --via fuse"},
		{[]string{"open", "v.cv", "mnt", "--via", "nbd"}, "--via nbd needs root", "hint: as an ordinary user only --via fuse"},
		{[]string{"close", "mnt"}, "no open vault has this mount point", "hint: `cryptvol list` shows the open vaults"},
	} {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", exe}, c.args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CRYPTVOL_TEST_RUN_MAIN=1", "GORACE="+noRaceExitSleep, "XDG_RUNTIME_DIR=", "CRYPTVOL_RUN_DIR=")
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != exitError || !strings.Contains(string(out), c.want) || !strings.Contains(string(out), c.hint) {
			t.Fatalf("%v as nobody: exit %d, output %q", c.args, cmd.ProcessState.ExitCode(), out)
		}
	}
}

// TestServeWithoutRoot serves a vault as an unprivileged user and reads it
// with nbdinfo: serve needs no root.
func TestServeWithoutRoot(t *testing.T) {
	exe, dir := unprivilegedCopy(t)
	e2e.Tools(t, "nbdinfo")
	run := func(args ...string) {
		c := exec.Command(os.Args[0], args...)
		c.Dir, c.Env = dir, append(os.Environ(), "CRYPTVOL_TEST_RUN_MAIN=1", "GORACE="+noRaceExitSleep)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pw\n"), 0o644)
	run(append([]string{"create", "v.cv", "--size", "1M", "--passphrase-file", "pw"}, tiny...)...)
	os.Chown(filepath.Join(dir, "v.cv"), 65534, 65534)
	sock := filepath.Join(dir, "v.sock")
	c := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe,
		"serve", "v.cv", "--listen", "unix:"+sock, "--passphrase-file", "pw")
	c.Dir, c.Env = dir, append(os.Environ(), "CRYPTVOL_TEST_RUN_MAIN=1", "GORACE="+noRaceExitSleep)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Process.Kill()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket; output %q", out.String())
		}
	}
	info, err := exec.Command("nbdinfo", "--size", "nbd+unix:///?socket="+sock).CombinedOutput()
	if err != nil || strings.TrimSpace(string(info)) != "1048576" {
		t.Fatalf("nbdinfo: %v %q", err, info)
	}
	c.Process.Signal(os.Interrupt)
	if code := waitExit(t, c); code != 0 {
		t.Fatalf("serve as nobody exited %d: %q", code, out.String())
	}
	if !strings.Contains(out.String(), "cannot lock memory") {
		t.Errorf("no warning that memory could not be locked: %q", out.String())
	}
}

// unprivilegedCopy copies this test binary where user nobody can run it and
// returns it with a directory nobody can write.
func unprivilegedCopy(t *testing.T) (exe, dir string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	dir = t.TempDir()
	os.Chmod(dir, 0o777)
	os.Chmod(filepath.Dir(dir), 0o755) // the test's temporary root, made 0700 by testing
	for d := filepath.Dir(filepath.Dir(dir)); d != "/" && d != "."; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s is not searchable by other users", d)
		}
	}
	exe = filepath.Join(dir, "cryptvol")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe, dir
}

// TestProgressBar checks that a long operation draws a progress bar on stderr
// when it is a terminal, and that --quiet (or a non-terminal stderr) hides it.
func TestProgressBar(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pw\n"), 0o600)
	runOnTerminal := func(args ...string) string {
		master, slave := openPTY(t)
		c := exec.Command(os.Args[0], args...)
		c.Dir, c.Env = dir, append(os.Environ(), "CRYPTVOL_TEST_RUN_MAIN=1")
		c.Stdin, c.Stdout, c.Stderr = nil, nil, slave
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		slave.Close()
		var seen bytes.Buffer
		done := make(chan struct{})
		go func() { io.Copy(&seen, master); close(done) }()
		if code := waitExit(t, c); code != 0 {
			t.Fatalf("%v exited %d: %q", args, code, seen.String())
		}
		master.Close()
		<-done
		return seen.String()
	}
	base := append([]string{"create", "--size", "64M", "--fill", "random", "--passphrase-file", "pw"}, tiny...)
	out := runOnTerminal(append(base, "a.cv")...)
	if !strings.Contains(out, "filling with random data") || !strings.Contains(out, "%") {
		t.Fatalf("no progress bar on a terminal: %q", out)
	}
	if out := runOnTerminal(append(base, "--quiet", "b.cv")...); strings.Contains(out, "filling") {
		t.Fatalf("a progress bar despite --quiet: %q", out)
	}
}

// openPTY returns a new pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, slave
}

// TestTerminalInterruptWhileReading interrupts the other reads a user may be
// typing into: the restore confirmation and a passphrase read from standard
// input (--passphrase-file -), at a range of moments from the process's start
// on. Each exits 130 at once (or dies of SIGINT, if it came before the handler
// was set up), never waiting for a line that may not come.
func TestTerminalInterruptWhileReading(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pw\n"), 0o600)
	for _, args := range [][]string{
		append([]string{"create", "v.cv", "--size", "1M", "--passphrase-file", "pw"}, tiny...),
		{"header", "backup", "v.cv", "v.hdr"},
	} {
		if out, err := cli(dir, args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	for _, c := range []struct {
		args  []string
		shown string // wait for this before the interrupt
	}{
		{[]string{"header", "restore", "v.cv", "v.hdr", "--passphrase-file", "pw"}, `Type "yes" to continue: `},
		{[]string{"open", "v.cv", "--test-passphrase", "--passphrase-file", "-"}, ""},
	} {
		for _, delay := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 200 * time.Millisecond} {
			p, cmd, _, stderr := startWithTerminal(t, dir, c.args...)
			if c.shown != "" {
				p.expect(c.shown)
			}
			time.Sleep(delay)
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			code := waitExit(t, cmd)
			if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); code != exitInterrupted && !(ws.Signaled() && ws.Signal() == syscall.SIGINT) {
				t.Fatalf("%v, interrupted after %v: exited %d, want %d; stderr %q", c.args, delay, code, exitInterrupted, stderr)
			}
		}
	}
}
