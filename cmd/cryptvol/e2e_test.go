package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/mount"
	"github.com/cryptvol/cryptvol/mount/fsys"
	"github.com/cryptvol/cryptvol/mount/nbd"
	"github.com/cryptvol/cryptvol/mount/nbd/nbdtest"
	"github.com/cryptvol/cryptvol/tcrypt"
)

// TestE2E runs the end-to-end scenarios in testdata/e2e with the real CLI, as
// root, with real loop devices, FUSE mounts and filesystems. Each script gets
// its own registry (CRYPTVOL_RUN_DIR) and must leave no mount, loop device or
// server behind: a leak fails the script (and is then cleaned up so the next
// script starts clean). Scripts run one at a time, since the leak check looks
// at the whole machine.
func TestE2E(t *testing.T) {
	e2e.Root(t)
	e2e.Tools(t, "mkfs.ext4", "mkfs.xfs", "mkfs.btrfs", "mkfs.vfat", "findmnt", "losetup", "blkid", "e2fsck",
		"nbdinfo", "nbdcopy", "qemu-img", "qemu-io", "fio", "cryptsetup")
	// If this binary dies before the scripts' cleanups run, the reaper
	// closes their vaults and unmounts what is left.
	rp := e2e.NewReaper(t)
	p := testscript.Params{
		Dir:                 "testdata/e2e",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			run := filepath.Join(env.WorkDir, "run")
			env.Setenv("CRYPTVOL_RUN_DIR", run)
			env.Setenv("GORACE", noRaceExitSleep)
			// Sizes of the concurrency script: seconds by default, minutes
			// with CRYPTVOL_STRESS=1 (scripts/stress).
			env.Setenv("FIO_SIZE", "8M")
			env.Setenv("FIO_JOBS", "4")
			env.Setenv("WRITERS", "4")
			env.Setenv("WRITES", "60")
			env.Setenv("MOUNT_VAULT_SIZE", "256M")
			// The block path `open --via auto` takes: loop here, nbd in
			// the kernel lab's guest (internal/vmtest), which runs these
			// scripts through both.
			via := mount.ViaLoop
			if nbd.KernelAvailable() == nil {
				via = mount.ViaNBD
			}
			env.Setenv("VIA", via)
			env.Setenv("DEV", "/dev/"+via+"[0-9]+")
			env.Setenv("DEVS", "/dev/"+via+"0 /dev/"+via+"1 /dev/"+via+"2 /dev/"+via+"3")
			env.Setenv("NO_KERNEL_NBD", e2e.NoKernelNBD)
			if os.Getenv("CRYPTVOL_STRESS") == "1" {
				env.Setenv("FIO_SIZE", "96M")
				env.Setenv("FIO_JOBS", "8")
				env.Setenv("WRITERS", "8")
				env.Setenv("WRITES", "31")
				env.Setenv("MOUNT_VAULT_SIZE", "2G")
			}
			if err := enoughTime(t); err != nil {
				return err
			}
			rp.Add(closeAllUndo(run))
			rp.Add(e2e.Undo{UnmountUnder: env.WorkDir})
			before := e2e.Snapshot(env.WorkDir)
			env.Defer(func() {
				leaks := e2e.Snapshot(env.WorkDir).Minus(before)
				if len(leaks) > 0 {
					cleanupAfterScript(run)
					env.T().Fatal("the script left behind: " + strings.Join(leaks, "; "))
				}
			})
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":            cmdExits,
			"patch":            cmdPatch,
			"truncate":         cmdTruncate,
			"write-canary":     cmdWriteCanary,
			"no-canary":        cmdNoCanary,
			"mounted":          cmdMounted,
			"kill-server":      cmdKillServer,
			"wait-closed":      cmdWaitClosed,
			"no-secrets":       cmdNoSecrets,
			"wait-socket":      cmdWaitSocket,
			"free-port":        cmdFreePort,
			"tls-certificates": cmdTLSCertificates,
			"random-file":      cmdRandomFile,
			"fsync-copy":       cmdFsyncCopy,
			"mount-tmpfs":      cmdMountTmpfs,
			"fill-until-error": cmdFillUntilError,
			"check-filled":     cmdCheckFilled,
			"overlap-writes":   cmdOverlapWrites,
			"unpack-tcrypt":    cmdUnpackTCrypt,
			"tclegacy":         cmdTCLegacy,
			"wait-busy":        cmdWaitBusy,
			"hold-weird":       cmdHoldWeird,
			"release-weird":    cmdReleaseWeird,
			"reuse-device":     cmdReuseDevice,
			"release-device":   cmdReleaseDevice,
			"vault-device":     cmdVaultDevice,
			"add-hidden":       cmdAddHidden,
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "nbd": // the kernel NBD client is available
				return nbd.KernelAvailable() == nil, nil
			case "slowkdf": // key derivation runs many times slower: the race detector, the lab's emulated CPU
				return raceEnabled || os.Getenv("CRYPTVOL_LAB") == "guest", nil
			case "mem2g": // at least 2 GiB of memory (VeraCrypt's Argon2id takes up to 1 GiB)
				var si syscall.Sysinfo_t
				return syscall.Sysinfo(&si) == nil && uint64(si.Totalram)*uint64(si.Unit) >= 2<<30, nil
			case "tcrypt": // the VeraCrypt and TrueCrypt images are beside the repository
				return tcryptImagesPresent()
			case "vfat": // this kernel can mount vfat (the kernel lab's must)
				b, err := os.ReadFile("/proc/filesystems")
				ok := err == nil && strings.Contains(string(b), "\tvfat\n")
				if !ok && os.Getenv("CRYPTVOL_LAB") == "guest" {
					return false, errors.New("the kernel lab's guest cannot mount vfat")
				}
				return ok, nil
			}
			return false, nil
		},
	}
	if dl, ok := t.Deadline(); ok {
		p.Deadline = dl
	}
	testscript.RunT(serialT{t}, p)
}

