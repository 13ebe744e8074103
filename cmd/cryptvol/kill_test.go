package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/kdf"
)

// killKDF are the Argon2 parameters of every keyslot in the kill test:
// costly enough (tens of milliseconds) that kills land before, between and
// after the header writes, cheap enough for hundreds of trials.
var killKDF = kdf.Params{Memory: 16 << 10, Iterations: 2, Threads: 1}

// killOp is one header-changing CLI command, run on a copy of its template.
type killOp struct {
	name    string
	prepare func(t *testing.T, path string) // makes the template from a base vault
	args    func(path string) []string
	// allowed are the acceptable sets of working passphrases after a kill
	// at any point (the same as container's TestCrashAtEveryStep); the last
	// is the outcome of a run that completes.
	allowed [][]string
	// rerun: the command is not atomic (a LUKS header restore, like
	// cryptsetup's): after a kill it is run again to completion, and then
	// the last allowed set must hold.
	rerun bool
}

// TestKillAtEveryStep runs the real CLI (this test binary re-executed) doing
// passwd, key add, key remove, header restore and header repair, on a
// cryptvol vault, a LUKS2 volume and (with cryptsetup) a LUKS1 volume, and
// kills it with SIGKILL after delays spread over the command's measured
// duration.
// After every trial the vault must open with the old or the new passphrases
// (exactly one of the allowed sets) and hold the same data. The trials per
// command are CRYPTVOL_CRASH_TRIALS (default 5; scripts/crashtest runs
// hundreds); where the kills landed is read from the header copies left on
// disk and logged.
func TestKillAtEveryStep(t *testing.T) {
	trials := 5
	if s := os.Getenv("CRYPTVOL_CRASH_TRIALS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CRYPTVOL_CRASH_TRIALS=%q: want a positive number", s)
		}
		trials = n
	}
	dir := t.TempDir()
	for _, p := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("passphrase "+p+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pass := func(p string) []byte { return []byte("passphrase " + p) }
	kdfFlags := []string{"--kdf-memory", "16M", "--kdf-iterations", "2", "--kdf-threads", "1"}

	formats := []container.Type{container.TypeCryptvol, container.TypeLUKS2}
	if _, err := exec.LookPath("cryptsetup"); err == nil {
		formats = append(formats, container.TypeLUKS1)
	}
	total := 0
	for _, format := range formats {
		t.Run(string(format), func(t *testing.T) {
			total += killFormat(t, format, dir, pass, kdfFlags, trials)
		})
	}
	t.Logf("%d kill trials, every vault opened with an allowed set of passphrases and intact data", total)
}

