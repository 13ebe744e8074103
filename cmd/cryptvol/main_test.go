package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/kdf"
)

func TestMain(m *testing.M) {
	// The e2e tests' reaper (e2e.NewReaper) is this binary run again.
	e2e.ReapIfAsked()
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
		"cryptvol": func() {
			// benchmark's default Argon2id timing, the only KDF cost the
			// scripts cannot lower with flags.
			benchDefaultKDF = func() kdf.Params { return kdf.Params{Memory: kdf.MinMemory, Iterations: 1, Threads: 1} }
			main()
		},
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
			"benchjson":   cmdBenchJSON,
			"wait-socket": cmdWaitSocket,
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

// benchjson KDFRESULTS: check the `cryptvol benchmark --json` output in stdout:
// every implementation this CPU runs and the reference measured in every case
// with the fields the schema promises, exactly one selected result per op,
// sector_size and request_size, naming what cipher.New picks, and KDFRESULTS
// Argon2id results, the first with the default parameters.
func cmdBenchJSON(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: benchjson KDFRESULTS")
	}
	wantKDF, err := strconv.Atoi(args[0])
	ts.Check(err)
	var results []benchJSON
	ts.Check(json.Unmarshal([]byte(ts.ReadFile("stdout")), &results))
	type key struct {
		op            string
		sector, bytes int
	}
	selected := map[key][]string{}
	measured := map[string]int{}
	ciphers := map[string]int{}
	var kdfs []benchJSON
	for _, r := range results {
		if r.Cipher != "" {
			if (r.Op != "encrypt" && r.Op != "decrypt") || r.SectorSize != 512 || r.RequestSize != 128<<10 || r.MiBPerS <= 0 || !r.Selected || r.Impl == "" {
				ts.Fatalf("bad sector cipher result %+v", r)
			}
			ciphers[r.Cipher]++
			continue
		}
		if r.Impl == "argon2id" {
			if r.Op != "derive" || r.Seconds <= 0 || r.MemoryKiB == 0 || r.Iterations == 0 || r.Threads == 0 || r.Selected {
				ts.Fatalf("bad argon2id result %+v", r)
			}
			kdfs = append(kdfs, r)
			continue
		}
		if (r.Op != "encrypt" && r.Op != "decrypt") || (r.SectorSize != 512 && r.SectorSize != 4096) ||
			r.RequestSize%r.SectorSize != 0 || r.MiBPerS <= 0 || r.Seconds != 0 || r.Default {
			ts.Fatalf("bad cipher result %+v", r)
		}
		measured[r.Impl]++
		if r.Selected {
			k := key{r.Op, r.SectorSize, r.RequestSize}
			selected[k] = append(selected[k], r.Impl)
		}
	}
	for _, impl := range append(cipher.Implementations(), xtsReference) {
		if measured[impl] != 2*len(benchShapes) {
			ts.Fatalf("%s measured in %d cases, want %d", impl, measured[impl], 2*len(benchShapes))
		}
	}
	if len(measured) != len(cipher.Implementations())+1 {
		ts.Fatalf("results for %d implementations, want %d", len(measured), len(cipher.Implementations())+1)
	}
	if len(selected) != 2*len(benchShapes) {
		ts.Fatalf("selected results in %d cases, want %d: %v", len(selected), 2*len(benchShapes), selected)
	}
	for k, impls := range selected {
		if len(impls) != 1 || impls[0] != cipher.Implementations()[0] {
			ts.Fatalf("%+v: selected %v, want exactly %s", k, impls, cipher.Implementations()[0])
		}
	}
	for _, spec := range cipher.BenchmarkSpecs() {
		if ciphers[spec.String()] != 2 {
			ts.Fatalf("%s measured %d times, want 2 (encrypt, decrypt)", spec, ciphers[spec.String()])
		}
	}
	if len(ciphers) != len(cipher.BenchmarkSpecs()) {
		ts.Fatalf("results for %d sector ciphers, want %d", len(ciphers), len(cipher.BenchmarkSpecs()))
	}
	if len(kdfs) != wantKDF || !kdfs[0].Default || kdfs[0].Iterations != 1 {
		ts.Fatalf("argon2id results %+v, want %d, the first the default parameters at one iteration", kdfs, wantKDF)
	}
	for _, r := range kdfs[1:] {
		if r.Default {
			ts.Fatalf("given parameters marked default: %+v", r)
		}
	}
}