// serialT runs scripts one after the other (testscript runs them in parallel).
type serialT struct{ *testing.T }

func (t serialT) Parallel()     {}
func (t serialT) Verbose() bool { return testing.Verbose() }
func (t serialT) Run(name string, f func(testscript.T)) {
	t.T.Run(name, func(t *testing.T) { f(serialT{t}) })
}

// closeAllUndo is what the reaper runs for a script whose test binary died:
// close --all --force on the script's registry.
func closeAllUndo(run string) e2e.Undo {
	exe, _ := os.Executable()
	return e2e.Undo{Command: []string{exe, "close", "--all", "--force"},
		Env: []string{"CRYPTVOL_TEST_RUN_MAIN=1", "CRYPTVOL_RUN_DIR=" + run, "GORACE=" + noRaceExitSleep}}
}

// scriptTime is how long a script may take, at most, on a loaded machine.
const scriptTime = 2 * time.Minute

// enoughTime refuses to start a script that the -timeout of `go test`
// could cut short: its panic ends the binary with no cleanup run (the
// reaper then undoes what it can), and the error says to raise it. In the
// kernel lab's guest, whose machine goes with whatever is left, the
// scripts run to the -timeout.
func enoughTime(t *testing.T) error {
	if os.Getenv("CRYPTVOL_LAB") == "guest" {
		return nil
	}
	if dl, ok := t.Deadline(); ok && time.Until(dl) < scriptTime {
		return fmt.Errorf("less than %v left before go test's -timeout (%v): run with a longer -timeout (scripts/test uses 40m)", scriptTime, time.Until(dl).Round(time.Second))
	}
	return nil
}

// cleanupAfterScript closes whatever a failed script left open.
func cleanupAfterScript(run string) {
	exe, _ := os.Executable()
	c := exec.Command(exe, "close", "--all", "--force")
	c.Env = append(os.Environ(), "CRYPTVOL_TEST_RUN_MAIN=1", "CRYPTVOL_RUN_DIR="+run, "GORACE="+noRaceExitSleep)
	c.Run()
	time.Sleep(500 * time.Millisecond)
}

// write-canary [-as NAME] FILE: write a random token that exists only in
// this process's memory into FILE (inside a mounted vault), and fsync it;
// with -as, as the user NAME of TestE2EUser.
func cmdWriteCanary(ts *testscript.TestScript, neg bool, args []string) {
	as := ""
	if len(args) == 3 && args[0] == "-as" {
		as, args = args[1], args[2:]
	}
	if neg || len(args) != 1 {
		ts.Fatalf("usage: write-canary [-as NAME] FILE")
	}
	token := newCanary()
	canaryMu.Lock()
	// A second back from now: what holds the canary was written after
	// this, whatever the clock granularity of its filesystem.
	canaries[ts] = canary{token, time.Now().Add(-time.Second)}
	canaryMu.Unlock()
	if as != "" {
		u, ok := scriptUsers(ts).users[as]
		if !ok {
			ts.Fatalf("write-canary: no user %q", as)
		}
		ts.Check(writeCanaryAs(u, ts.MkAbs(args[0]), token))
		return
	}
	f, err := os.Create(ts.MkAbs(args[0]))
	ts.Check(err)
	for i := 0; i < 1000; i++ {
		f.WriteString(token + "\n")
	}
	ts.Check(f.Sync())
	ts.Check(f.Close())
}