// killFormat runs the kill test on a base volume of one format and returns
// the number of trials.
func killFormat(t *testing.T, format container.Type, dir string, pass func(string) []byte, kdfFlags []string, trials int) int {
	// The base: slot 0 opens with "a"; 1 MiB of random data.
	base := filepath.Join(t.TempDir(), "base")
	var vol *container.Volume
	var err error
	if format == container.TypeLUKS1 {
		os.WriteFile(base, nil, 0o600)
		os.Truncate(base, 3<<20) // 2 MiB of header, 1 MiB of data
		cmd := exec.Command("cryptsetup", "--batch-mode", "luksFormat", "--type", "luks1", "--pbkdf-force-iterations", "1000", "--key-file=-", base)
		cmd.Stdin = bytes.NewReader(pass("a"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cryptsetup luksFormat: %v\n%s", err, out)
		}
		vol, err = container.Open(base, container.Passphrase(pass("a")), nil)
	} else {
		vol, err = container.Create(context.Background(), base, container.Passphrase(pass("a")), &container.CreateOptions{Size: 1 << 20, KDF: killKDF, Type: format})
	}
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, vol.Size())
	rand.Read(data)
	if _, err := vol.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	vol.Sync()
	vol.Close()
	dataSum := sha256.Sum256(data)
	backup, err := container.BackupHeader(base) // holds "a" only
	if err != nil {
		t.Fatal(err)
	}
	hdr := filepath.Join(t.TempDir(), "a.hdr")
	if err := os.WriteFile(hdr, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	luks := format != container.TypeCryptvol

	withVault := func(t *testing.T, path string, f func(v *container.Vault) error) {
		v, err := container.Unlock(path, container.Passphrase(pass("a")), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		if err := f(v); err != nil {
			t.Fatal(err)
		}
	}
	ops := []killOp{
		{"passwd", nil, func(p string) []string {
			return append([]string{"passwd", p, "--passphrase-file", filepath.Join(dir, "a"), "--new-passphrase-file", filepath.Join(dir, "b")}, kdfFlags...)
		}, [][]string{{"a"}, {"a", "b"}, {"b"}}, false},
		{"key-add", nil, func(p string) []string {
			return append([]string{"key", "add", p, "--passphrase-file", filepath.Join(dir, "a"), "--new-passphrase-file", filepath.Join(dir, "b")}, kdfFlags...)
		}, [][]string{{"a"}, {"a", "b"}}, false},
		{"key-remove", func(t *testing.T, path string) {
			withVault(t, path, func(v *container.Vault) error {
				_, err := v.AddPassphrase(container.Passphrase(pass("b")), killKDF, 1)
				return err
			})
		}, func(p string) []string {
			return []string{"key", "remove", p, "--slot", "1", "--passphrase-file", filepath.Join(dir, "a")}
		}, [][]string{{"a", "b"}, {"a"}}, false},
		{"header-restore", func(t *testing.T, path string) {
			withVault(t, path, func(v *container.Vault) error { return v.ChangePassphrase(0, container.Passphrase(pass("b")), killKDF) })
		}, func(p string) []string {
			return []string{"header", "restore", p, hdr, "--yes", "--passphrase-file", filepath.Join(dir, "a")}
		}, [][]string{{"b"}, {"a"}}, luks},
		{"header-repair", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte{0xee}, 1000) // damage the primary copy
			f.Close()
		}, func(p string) []string {
			return []string{"header", "repair", p, "--passphrase-file", filepath.Join(dir, "a")}
		}, [][]string{{"a"}}, false},
	}

	if format == container.TypeLUKS1 {
		ops = ops[:len(ops)-1] // one header copy: header repair has nothing to do
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := func(args []string) *exec.Cmd {
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), "CRYPTVOL_TEST_RUN_MAIN=1", "GORACE="+noRaceExitSleep)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	total := 0
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			template := filepath.Join(t.TempDir(), "template.cv")
			copyVault(t, base, template)
			if op.prepare != nil {
				op.prepare(t, template)
			}
			initial := copies(t, template)

			// The command's duration (median of three runs to completion),
			// and when its header writes land: seen in one more run by
			// polling the header copies (the writes reach the page cache at
			// once), scaled to the unobserved duration.
			run := func(watch bool) (time.Duration, []time.Duration) {
				path := filepath.Join(t.TempDir(), "v.cv")
				copyVault(t, template, path)
				t0 := time.Now()
				cmd := start(op.args(path))
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				var w []time.Duration
				var err error
				if watch {
					w, err = watchWrites(t, path, initial, t0, done)
				} else {
					err = <-done
				}
				if err != nil {
					t.Fatalf("%s without a kill: %v\n%s", op.name, err, cmd.Stdout)
				}
				el := time.Since(t0)
				checkVault(t, path, op.allowed[len(op.allowed)-1], pass, dataSum)
				return el, w
			}
			var runs []time.Duration
			for range 3 {
				el, _ := run(false)
				runs = append(runs, el)
			}
			slices.Sort(runs)
			d := runs[1]
			dw, writes := run(true)
			if len(writes) == 0 {
				t.Fatal("no header write was seen")
			}
			for i := range writes {
				writes[i] = writes[i] * d / dw
			}

			// A third of the kills spread over 0 … 1.2 d, a third over the
			// window where the header writes were seen (1 ms either side),
			// stratified, one per slice; a third land at a random point of
			// that window after the first header write is seen (polling),
			// which the run-to-run spread of the KDF cannot blur.
			lo, hi := max(writes[0]-time.Millisecond, 0), writes[len(writes)-1]+time.Millisecond
			outcomes := map[string]int{}
			for i := range trials {
				path := filepath.Join(t.TempDir(), "v.cv")
				copyVault(t, template, path)
				kind, k, n := i%3, i/3, (trials-i%3+2)/3
				from, span := time.Duration(0), d*12/10
				if kind != 0 {
					from, span = lo, hi-lo
				}
				slice := span / time.Duration(n)
				jitter, _ := rand.Int(rand.Reader, big.NewInt(int64(slice)+1))
				delay := from + slice*time.Duration(k) + time.Duration(jitter.Int64())
				t0 := time.Now()
				cmd := start(op.args(path))
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				var wait <-chan time.Time
				if kind == 2 {
					wait = afterFirstWrite(t, path, initial, done, time.Duration(jitter.Int64())*time.Duration(n))
				} else {
					wait = time.After(delay - time.Since(t0))
				}
				killed := false
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("trial %d: %s failed by itself: %v\n%s", i, op.name, err, cmd.Stdout)
					}
				case <-wait:
					cmd.Process.Signal(syscall.SIGKILL)
					err := <-done
					var ee *exec.ExitError
					killed = errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled()
				}
				state := landing(initial, copies(t, path), killed)
				outcomes[state]++
				if killed && op.rerun {
					if err := start(op.args(path)).Wait(); err != nil {
						t.Fatalf("trial %d: running %s again after the kill: %v", i, op.name, err)
					}
				}
				working := checkVault(t, path, nil, pass, dataSum)
				if !slices.ContainsFunc(op.allowed, func(a []string) bool { return slices.Equal(a, working) }) {
					t.Fatalf("trial %d (kill after %v, %s): opens with %v, want one of %v", i, delay, state, working, op.allowed)
				}
				if !killed && !slices.Equal(working, op.allowed[len(op.allowed)-1]) {
					t.Fatalf("trial %d: completed, but opens with %v", i, working)
				}
				repairAndCheck(t, path, working[0], pass)
			}
			total += trials
			var keys []string
			for k := range outcomes {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var dist []string
			for _, k := range keys {
				dist = append(dist, fmt.Sprintf("%s: %d", k, outcomes[k]))
			}
			var ws []string
			for _, w := range writes {
				ws = append(ws, w.Round(100*time.Microsecond).String())
			}
			t.Logf("%s (runs take %v, header writes seen at %s; copies before: %s): %d trials, kills landed: %s",
				op.name, d.Round(time.Millisecond), strings.Join(ws, ", "), initial, trials, strings.Join(dist, ", "))
		})
	}
	return total
}

