package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/mount/fsys"
	"github.com/cryptvol/cryptvol/testvectors/gen/hostile"
)

// cliResult is one run of the real CLI (this test binary re-executed).
type cliResult struct {
	code           int
	stdout, stderr string
	maxRSS         int64 // KiB, the child's peak resident set (VmHWM)
	rusageMaxRSS   int64 // KiB, the rusage figure: includes this process's (see recordPeakRSS)
}

// runCLI runs the CLI with args and env, failing the test if it does not
// finish within limit (a hang): a generous bound, not a performance one.
func runCLI(t *testing.T, env []string, limit time.Duration, args ...string) cliResult {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	peaks := t.TempDir()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(append(os.Environ(), "CRYPTVOL_TEST_RUN_MAIN=1", "GORACE="+noRaceExitSleep, "CRYPTVOL_TEST_PEAK_RSS="+peaks), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("cryptvol %s did not finish within %v", strings.Join(args, " "), limit)
	}
	r := cliResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.rusageMaxRSS = ru.Maxrss
	}
	b, err := os.ReadFile(filepath.Join(peaks, strconv.Itoa(cmd.Process.Pid)))
	if err != nil {
		t.Fatalf("cryptvol %s recorded no peak RSS: %v", strings.Join(args, " "), err)
	}
	if r.maxRSS, err = strconv.ParseInt(string(b), 10, 64); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") {
		t.Fatalf("cryptvol %s panicked:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// mountedCases are the hostile vaults that open which are also mounted
// through the loop path in the default run: one of each kind. The others
// open the same way after the same repair; CRYPTVOL_HOSTILE_ALL=1 mounts
// every one (scripts/crashtest-style long run).
var mountedCases = map[string]bool{
	"checksum-primary": true, "checksum-backup": true, "torn-primary": true, "torn-backup": true,
	"kdf-memory-1TiB-primary": true, "kdf-threads-1000-backup": true, "sector-size-3-primary": true,
	"version-2-primary": true, "data-offset-past-end-primary": true, "mac-primary": true,
	"mac-sector-size-primary": true, "slot-salt-primary": true, "backup-newer": true,
	"backup-newer-forged": true, "same-sequence-different": true, "stale-backup-at-tail": true,
	"stale-backup-at-tail-primary-damaged": true,
}

// TestHostileVaultsCLI runs every generated hostile vault through the real
// CLI: `info`, `open --test-passphrase`, and, as root, `open FILE MOUNTPOINT`
// through the loop path (then `close`). Each gives its documented exit code
// and message, never a panic or a hang, peaks under 100 MiB above the same
// command on a healthy vault, and leaves nothing mounted.
func TestHostileVaultsCLI(t *testing.T) {
	dir := t.TempDir()
	env := []string{"CRYPTVOL_RUN_DIR=" + filepath.Join(dir, "run")}
	pw := filepath.Join(dir, "pw")
	pass := "hostile cli passphrase"
	if err := os.WriteFile(pw, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const limit = 5 * time.Minute
	root := os.Geteuid() == 0
	if root {
		e2e.Root(t)
		e2e.Tools(t, "mkfs.ext4", "findmnt", "losetup")
		e2e.CheckLeaks(t)
	} else {
		e2e.Skip(t, "needs root to make the base vault's filesystem and to mount")
	}

	// The base: an ext4 vault holding one known file.
	base := filepath.Join(dir, "base.cv")
	if r := runCLI(t, env, limit, "create", base, "--size", "8M", "--kdf-memory", "8M", "--kdf-iterations", "1", "--kdf-threads", "1", "--passphrase-file", pw); r.code != 0 {
		t.Fatalf("create: %d\n%s", r.code, r.stderr)
	}
	mnt := filepath.Join(dir, "mnt")
	content := []byte("a file that survives every repair\n")
	if r := runCLI(t, env, limit, "open", base, mnt, "--passphrase-file", pw); r.code != 0 {
		t.Fatalf("open the base: %d\n%s", r.code, r.stderr)
	}
	if err := os.WriteFile(filepath.Join(mnt, "known.txt"), content, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, env, limit, "close", mnt); r.code != 0 {
		t.Fatalf("close the base: %d\n%s", r.code, r.stderr)
	}

	// Baselines: the same commands on the healthy vault.
	baseRSS := map[string]int64{}
	for name, args := range map[string][]string{
		"info":            {"info", base},
		"test-passphrase": {"open", base, "--test-passphrase", "--passphrase-file", pw},
	} {
		r := runCLI(t, env, limit, args...)
		if r.code != 0 {
			t.Fatalf("%s on the base: %d\n%s", name, r.code, r.stderr)
		}
		baseRSS[name] = r.maxRSS
	}
	r := runCLI(t, env, limit, "open", base, mnt, "--passphrase-file", pw)
	if r.code != 0 {
		t.Fatalf("open the base: %d\n%s", r.code, r.stderr)
	}
	baseRSS["open"] = r.maxRSS
	if r := runCLI(t, env, limit, "close", mnt); r.code != 0 {
		t.Fatalf("close the base: %d\n%s", r.code, r.stderr)
	}
	t.Logf("peak RSS on the healthy vault: info %d KiB, open --test-passphrase %d KiB, open %d KiB",
		baseRSS["info"], baseRSS["test-passphrase"], baseRSS["open"])

	b := hostile.Base{Path: base, Passphrase: []byte(pass)}
	all := os.Getenv("CRYPTVOL_HOSTILE_ALL") == "1"
	var peak struct {
		rss, rusage int64
		what        string
	}
	check := func(t *testing.T, what string, r cliResult, wantCode int, msg *regexp.Regexp) {
		t.Helper()
		if r.code != wantCode {
			t.Fatalf("%s: exit %d, want %d\nstderr: %s", what, r.code, wantCode, r.stderr)
		}
		if msg != nil && !msg.MatchString(r.stderr) {
			t.Fatalf("%s: stderr %q does not match %q", what, r.stderr, msg)
		}
		key := strings.Fields(what)[0]
		if d := r.maxRSS - baseRSS[key]; d > 100<<10 {
			t.Fatalf("%s: peak RSS %d KiB, %d KiB above the healthy vault's", what, r.maxRSS, d)
		}
		peak.rusage = max(peak.rusage, r.rusageMaxRSS)
		if d := r.maxRSS - baseRSS[key]; d > peak.rss {
			peak.rss, peak.what = d, what
		}
	}
	mounted := 0
	for _, c := range hostile.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			cdir := t.TempDir()
			path := filepath.Join(cdir, "v.cv")
			if err := c.Make(b, path); err != nil {
				t.Fatal(err)
			}
			msg := regexp.MustCompile(c.Message)
			if c.Message == "" {
				msg = nil
			}

			r := runCLI(t, env, limit, "info", path)
			if c.Inspect {
				check(t, "info", r, 0, nil)
			} else {
				check(t, "info", r, 4, msg)
			}

			openCopy := filepath.Join(cdir, "open.cv")
			if err := c.Make(b, openCopy); err != nil {
				t.Fatal(err)
			}
			r = runCLI(t, env, limit, "open", path, "--test-passphrase", "--passphrase-file", pw)
			check(t, "test-passphrase", r, c.Unlock.ExitCode(), msg)
			if c.Unlock == hostile.Repaired && !strings.Contains(r.stderr, "cryptvol: warning: ") {
				t.Fatalf("repaired without a warning: %q", r.stderr)
			}

			if c.Unlock <= hostile.Repaired && !all && !mountedCases[c.Name] {
				return
			}
			m := filepath.Join(cdir, "mnt")
			r = runCLI(t, env, limit, "open", openCopy, m, "--passphrase-file", pw)
			check(t, "open", r, c.Unlock.ExitCode(), msg)
			if r.code != 0 {
				if ok, _ := fsys.IsMounted(m); ok {
					t.Fatalf("%s is mounted after a failed open", m)
				}
				return
			}
			mounted++
			got, err := os.ReadFile(filepath.Join(m, "known.txt"))
			if cr := runCLI(t, env, limit, "close", m); cr.code != 0 {
				t.Fatalf("close: %d\n%s", cr.code, cr.stderr)
			}
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("the known file after open: %q, %v", got, err)
			}
			if ok, _ := fsys.IsMounted(m); ok {
				t.Fatalf("%s is still mounted after close", m)
			}
		})
	}
	t.Logf("%d hostile vaults through info and open --test-passphrase, %d mounted; the largest peak RSS above the healthy vault's: %d KiB (%s); the largest rusage maxrss, which counts this test process's memory too: %d KiB",
		len(hostile.Cases()), mounted, peak.rss, peak.what, peak.rusage)
	if out, _ := exec.Command("losetup", "-a").Output(); bytes.Contains(out, []byte(dir)) {
		t.Fatalf("loop devices left: %s", out)
	}
}