var (
	canaryMu sync.Mutex
	canaries = map[*testscript.TestScript]canary{}
)

// canary is a script's token and when it came to be.
type canary struct {
	token   string
	written time.Time
}

// no-canary PATH...: the canary appears in none of the files under the paths
// (directories are walked; device files and the proc filesystem are skipped).
// A file last modified before the canary existed cannot hold it and is not
// read: on a shared machine /tmp holds gigabytes of others' files, which
// took the user scripts past go test's -timeout.
func cmdNoCanary(ts *testscript.TestScript, neg bool, args []string) {
	canaryMu.Lock()
	c, ok := canaries[ts]
	canaryMu.Unlock()
	token := c.token
	if neg || !ok {
		ts.Fatalf("usage: no-canary PATH... (after write-canary)")
	}
	checked, old := 0, 0
	for _, root := range args {
		var rootDev uint64
		if st, err := os.Stat(ts.MkAbs(root)); err == nil {
			rootDev = st.Sys().(*syscall.Stat_t).Dev
		}
		filepath.WalkDir(ts.MkAbs(root), func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			if info.Sys().(*syscall.Stat_t).Dev != rootDev {
				// Another filesystem mounted below: another test's.
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			if info.ModTime().Before(c.written) {
				old++
				return nil
			}
			found, err := fileContains(p, token)
			if err != nil {
				return nil
			}
			checked++
			if found {
				ts.Fatalf("plaintext canary found in %s", p)
			}
			return nil
		})
	}
	ts.Logf("canary absent from %d files (%d more older than it)", checked, old)
}

// fileContains reports whether the file at p holds s, reading it a MiB at a
// time.
func fileContains(p, s string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20+len(s))
	keep := 0 // bytes carried over from the last read, in case s spans two
	for {
		n, err := io.ReadFull(f, buf[keep:])
		if bytes.Contains(buf[:keep+n], []byte(s)) {
			return true, nil
		}
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return false, nil
			}
			return false, err
		}
		keep = min(len(s)-1, keep+n)
		copy(buf, buf[len(buf)-keep:])
	}
}

// mounted DIR: DIR is a mount point (negate with !).
func cmdMounted(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: mounted DIR")
	}
	out, _ := exec.Command("findmnt", "-rn", "-o", "TARGET").Output()
	dir := ts.MkAbs(args[0])
	found := false
	for _, l := range strings.Split(string(out), "\n") {
		if l == dir {
			found = true
		}
	}
	if found == neg {
		ts.Fatalf("%s mounted: %v", dir, found)
	}
}

