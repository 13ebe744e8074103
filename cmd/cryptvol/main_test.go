package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	// Tests that need a real terminal start this binary as the CLI.
	if os.Getenv("CRYPTVOL_TEST_RUN_MAIN") == "1" {
		if dir := os.Getenv("CRYPTVOL_TEST_PEAK_RSS"); dir != "" {
			code := run(os.Args[1:], &ui{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
			recordPeakRSS(dir)
			os.Exit(code)
		}
		main()
	}
	testscript.Main(m, map[string]func(){
		"cryptvol": main,
	})
}

// TestScripts runs the CLI scenarios in testdata/script in-process. Each uses
// the cheapest KDF parameters through the command-line flags.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup:               func(env *testscript.Env) error { env.Setenv("GORACE", noRaceExitSleep); return nil },
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":       cmdExits,
			"patch":       cmdPatch,
			"truncate":    cmdTruncate,
			"random-file": cmdRandomFile,
			"zero-tail":   cmdZeroTail,
		},
	})
}

// recordPeakRSS writes this process's peak resident set (VmHWM, KiB) to
// DIR/PID. The parent's view, the rusage Maxrss of the child, is no use: Go
// starts children with vfork (CLONE_VM), and at exec Linux carries the
// shared memory's peak over into the child's maxrss, so every child seems
// as large as the test process that started it.
func recordPeakRSS(dir string) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())), []byte(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))), 0o600)
		}
	}
}

// noRaceExitSleep is GORACE for the CLI processes tests start: the race
// detector otherwise sleeps a second at every exit (atexit_sleep_ms=1000),
// which was most of the time the CLI tests took.
var noRaceExitSleep = strings.TrimPrefix(os.Getenv("GORACE")+" atexit_sleep_ms=0", " ")

// exits N prog args...: run prog and require exit code N; stdout and stderr are
// kept for the next stdout/stderr assertions.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("exits: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// patch FILE OFFSET HEXBYTE...: overwrite bytes of a file (damage a header).
// A negative OFFSET counts from the end of the file.
func cmdPatch(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: patch FILE OFFSET HEXBYTE...")
	}
	f, err := os.OpenFile(ts.MkAbs(args[0]), os.O_RDWR, 0)
	ts.Check(err)
	defer f.Close()
	off, err := strconv.ParseInt(args[1], 0, 64)
	ts.Check(err)
	if off < 0 {
		st, _ := f.Stat()
		off += st.Size()
	}
	var b []byte
	for _, h := range args[2:] {
		v, err := strconv.ParseUint(h, 16, 8)
		ts.Check(err)
		b = append(b, byte(v))
	}
	_, err = f.WriteAt(b, off)
	ts.Check(err)
}

// truncate FILE SIZE
func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: truncate FILE SIZE")
	}
	n, err := strconv.ParseInt(args[1], 0, 64)
	ts.Check(err)
	ts.Check(os.Truncate(ts.MkAbs(args[0]), n))
}

// zero-tail FILE FROM: every byte of FILE from offset FROM on is zero.
func cmdZeroTail(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: zero-tail FILE FROM")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	from, err := strconv.Atoi(args[1])
	ts.Check(err)
	for i := from; i < len(b); i++ {
		if b[i] != 0 {
			ts.Fatalf("%s: byte %d is %#x, not zero", args[0], i, b[i])
		}
	}
}
