package e2e

import (
	"bufio"
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
	before := Snapshot()
	t.Cleanup(func() {
		after := Snapshot()
		for _, leak := range after.Minus(before) {
			t.Errorf("leaked by the test: %s", leak)
		}
	})
}

// State is a set of resources a test could leak, as readable strings.
type State []string

// Snapshot lists the current mounts, attached loop devices, connected NBD
// devices and cryptvol processes (other than this one).
func Snapshot() State {
	var s State
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 4 {
				s = append(s, "mount "+unescape(fields[4]))
			}
		}
		f.Close()
	}
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, p := range loops {
		b, _ := os.ReadFile(p)
		s = append(s, "loop device "+strings.Split(p, "/")[3]+" on "+strings.TrimSpace(string(b)))
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
		if strings.HasPrefix(strings.TrimSpace(string(b)), "cryptvol") && !zombie(strings.TrimSuffix(p, "comm")+"stat") {
			s = append(s, "process "+strings.TrimSpace(string(b))+" pid "+strings.Split(p, "/")[2])
		}
	}
	slices.Sort(s)
	return s
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
