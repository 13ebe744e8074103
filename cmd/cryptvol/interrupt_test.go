package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/kdf"
)

// cli returns a command running the CLI (this test binary, see TestMain) in
// dir.
func cli(dir string, args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "CRYPTVOL_TEST_RUN_MAIN=1", "GORACE="+noRaceExitSleep)
	return c
}

// TestInterruptStopsUnlock sends SIGINT to `cryptvol open --test-passphrase`
// while it derives a keyslot's key at the most a keyslot may cost (256 MiB ×
// 256 passes, minutes of work): it exits with 130 soon after. Before, SIGINT
// was caught and the derivation ran on to its end. The time it takes is
// logged: the figure "Ctrl-C stops an unlock within" of the docs.
func TestInterruptStopsUnlock(t *testing.T) {
	if testing.Short() {
		t.Skip("derives a 256 MiB key for a second")
	}
	dir := t.TempDir()
	vault := filepath.Join(dir, "v.cv")
	vol, err := container.Create(context.Background(), vault, container.Passphrase([]byte("pw")),
		&container.CreateOptions{Size: 1 << 20, KDF: kdf.Params{Memory: kdf.MinMemory, Iterations: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	vol.Close()
	slow := kdf.Params{Memory: 256 << 10, Iterations: 256, Threads: 1}
	setSlotParams(t, vault, 0, slow)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pw\n"), 0o600)
	c := cli(dir, "open", "v.cv", "--test-passphrase", "--passphrase-file", "pw")
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until Argon2's memory is in use: the derivation has started.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if rss, _ := procMemory(t, c.Process.Pid); rss > 200<<10 {
			break
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatalf("no derivation started; %s", stderr.String())
		}
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	c.Process.Signal(os.Interrupt)
	err = c.Wait()
	took := time.Since(start)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("after SIGINT: %v; %s", err, stderr.String())
	}
	t.Logf("SIGINT stopped the unlock (a derivation of 64 GiB of memory passes) in %v", took)
	if took > 10*time.Second {
		t.Fatalf("SIGINT took %v to stop the unlock", took)
	}
}

// setSlotParams rewrites keyslot slot of both header copies with parameters p
// (its tag then fails: the slot behaves as for a wrong passphrase, after the
// whole derivation).
func setSlotParams(t *testing.T, path string, slot int, p kdf.Params) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw := make([]byte, header.Size)
	if _, err := f.ReadAt(raw, 0); err != nil {
		t.Fatal(err)
	}
	h, err := header.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	h.Slots[slot].Memory, h.Slots[slot].Iterations, h.Slots[slot].Threads = p.Memory, p.Iterations, p.Threads
	for _, off := range []int64{0, h.BackupOffset()} {
		if _, err := f.WriteAt(h.Encode(), off); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUntilInterrupted: a prompt's read gives way to an interrupt that came
// before the prompt began (ui.interrupted already closed); a read that ends
// first is returned as it is.
func TestUntilInterrupted(t *testing.T) {
	closed := make(chan struct{})
	close(closed)
	never := make(chan struct{})
	defer close(never)
	_, err := (&ui{interrupted: closed}).untilInterrupted(func() ([]byte, error) {
		<-never
		return nil, nil
	})
	if !errors.Is(err, errInterrupted) {
		t.Fatalf("got %v, want errInterrupted", err)
	}
	line, err := (&ui{}).untilInterrupted(func() ([]byte, error) { return []byte("pw"), nil })
	if err != nil || string(line) != "pw" {
		t.Fatalf("got %q, %v", line, err)
	}
}
