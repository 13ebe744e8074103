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
	initrd, err := l.FullInitrd()
	if err != nil {
		t.Fatal(err)
	}
	console := filepath.Join(t.TempDir(), "console.log")
	vm, err := Boot(BootOptions{Kernel: l.Kernel, Initrd: initrd, Job: s.Name, Console: console})
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

// reporter turns `go test -v` output into subtests of t: one per top-level
// guest test, reported when its result and its subtests' results (printed
// after it, indented) are in, with one subtest per first-level guest
// subtest.
type reporter struct {
	t      *testing.T
	cur    string   // the top-level test running or just ended
	res    string   // its result, once seen
	buf    []string // its output so far
	subs   []subResult
	recent []string // the last lines, for errors outside any test
	ran    int
	failed int
}

type subResult struct{ name, res string }

func newReporter(t *testing.T) *reporter { return &reporter{t: t} }

func (r *reporter) line(l string) {
	r.recent = append(r.recent, l)
	if len(r.recent) > 60 {
		r.recent = r.recent[1:]
	}
	if r.res != "" && !strings.HasPrefix(l, "    ") {
		r.flush() // the indented results after the top-level one are over
	}
	if name, ok := strings.CutPrefix(l, "=== RUN   "); ok && !strings.Contains(name, "/") {
		if r.cur != "" {
			r.buf = append(r.buf, "(no result line: the next test began)")
			r.res = "FAIL"
			r.flush()
		}
		r.cur = name
		return
	}
	if r.cur == "" {
		return
	}
	r.buf = append(r.buf, l)
	if res, name, ok := resultLine(l, ""); ok && name == r.cur {
		r.res = res
	} else if res, name, ok := resultLine(l, "    "); ok && strings.Count(name, "/") == 1 && r.res != "" {
		r.subs = append(r.subs, subResult{strings.TrimPrefix(name, r.cur+"/"), res})
	}
}

// resultLine parses "--- PASS: Name (1.00s)" after indent.
func resultLine(l, indent string) (res, name string, ok bool) {
	for _, res := range []string{"PASS", "FAIL", "SKIP"} {
		if rest, ok := strings.CutPrefix(l, indent+"--- "+res+": "); ok {
			name, _, _ := strings.Cut(rest, " ")
			return res, name, true
		}
	}
	return "", "", false
}

func (r *reporter) flush() {
	name, res, subs := r.cur, r.res, r.subs
	out := strings.Join(r.buf, "\n")
	r.cur, r.res, r.buf, r.subs = "", "", nil, nil
	r.ran++
	if res == "FAIL" {
		r.failed++
	}
	r.t.Run(name, func(t *testing.T) {
		for _, s := range subs {
			t.Run(s.name, func(t *testing.T) {
				switch s.res {
				case "FAIL":
					t.Error("failed in the guest (output in the parent test)")
				case "SKIP":
					t.Skip("skipped in the guest (output in the parent test)")
				}
			})
		}
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

// finish reports the last test, failing one that never ended (the guest
// died).
func (r *reporter) finish() {
	if r.cur != "" && r.res == "" {
		r.buf = append(r.buf, "(no result line: the guest stopped)")
		r.res = "FAIL"
	}
	if r.cur != "" {
		r.flush()
	}
}

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