// afterFirstWrite returns a channel that fires delay after the first change
// to the vault's header copies is seen, or never if the command exits first
// (done is then left for the caller, with the command's result).
func afterFirstWrite(t *testing.T, path, initial string, done chan error, delay time.Duration) <-chan time.Time {
	fire := make(chan time.Time, 1)
	go func() {
		for {
			select {
			case err := <-done:
				done <- err // give it back
				return
			default:
			}
			if copies(t, path) != initial {
				time.Sleep(delay)
				fire <- time.Now()
				return
			}
			time.Sleep(20 * time.Microsecond)
		}
	}()
	return fire
}

// watchWrites polls the vault's header copies until the command exits
// (done), and returns when each change to them was first seen.
func watchWrites(t *testing.T, path, initial string, t0 time.Time, done <-chan error) ([]time.Duration, error) {
	var seen []time.Duration
	last := initial
	for {
		select {
		case err := <-done:
			if now := copies(t, path); now != last {
				seen = append(seen, time.Since(t0))
			}
			return seen, err
		default:
		}
		if now := copies(t, path); now != last {
			seen = append(seen, time.Since(t0))
			last = now
		}
		time.Sleep(20 * time.Microsecond) // leave the CPU to the command
	}
}

// copies describes the header copies of a vault: each one's sequence
// number, or x for a copy that is not valid.
func copies(t *testing.T, path string) string {
	if info, err := container.Inspect(path); err == nil && info.LUKS != nil {
		var s []string
		for _, c := range info.LUKS.Copies {
			if c.Problem != "" && !strings.Contains(c.Problem, "older") {
				s = append(s, c.Name+" x")
			} else {
				s = append(s, c.Name+" "+strconv.FormatUint(c.Seqid, 10))
			}
		}
		if len(s) == 0 { // LUKS1: one header, which has no sequence number
			return "header " + fmt.Sprintf("%x", sha256.Sum256(luksHeaderBytes(t, path)))[:12]
		}
		return strings.Join(s, ", ")
	} else if err != nil {
		return "unreadable"
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	var s []string
	for _, off := range []int64{0, st.Size() - header.Size} {
		b := make([]byte, header.Size)
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		if h, err := header.Decode(b); err == nil {
			s = append(s, strconv.FormatUint(h.Sequence, 10))
		} else {
			s = append(s, "x")
		}
	}
	return "primary " + s[0] + ", backup " + s[1]
}

// landing says where a kill landed, from the header copies it left.
func landing(initial, now string, killed bool) string {
	switch {
	case !killed:
		return "after the command finished"
	case now == initial:
		return "before any header write"
	}
	return "killed at " + now
}

// checkVault returns the passphrases that open the vault read-only (failing
// on any other error), checks that they are want if want is not nil, and
// that the data behind them is intact.
func checkVault(t *testing.T, path string, want []string, pass func(string) []byte, sum [32]byte) []string {
	t.Helper()
	var working []string
	for _, p := range []string{"a", "b"} {
		v, err := container.Unlock(path, container.Passphrase(pass(p)), &container.UnlockOptions{ReadOnly: true})
		if errors.Is(err, container.ErrWrongPassphrase) {
			continue
		}
		if err != nil {
			t.Fatalf("unlock with %s: %v", p, err)
		}
		v.Close()
		working = append(working, p)
	}
	if want != nil && !slices.Equal(working, want) {
		t.Fatalf("opens with %v, want %v", working, want)
	}
	if len(working) == 0 {
		t.Fatal("no passphrase opens the vault")
	}
	vol, err := container.Open(path, container.Passphrase(pass(working[0])), &container.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(vol, 0, vol.Size())); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), sum[:]) {
		t.Fatal("the data changed")
	}
	return working
}

// repairAndCheck opens the vault read-write (which repairs a stale copy of a
// cryptvol vault; a LUKS2 volume's is repaired by Repair, as `header repair`
// does) and checks that both copies are then intact.
func repairAndCheck(t *testing.T, path, p string, pass func(string) []byte) {
	t.Helper()
	v, err := container.Unlock(path, container.Passphrase(pass(p)), nil)
	if err != nil {
		t.Fatalf("read-write unlock: %v", err)
	}
	if err := v.Repair(); err != nil {
		t.Fatalf("repair: %v", err)
	}
	v.Close()
	info, err := container.Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Primary.Problem != "" || info.Backup.Problem != "" {
		t.Fatalf("after a read-write unlock: primary %q, backup %q", info.Primary.Problem, info.Backup.Problem)
	}
}

func copyVault(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// luksHeaderBytes returns the first 592 bytes of a LUKS1 volume (its header).
func luksHeaderBytes(t *testing.T, path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 592)
	f.ReadAt(b, 0)
	return b
}