// kill-server [-TERM]: send SIGKILL (or SIGTERM) to every cryptvol server of
// this script's registry and wait until they are gone.
func cmdKillServer(ts *testscript.TestScript, neg bool, args []string) {
	states, err := mount.Registry{Dir: ts.Getenv("CRYPTVOL_RUN_DIR")}.List()
	ts.Check(err)
	sig := syscall.SIGKILL
	if len(args) == 1 && args[0] == "-TERM" {
		sig, args = syscall.SIGTERM, nil
	}
	if neg || len(args) != 0 || len(states) == 0 {
		ts.Fatalf("usage: kill-server [-TERM] (with an open vault)")
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

// vault-device NAME: set $NAME to the block device of the one vault open in
// this script's registry, /dev/loopN or /dev/nbdN (whichever path open took).
func cmdVaultDevice(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: vault-device NAME")
	}
	states, err := mount.Registry{Dir: ts.Getenv("CRYPTVOL_RUN_DIR")}.List()
	ts.Check(err)
	if len(states) != 1 {
		ts.Fatalf("%d open vaults, want 1", len(states))
	}
	ts.Setenv(args[0], states[0].Device)
}

// wait-busy DIR: wait until something holds the mount at DIR (a process
// started in the background has entered it), rather than sleep and hope.
func cmdWaitBusy(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: wait-busy DIR")
	}
	dir := ts.MkAbs(args[0])
	for deadline := time.Now().Add(30 * time.Second); ; {
		var be *fsys.BusyError
		if errors.As(fsys.Busy(dir, syscall.EBUSY), &be) && len(be.Holders) > 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("nothing holds %s", dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait-closed: wait until this script's registry lists no open vault (a
// deferred close finishing).
func cmdWaitClosed(ts *testscript.TestScript, neg bool, args []string) {
	reg := mount.Registry{Dir: ts.Getenv("CRYPTVOL_RUN_DIR")}
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
			ts.Fatalf("%d vaults still open", alive)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// no-secrets VAULT PASSFILE: neither the passphrase nor the master key (raw,
// hex or base64) appears in the command line, environment or log of the
// vault's server, nor in those of a `cryptvol serve` serving it, nor in the
// last command's output.
func cmdNoSecrets(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: no-secrets VAULT PASSFILE")
	}
	pass, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	pass = []byte(strings.TrimSuffix(string(pass), "\n"))
	v, err := container.Unlock(ts.MkAbs(args[0]), container.Passphrase(pass), &container.UnlockOptions{ReadOnly: true})
	ts.Check(err)
	var mk bytes.Buffer
	ts.Check(v.WriteKey(&mk))
	v.Close()
	secrets := map[string][]byte{
		"passphrase":          pass,
		"master key":          mk.Bytes(),
		"master key (hex)":    []byte(hex.EncodeToString(mk.Bytes())),
		"master key (base64)": []byte(base64.StdEncoding.EncodeToString(mk.Bytes())),
		"data key (hex)":      []byte(hex.EncodeToString(mk.Bytes()[:32])),
	}
	reg := mount.Registry{Dir: ts.Getenv("CRYPTVOL_RUN_DIR")}
	states, err := reg.List()
	ts.Check(err)
	serving := servingProcesses(ts.MkAbs(args[0]))
	if len(states) == 0 && len(serving) == 0 {
		ts.Fatalf("no open or served vault")
	}
	places := map[string][]byte{"stdout": []byte(ts.ReadFile("stdout")), "stderr": []byte(ts.ReadFile("stderr"))}
	for _, pid := range serving {
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
			ts.Check(err)
			places[fmt.Sprintf("serve %s", f)] = b
		}
	}
	for _, st := range states {
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", st.PID, f))
			ts.Check(err)
			places[fmt.Sprintf("server %s", f)] = b
		}
		b, err := os.ReadFile(reg.LogPath(st.ID))
		ts.Check(err)
		places["server log"] = b
		b, err = os.ReadFile(filepath.Join(reg.Dir, st.ID+".json"))
		ts.Check(err)
		places["state file"] = b
	}
	for where, b := range places {
		for what, secret := range secrets {
			if bytes.Contains(b, secret) {
				ts.Fatalf("the %s appears in the %s", what, where)
			}
		}
	}
}

// servingProcesses returns the pids of the `cryptvol serve` processes of
// this test binary (or a copy of it, as testscript makes where it cannot
// link, e.g. in the kernel lab's guest) serving the vault at path (by its
// name in their argv).
func servingProcesses(path string) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if _, err := os.Stat(d + "/exe"); err != nil || pid == os.Getpid() || !e2e.SameExecutable(d+"/exe") {
			continue
		}
		b, _ := os.ReadFile(d + "/cmdline")
		argv := strings.Split(string(b), "\x00")
		if len(argv) > 2 && argv[1] == "serve" && (argv[2] == path || filepath.Base(argv[2]) == filepath.Base(path)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// wait-socket PATH: wait until a unix socket accepts connections. The wait
// is long (a VeraCrypt serve first derives keys with every PRF, slow under
// the race detector on a loaded machine); it ends as soon as one connects.
func cmdWaitSocket(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: wait-socket PATH|tcp:HOST:PORT")
	}
	network, addr := "unix", ts.MkAbs(args[0])
	if a, ok := strings.CutPrefix(args[0], "tcp:"); ok {
		network, addr = "tcp", a
	}
	for deadline := time.Now().Add(3 * time.Minute); ; {
		if c, err := net.Dial(network, addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("nothing listens on %s", args[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// free-port NAME: set $NAME to a TCP port on the loopback address that is
// free now.
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: free-port NAME")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	_, port, _ := net.SplitHostPort(l.Addr().String())
	ts.Check(l.Close())
	ts.Setenv(args[0], port)
}

// tls-certificates DIR: make DIR with a new CA's certificate, a server
// certificate for localhost and 127.0.0.1 and a client certificate, with
// their keys, in the layout of nbdkit, qemu and libnbd.
func cmdTLSCertificates(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: tls-certificates DIR")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o700))
	pki, err := nbdtest.NewPKI("cryptvol e2e CA")
	ts.Check(err)
	ts.Check(pki.WriteAll(dir, "localhost", "127.0.0.1"))
}

// random-file PATH SIZE: a file of random bytes.
func cmdRandomFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: random-file PATH SIZE")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	b := make([]byte, n)
	rand.Read(b)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o600))
}

// weirdName and weirdProgram are a file name and a process name made of
// terminal escape sequences and a newline, as another user could choose them.
const (
	weirdName    = "evil\x1b[2J\x1b]0;pwned\x07\nname"
	weirdProgram = "\x1b]0;x\x07sl"
)

var (
	weirdMu    sync.Mutex
	weirdProcs = map[*testscript.TestScript]*exec.Cmd{}
)

// hold-weird DIR: start a process named weirdProgram (sleep, run through a
// symbolic link of that name) whose working directory is DIR and which holds
// DIR/weirdName open: a busy mount whose holders have hostile names.
func cmdHoldWeird(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: hold-weird DIR")
	}
	dir := ts.MkAbs(args[0])
	f, err := os.Create(filepath.Join(dir, weirdName))
	ts.Check(err)
	defer f.Close()
	sleep, err := exec.LookPath("sleep")
	ts.Check(err)
	link := filepath.Join(ts.MkAbs("."), weirdProgram)
	ts.Check(os.Symlink(sleep, link))
	c := exec.Command(link, "600")
	c.Dir, c.Stdin = dir, f
	ts.Check(c.Start())
	weirdMu.Lock()
	weirdProcs[ts] = c
	weirdMu.Unlock()
	ts.Defer(func() { c.Process.Kill(); c.Wait() })
	time.Sleep(200 * time.Millisecond) // until it runs as its own program
}

// release-weird: stop the process hold-weird started.
func cmdReleaseWeird(ts *testscript.TestScript, neg bool, args []string) {
	weirdMu.Lock()
	c := weirdProcs[ts]
	delete(weirdProcs, ts)
	weirdMu.Unlock()
	if neg || c == nil {
		ts.Fatalf("usage: release-weird (after hold-weird)")
	}
	c.Process.Kill()
	c.Wait()
}

var (
	reusedMu sync.Mutex
	reused   = map[*testscript.TestScript]func(){}
)

// reuse-device IMAGE DIR: as someone else would after a server of this
// script's registry died and its device was let go, attach IMAGE (a
// filesystem image) to the very device that server recorded (a loop device
// with losetup, an NBD device with qemu-nbd) and mount it on DIR.
func cmdReuseDevice(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: reuse-device IMAGE DIR")
	}
	states, err := mount.Registry{Dir: ts.Getenv("CRYPTVOL_RUN_DIR")}.List()
	ts.Check(err)
	if len(states) != 1 || states[0].Alive() || states[0].Device == "" {
		ts.Fatalf("reuse-device: want one vault whose server died")
	}
	dev, image, dir := states[0].Device, ts.MkAbs(args[0]), ts.MkAbs(args[1])
	sys := filepath.Join("/sys/block", filepath.Base(dev))
	attached := func() bool {
		if strings.Contains(dev, "loop") {
			_, err := os.Stat(filepath.Join(sys, "loop"))
			return err == nil
		}
		_, err := os.Stat(filepath.Join(sys, "pid"))
		return err == nil
	}
	for deadline := time.Now().Add(30 * time.Second); attached(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			ts.Fatalf("%s is still attached", dev)
		}
	}
	var attach, detach *exec.Cmd
	if strings.Contains(dev, "loop") {
		attach, detach = exec.Command("losetup", dev, image), exec.Command("losetup", "-d", dev)
	} else {
		attach, detach = exec.Command("qemu-nbd", "-f", "raw", "-c", dev, image), exec.Command("qemu-nbd", "-d", dev)
	}
	if out, err := attach.CombinedOutput(); err != nil {
		ts.Fatalf("%v: %v: %s", attach.Args, err, out)
	}
	for deadline := time.Now().Add(30 * time.Second); !attached(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not attach", dev)
		}
	}
	release := func() {
		exec.Command("umount", dir).Run()
		detach.Run()
	}
	ts.Defer(release)
	ts.Check(os.MkdirAll(dir, 0o755))
	if out, err := exec.Command("mount", dev, dir).CombinedOutput(); err != nil {
		release()
		ts.Fatalf("mount %s: %v: %s", dev, err, out)
	}
	reusedMu.Lock()
	reused[ts] = release
	reusedMu.Unlock()
}

