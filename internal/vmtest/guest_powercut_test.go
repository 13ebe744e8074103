package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestGuestPowercut is the guest side of the power-cut tests (powercut.go):
// PC_SETUP formats a disk and makes a vault on it, PC_CHECK checks the disk
// of a trial whose guest was killed, PC_WORK runs the workload in a vault
// (PC_OPS operations then a clean close, or until the host kills the
// guest). It reports on stdout, lines beginning with "PC ".
func TestGuestPowercut(t *testing.T) {
	if !InGuest() || os.Getenv("PC_SETUP")+os.Getenv("PC_CHECK")+os.Getenv("PC_WORK") == "" {
		t.Skip("guest test: runs in the kernel lab (TestPowercut, TestLogReplay)")
	}
	g := pcGuest{t: t, fs: os.Getenv("PC_FS"), via: os.Getenv("PC_VIA")}
	writeFile(t, "/tmp/pw", []byte("powercut\n"))
	if d := os.Getenv("PC_SETUP"); d != "" {
		g.setup(d)
	}
	if d := os.Getenv("PC_CHECK"); d != "" {
		(&pcGuest{t: t, fs: os.Getenv("PC_CHECK_FS"), via: g.via}).check(d)
	}
	if d := os.Getenv("PC_WORK"); d != "" {
		seed, _ := strconv.ParseUint(os.Getenv("PC_SEED"), 10, 64)
		ops, _ := strconv.Atoi(os.Getenv("PC_OPS"))
		g.work(d, seed, ops)
	}
}

type pcGuest struct {
	t       *testing.T
	fs, via string
}

// say reports a line to the host and waits until the serial port has sent
// it (tcdrain): once an operation's "PC begin" is out, the host knows it may
// have started, and a "PC done" the host never saw was never done.
func (g *pcGuest) say(format string, args ...any) {
	fmt.Printf("PC "+format+"\n", args...)
	unix.IoctlSetInt(1, unix.TCSBRK, 1)
}

func (g *pcGuest) run(name string, args ...string) string {
	g.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		g.say("error %s %s: %v: %s", name, strings.Join(args, " "), err, strings.ReplaceAll(string(out), "\n", " | "))
		g.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// setup formats dev as the outer ext4 (leaving its last MiB to the markers)
// and makes the vault on it.
func (g *pcGuest) setup(dev string) {
	size := deviceSize(g.t, dev)
	g.run("mkfs.ext4", "-q", "-F", dev, fmt.Sprintf("%dk", (size-markerArea)/1024))
	os.MkdirAll("/outer", 0o755)
	g.run("mount", "-t", "ext4", dev, "/outer")
	vault := "128M"
	if g.fs == "xfs" {
		vault = "300M"
	}
	g.run("cryptvol", "create", "/outer/vault.cv", "--size", vault, "--filesystem", g.fs,
		"--kdf-memory", "8M", "--kdf-iterations", "1", "--kdf-threads", "1", "--passphrase-file", "/tmp/pw")
	g.run("umount", "/outer")
	marker := openMarker(g.t, dev)
	marker.mark("setup-done")
	marker.Close()
	g.say("setup-done")
}

var openedOn = regexp.MustCompile(`on (/dev/[a-z]+[0-9]+)`)

// check opens the vault of a killed trial, lets both filesystems replay
// their journals, lists the workload's files, and runs fsck -n on both.
func (g *pcGuest) check(dev string) {
	defer g.say("checked") // after what was found, whatever it was
	os.MkdirAll("/check", 0o755)
	if out, err := exec.Command("mount", "-t", "ext4", dev, "/check").CombinedOutput(); err != nil {
		g.say("outer-mount-failed %s", strings.ReplaceAll(string(out), "\n", " | "))
		return
	}
	out, err := exec.Command("cryptvol", "open", "/check/vault.cv", "--no-mount", "--via", g.via, "--passphrase-file", "/tmp/pw").CombinedOutput()
	m := openedOn.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		g.say("open-failed %s", strings.ReplaceAll(string(out), "\n", " | "))
		exec.Command("umount", "/check").Run()
		return
	}
	inner := m[1]
	os.MkdirAll("/check-inner", 0o755)
	if out, err := exec.Command("mount", "-t", g.fs, inner, "/check-inner").CombinedOutput(); err != nil {
		g.say("inner-mount-failed %s", strings.ReplaceAll(string(out), "\n", " | "))
	} else {
		if lines, err := ListFiles("/check-inner/d"); err != nil && !os.IsNotExist(err) {
			g.say("list-failed %v", err)
		} else {
			for _, l := range lines {
				g.say("file %s", l)
			}
		}
		g.run("umount", "/check-inner")
		g.say("inner-fsck %s", fsckResult(g.fs, inner))
	}
	g.run("cryptvol", "close", inner)
	g.run("umount", "/check")
	g.say("outer-fsck %s", fsckResult("ext4", dev))
}

// work opens the vault and runs the workload: ops operations then a clean
// close, or, with ops = 0, until the host kills the guest. Each operation is
// announced before it starts and after its fsyncs return, on the console
// and, for the write log, on the disk's marker sector.
func (g *pcGuest) work(dev string, seed uint64, ops int) {
	os.MkdirAll("/outer", 0o755)
	g.run("mount", "-t", "ext4", dev, "/outer")
	os.MkdirAll("/mnt/v", 0o755)
	g.run("cryptvol", "open", "/outer/vault.cv", "/mnt/v", "--via", g.via, "--passphrase-file", "/tmp/pw")
	dir := "/mnt/v/d"
	if err := os.Mkdir(dir, 0o755); err != nil {
		g.t.Fatal(err)
	}
	if err := syncDir("/mnt/v"); err != nil {
		g.t.Fatal(err)
	}
	marker := openMarker(g.t, dev)
	defer marker.Close()
	g.say("ready")
	files := Files{}
	for i := 0; ops == 0 || i < ops; i++ {
		op := NextOp(seed, i, files)
		g.say("begin %d", i)
		marker.mark(fmt.Sprintf("begin %d", i))
		if err := op.Do(dir); err != nil {
			g.say("error %v", err)
			g.t.Fatal(err)
		}
		marker.mark(fmt.Sprintf("done %d", i))
		g.say("done %d", i)
		files = op.Apply(files)
	}
	g.run("cryptvol", "close", "/mnt/v")
	g.run("umount", "/outer")
	g.say("finished")
}

type markerFile struct {
	f   *os.File
	off int64
	buf []byte
	t   *testing.T
}

func openMarker(t *testing.T, dev string) *markerFile {
	f, err := os.OpenFile(dev, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2*4096)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & 4095)
	return &markerFile{f: f, off: deviceSize(t, dev) - markerArea, buf: b[off : off+512], t: t}
}

// mark writes "CVMARK text" to the marker sector and waits for the device
// to acknowledge it.
func (m *markerFile) mark(text string) {
	clear(m.buf)
	copy(m.buf, markerMagic+text+"\n")
	if _, err := m.f.WriteAt(m.buf, m.off); err != nil {
		m.t.Fatal(err)
	}
}

func (m *markerFile) Close() { m.f.Close() }

func deviceSize(t *testing.T, dev string) int64 {
	b, err := os.ReadFile(filepath.Join("/sys/class/block", filepath.Base(dev), "size"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n * 512
}
