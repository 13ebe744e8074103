package e2e

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// CheckLeaks records the mounts, attached loop and NBD devices, and cryptvol
// processes present now, and registers a cleanup (run after the test's own
// cleanups registered later) that fails the test if any new one remains.
func CheckLeaks(t testing.TB) {
	t.Helper()
	root := filepath.Dir(t.TempDir()) // this test's temporary directories
	before := Snapshot(root)
	t.Cleanup(func() {
		after := Snapshot(root)
		for _, leak := range after.Minus(before) {
			t.Errorf("leaked by the test: %s", leak)
		}
	})
}

// State is a set of resources a test could leak, as readable strings.
type State []string

// Snapshot lists the current mounts, attached loop devices, connected NBD
// devices and cryptvol processes started from this test binary (other than
// this process). The machine may be shared with other test runs, whose
// resources are not this test's leaks: processes of other binaries are left
// out, and so are mounts and loop devices under the temporary directory
// (os.TempDir) unless they are under one of roots, the test's own
// directories there.
func Snapshot(roots ...string) State {
	var s State
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 4 && ours(unescape(fields[4]), roots) {
				s = append(s, "mount "+unescape(fields[4]))
			}
		}
		f.Close()
	}
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, p := range loops {
		b, _ := os.ReadFile(p)
		if backing := strings.TrimSpace(string(b)); ours(backing, roots) {
			s = append(s, "loop device "+strings.Split(p, "/")[3]+" on "+backing)
		}
	}
	nbds, _ := filepath.Glob("/sys/block/nbd*/pid")
	for _, p := range nbds {
		s = append(s, "nbd device "+strings.Split(p, "/")[3])
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	self := "/proc/" + strconv.Itoa(os.Getpid()) + "/comm"
	for _, p := range procs {
		if p == self {
			continue
		}
		b, _ := os.ReadFile(p)
		dir := strings.TrimSuffix(p, "comm")
		if strings.HasPrefix(strings.TrimSpace(string(b)), "cryptvol") && !zombie(dir+"stat") && SameExecutable(dir+"exe") {
			s = append(s, "process "+strings.TrimSpace(string(b))+" pid "+strings.Split(p, "/")[2])
		}
	}
	slices.Sort(s)
	return s
}

// ours reports whether a mount point or loop backing file can belong to this
// test: anything outside the temporary directory, and what is under roots.
func ours(path string, roots []string) bool {
	if !under(path, os.TempDir()) {
		return true
	}
	for _, r := range roots {
		if under(path, r) {
			return true
		}
	}
	return false
}

func under(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// SameExecutable reports whether the process behind a /proc/PID/exe path runs
// this process's binary: the test binary re-executed as the CLI or a server.
// testscript hard-links it under the command's name, or copies it where it
// cannot, so a copy with the same contents counts too. An unreadable exe
// counts as the same: better a false leak than a missed one.
func SameExecutable(exe string) bool {
	self, err := os.Stat("/proc/self/exe")
	if err != nil {
		return true
	}
	other, err := os.Stat(exe)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // gone: it exited meanwhile
	}
	if os.SameFile(self, other) {
		return true
	}
	return self.Size() == other.Size() && fileHash("/proc/self/exe") == fileHash(exe)
}

func fileHash(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return path // unreadable: equal only to itself
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return string(h.Sum(nil))
}

// Minus returns the entries of s that are not in old.
func (s State) Minus(old State) []string {
	var d []string
	for _, x := range s {
		if !slices.Contains(old, x) {
			d = append(d, x)
		}
	}
	return d
}

func unescape(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// zombie reports whether the process behind a /proc/PID/stat path has exited
// and only waits to be reaped (it holds no resources then).
func zombie(stat string) bool {
	b, err := os.ReadFile(stat)
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}