// release-device: unmount and detach what reuse-device set up.
func cmdReleaseDevice(ts *testscript.TestScript, neg bool, args []string) {
	reusedMu.Lock()
	release := reused[ts]
	delete(reused, ts)
	reusedMu.Unlock()
	if neg || release == nil {
		ts.Fatalf("usage: release-device (after reuse-device)")
	}
	release()
}

// tcryptImages is the archive of VeraCrypt and TrueCrypt volumes made by those
// tools (../shared/interop/README.md), beside the repository, never in it.
const tcryptImages = "../../../shared/interop/tcrypt-images.tar.xz"

// tcryptImagesPresent is the condition [tcrypt]: the archive is there. Its
// absence is an error with CRYPTVOL_E2E=require (CI has ../shared).
func tcryptImagesPresent() (bool, error) {
	if _, err := os.Stat(tcryptImages); err != nil {
		if e2e.Required() {
			return false, fmt.Errorf("the interop images are not beside the repository (CRYPTVOL_E2E=require): %w", err)
		}
		return false, nil
	}
	return true, nil
}

// unpack-tcrypt DIR: extract the VeraCrypt and TrueCrypt images into DIR
// (after [!tcrypt] skip), owned by whoever runs the test (the archive's
// owner would make open check their filesystems before mounting them).
func cmdUnpackTCrypt(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: unpack-tcrypt DIR")
	}
	archive, err := filepath.Abs(tcryptImages)
	ts.Check(err)
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o700))
	if out, err := exec.Command("tar", "--no-same-owner", "-xJf", archive, "-C", dir).CombinedOutput(); err != nil {
		ts.Fatalf("tar: %v\n%s", err, out)
	}
}

