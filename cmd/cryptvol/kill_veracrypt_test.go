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
	"github.com/cryptvol/cryptvol/tcrypt"
)

// TestKillVeraCryptPasswd runs `cryptvol passwd --type veracrypt` (this
// test binary re-executed) and kills it with SIGKILL at delays spread over
// its run and around its header writes, as TestKillAtEveryStep does for
// cryptvol vaults. After every trial the volume must open with the old or
// the new passphrase through the primary header or the backup, in one of
// the states the update order allows (docs/VERACRYPT.md, "Changing the
// passphrase"), with its data intact. Trials: CRYPTVOL_CRASH_TRIALS
// (default 6).
func TestKillVeraCryptPasswd(t *testing.T) {
	trials := 6
	if s := os.Getenv("CRYPTVOL_CRASH_TRIALS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CRYPTVOL_CRASH_TRIALS=%q: want a positive number", s)
		}
		trials = n
	}
	dir := t.TempDir()
	pass := func(p string) []byte { return []byte("passphrase " + p) }
	for _, p := range []string{"old", "new"} {
		if err := os.WriteFile(filepath.Join(dir, p), append(pass(p), '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// VeraCrypt's cheapest derivation (SHA-512, PIM 1: 16000 iterations),
	// named so that no other PRF is tried.
	cheap := container.TCryptOptions{PRF: tcrypt.PRFSHA512, PIM: 1}
	base := filepath.Join(dir, "base.hc")
	vol, err := container.CreateVeraCrypt(context.Background(), base, container.Passphrase(pass("old")),
		&container.VeraCryptOptions{Size: 256 << 10, PRF: tcrypt.PRFSHA512, PIM: 1})
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
	sum := sha256.Sum256(data)
	args := func(path string) []string {
		return []string{"passwd", "--type", "veracrypt", "--prf", "sha512", "--pim", "1", path,
			"--passphrase-file", filepath.Join(dir, "old"), "--new-passphrase-file", filepath.Join(dir, "new"), "--new-pim", "1"}
	}
	// What opens the volume: "old" or "new", through the primary header or
	// the backup ("old/backup").
	working := func(path string) string {
		var w []string
		for _, p := range []string{"old", "new"} {
			for _, backup := range []bool{false, true} {
				o := cheap
				o.BackupHeader = backup
				v, err := container.Unlock(path, container.Passphrase(pass(p)), &container.UnlockOptions{Type: container.TypeVeraCrypt, TCrypt: o, ReadOnly: true})
				if errors.Is(err, container.ErrWrongPassphrase) {
					continue
				}
				if err != nil {
					t.Fatalf("unlock with %s (backup %v): %v", p, backup, err)
				}
				v.Close()
				name := p
				if backup {
					name += "/backup"
				}
				w = append(w, name)
			}
		}
		return strings.Join(w, " ")
	}
	allowed := []string{"old old/backup", "old/backup new", "new new/backup"}
	checkData := func(path, how string) {
		p, o := strings.Split(strings.Fields(how)[0], "/"), cheap
		o.BackupHeader = len(p) == 2
		vol, err := container.Open(path, container.Passphrase(pass(p[0])), &container.OpenOptions{Type: container.TypeVeraCrypt, TCrypt: o, ReadOnly: true})
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
	}
	headers := func(path string) [2][]byte {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		st, _ := f.Stat()
		var h [2][]byte
		for i, off := range []int64{0, st.Size() - tcrypt.BackupAreaSize} {
			h[i] = make([]byte, tcrypt.HeaderSize)
			if _, err := f.ReadAt(h[i], off); err != nil {
				t.Fatal(err)
			}
		}
		return h
	}
	initial := headers(base)
	landed := func(path string) string {
		h := headers(path)
		return fmt.Sprintf("primary %s, backup %s", map[bool]string{true: "old", false: "new"}[bytes.Equal(h[0], initial[0])],
			map[bool]string{true: "old", false: "new"}[bytes.Equal(h[1], initial[1])])
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := func(path string) (*exec.Cmd, chan error) {
		cmd := exec.Command(exe, args(path)...)
		cmd.Env = append(os.Environ(), "CRYPTVOL_TEST_RUN_MAIN=1", "GORACE="+noRaceExitSleep)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		return cmd, done
	}
	// How long a run takes (the median of three).
	var runs []time.Duration
	for range 3 {
		path := filepath.Join(t.TempDir(), "v.hc")
		copyVault(t, base, path)
		t0 := time.Now()
		cmd, done := start(path)
		if err := <-done; err != nil {
			t.Fatalf("passwd without a kill: %v\n%s", err, cmd.Stdout)
		}
		runs = append(runs, time.Since(t0))
		if w := working(path); w != allowed[2] {
			t.Fatalf("a completed passwd leaves %q", w)
		}
	}
	slices.Sort(runs)
	d := runs[1]
	outcomes := map[string]int{}
	for i := range trials {
		path := filepath.Join(t.TempDir(), "v.hc")
		copyVault(t, base, path)
		// Half the kills spread over the whole run; half land at a random
		// point of the 4 ms after the primary header is seen rewritten
		// (polling), where the backup is written: the run-to-run spread of
		// the key derivations cannot blur those.
		n := (trials + 1 - i%2) / 2
		slice := d * 12 / 10 / time.Duration(n)
		jitter, _ := rand.Int(rand.Reader, big.NewInt(int64(slice)+1))
		delay := slice*time.Duration(i/2) + time.Duration(jitter.Int64())
		cmd, done := start(path)
		wait := time.After(delay)
		if i%2 == 1 {
			after, _ := rand.Int(rand.Reader, big.NewInt(int64(4*time.Millisecond)))
			delay = time.Duration(after.Int64())
			fire := make(chan time.Time, 1)
			go func() {
				for {
					select {
					case err := <-done:
						done <- err
						return
					default:
					}
					if !bytes.Equal(headers(path)[0], initial[0]) {
						time.Sleep(delay)
						fire <- time.Now()
						return
					}
					time.Sleep(20 * time.Microsecond)
				}
			}()
			wait = fire
		}
		killed := false
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("trial %d: passwd failed by itself: %v\n%s", i, err, cmd.Stdout)
			}
		case <-wait:
			cmd.Process.Signal(syscall.SIGKILL)
			err := <-done
			var ee *exec.ExitError
			killed = errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled()
		}
		w := working(path)
		if !slices.Contains(allowed, w) {
			t.Fatalf("trial %d (kill after %v, %s): opens with %q, want one of %q", i, delay, landed(path), w, allowed)
		}
		if !killed && w != allowed[2] {
			t.Fatalf("trial %d: completed, but opens with %q", i, w)
		}
		checkData(path, w)
		state := "completed"
		if killed {
			state = "killed: " + landed(path)
		}
		outcomes[state]++
	}
	var dist []string
	for k, n := range outcomes {
		dist = append(dist, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(dist)
	t.Logf("passwd --type veracrypt (runs take %v): %d trials: %s", d.Round(time.Millisecond), trials, strings.Join(dist, "; "))
}
