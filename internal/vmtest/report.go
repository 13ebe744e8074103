package vmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RunSuite boots the guest for a suite and reports each guest test as a
// subtest of t: passed, failed (with the guest's output) or skipped, as it
// was in the guest. The guest's exit status counts too: a guest that
// panics, hangs or exits non-zero without a failed test fails t.
func (l *Lab) RunSuite(t *testing.T, s Suite) {
	t.Helper()
	console := filepath.Join(t.TempDir(), "console.log")
	vm, err := Boot(BootOptions{Kernel: l.Kernel, Initrd: l.Initrd, Job: s.Name, Console: console})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Kill)
	t.Logf("guest booting (%s, %s)", vm.Accel, l.Kernel.Key)
	limit := time.Duration(s.Minutes)*time.Minute + 2*time.Minute
	rep := newReporter(t)
	exit := -1
	timeout := time.After(limit)
read:
	for {
		select {
		case line, ok := <-vm.Lines:
			if !ok {
				break read
			}
			if v, ok := strings.CutPrefix(line, "LAB-EXIT "); ok {
				exit, _ = strconv.Atoi(strings.TrimSpace(v))
				continue
			}
			rep.line(line)
		case <-timeout:
			vm.Kill()
			rep.finish()
			t.Fatalf("the guest did not finish within %v; console:\n%s", limit, tail(console, 40))
		}
	}
	rep.finish()
	if err := vm.Wait(time.Minute); err != nil {
		t.Errorf("qemu: %v", err)
	}
	switch {
	case exit == -1:
		t.Errorf("the guest stopped before its job ended; console:\n%s\nlast output:\n%s", tail(console, 40), strings.Join(rep.recent, "\n"))
	case exit != 0 && rep.failed == 0:
		t.Errorf("the guest job exited with %d; last output:\n%s", exit, strings.Join(rep.recent, "\n"))
	case rep.ran == 0:
		t.Errorf("no test ran in the guest (pattern %q in %s)", s.Run, s.Pkg)
	}
}

// reporter turns `go test -v` output into subtests of t, one per top-level
// test, as each one ends.
type reporter struct {
	t      *testing.T
	cur    string   // the top-level test running
	buf    []string // its output so far
	recent []string // the last lines, for errors outside any test
	ran    int
	failed int
}

func newReporter(t *testing.T) *reporter { return &reporter{t: t} }

func (r *reporter) line(l string) {
	r.recent = append(r.recent, l)
	if len(r.recent) > 60 {
		r.recent = r.recent[1:]
	}
	if name, ok := strings.CutPrefix(l, "=== RUN   "); ok && !strings.Contains(name, "/") {
		r.flushOpen()
		r.cur = name
		r.buf = nil
		return
	}
	for _, res := range []string{"PASS", "FAIL", "SKIP"} {
		if rest, ok := strings.CutPrefix(l, "--- "+res+": "); ok {
			name, _, _ := strings.Cut(rest, " ")
			r.buf = append(r.buf, l)
			r.report(name, res)
			return
		}
	}
	if r.cur != "" {
		r.buf = append(r.buf, l)
	}
}

func (r *reporter) report(name, res string) {
	out := strings.Join(r.buf, "\n")
	r.cur, r.buf = "", nil
	r.ran++
	if res == "FAIL" {
		r.failed++
	}
	r.t.Run(name, func(t *testing.T) {
		switch res {
		case "FAIL":
			t.Errorf("failed in the guest:\n%s", out)
		case "SKIP":
			t.Skipf("skipped in the guest:\n%s", out)
		default:
			if testing.Verbose() {
				t.Log("\n" + out)
			}
		}
	})
}

// flushOpen reports a test that started but never ended (the guest died or
// a new test began without a result line).
func (r *reporter) flushOpen() {
	if r.cur != "" {
		r.buf = append(r.buf, fmt.Sprintf("(no result line for %s)", r.cur))
		r.report(r.cur, "FAIL")
	}
}

func (r *reporter) finish() { r.flushOpen() }

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