// add-hidden VOLUME PASSFILE SIZE: add a hidden volume of SIZE bytes at the
// end of the data area of a VeraCrypt volume, as VeraCrypt adds one: its
// header and backup (SHA-512, VeraCrypt's default count) in the hidden
// header areas, keys of its own. Its data is left as it is.
func cmdAddHidden(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: add-hidden VOLUME PASSFILE SIZE")
	}
	size, err := strconv.ParseInt(args[2], 0, 64)
	ts.Check(err)
	pass, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	pass = bytes.TrimSuffix(pass, []byte("\n"))
	f, err := os.OpenFile(ts.MkAbs(args[0]), os.O_RDWR, 0)
	ts.Check(err)
	defer f.Close()
	st, err := f.Stat()
	ts.Check(err)
	keys, err := tcrypt.NewKeys("AES")
	ts.Check(err)
	defer keys.Destroy()
	h := tcrypt.NewHeader(uint64(size))
	h.HiddenVolumeSize, h.EncryptedAreaStart = uint64(size), uint64(st.Size()-tcrypt.BackupAreaSize-size)
	kdfs, err := tcrypt.KDFs(tcrypt.VeraCrypt, tcrypt.PRFSHA512, 0, false)
	ts.Check(err)
	for _, off := range []int64{tcrypt.HeaderAreaSize, st.Size() - tcrypt.HeaderAreaSize} {
		salt, err := tcrypt.NewSalt()
		ts.Check(err)
		raw, err := tcrypt.Seal(context.Background(), h, keys.Bytes(), pass, salt, kdfs[len(kdfs)-1], "AES")
		ts.Check(err)
		_, err = f.WriteAt(raw, off)
		ts.Check(err)
	}
	ts.Check(f.Sync())
}

func TestFileContains(t *testing.T) {
	token := newCanary()
	for _, at := range []int{0, 1<<20 - 5, 1 << 20, 2<<20 + 3, 3 << 20} {
		p := filepath.Join(t.TempDir(), "f")
		b := make([]byte, 3<<20+len(token))
		copy(b[at:], token)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if ok, err := fileContains(p, token); !ok || err != nil {
			t.Errorf("token at %d: %v, %v", at, ok, err)
		}
		if ok, _ := fileContains(p, token+"x"); ok {
			t.Errorf("a longer token found at %d", at)
		}
	}
}
