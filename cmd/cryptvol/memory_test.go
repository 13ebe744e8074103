package main

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/mount"
)

// procMemory returns a process's resident set now and at its peak (KiB).
func procMemory(t *testing.T, pid int) (rss, hwm int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		for name, v := range map[string]*int64{"VmRSS:": &rss, "VmHWM:": &hwm} {
			if s, ok := strings.CutPrefix(l, name); ok {
				*v, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "kB")), 10, 64)
			}
		}
	}
	return rss, hwm
}

// TestServerMemory checks that a vault's server gives Argon2's memory back
// after unlocking, and that its memory stays bounded under load: `cryptvol
// serve` of a vault whose keyslot costs 256 MiB, loaded with repeated
// nbdcopy runs over 4 connections, and the background server of `cryptvol
// open` (as root). It uses a plain `go build` of the CLI: the race-built
// test binary keeps the race detector's shadow of every page Argon2 touched,
// which says nothing about cryptvol.
func TestServerMemory(t *testing.T) {
	e2e.Tools(t, "go", "nbdcopy")
	dir := t.TempDir()
	exe := filepath.Join(dir, "cryptvol")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := append(os.Environ(), "CRYPTVOL_RUN_DIR="+filepath.Join(dir, "run"))
	cli := func(args ...string) string {
		cmd := exec.Command(exe, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cryptvol %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("memory\n"), 0o600)
	vault := filepath.Join(dir, "v.cv")
	cli("create", vault, "--size", "128M", "--filesystem", "none", "--kdf-memory", "256M", "--kdf-iterations", "1", "--kdf-threads", "1", "--passphrase-file", pw)

	sock := filepath.Join(dir, "v.sock")
	serve := exec.Command(exe, "serve", vault, "--listen", "unix:"+sock, "--passphrase-file", pw)
	serve.Env = env
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		serve.Process.Signal(syscall.SIGINT)
		serve.Wait()
	}()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not listen within 2 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rss, hwm := procMemory(t, serve.Process.Pid)
	t.Logf("serve after unlocking a 256 MiB keyslot: VmRSS %d KiB (peak during Argon2 %d KiB)", rss, hwm)
	if hwm < 200<<10 {
		t.Fatalf("peak %d KiB: Argon2 did not run with 256 MiB here, the test proves nothing", hwm)
	}
	if rss > 64<<10 {
		t.Fatalf("serve keeps %d KiB resident after unlocking: Argon2's 256 MiB was not given back", rss)
	}

	image := filepath.Join(dir, "image.bin")
	b := make([]byte, 128<<20)
	rand.Read(b)
	os.WriteFile(image, b, 0o600)
	uri := "nbd+unix:///?socket=" + sock
	// The peak under load, sampled (VmHWM still holds Argon2's peak).
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if rss, _ := procMemory(t, serve.Process.Pid); rss > peak.Load() {
				peak.Store(rss)
			}
		}
	}()
	var after []int64
	for round := range 5 {
		for _, args := range [][]string{
			{"--flush", "--connections=4", "--requests=64", image, uri},
			{"--connections=4", "--requests=64", uri, filepath.Join(dir, "back.bin")},
		} {
			if out, err := exec.Command("nbdcopy", args...).CombinedOutput(); err != nil {
				t.Fatalf("round %d: nbdcopy %v: %v\n%s", round, args, err, out)
			}
		}
		rss, _ := procMemory(t, serve.Process.Pid)
		after = append(after, rss)
		t.Logf("serve after round %d of 128 MiB written and read over 4 connections: VmRSS %d KiB, largest sample so far %d KiB", round+1, rss, peak.Load())
	}
	close(stop)
	<-sampled
	// The request buffers are capped at 128 MiB (Options.BufferBytes).
	if peak.Load() > 192<<10 {
		t.Fatalf("serve reached %d KiB under load", peak.Load())
	}
	if after[len(after)-1] > after[0]+32<<10 {
		t.Fatalf("serve's memory grows with load: %v KiB after each round", after)
	}
	back, _ := os.ReadFile(filepath.Join(dir, "back.bin"))
	if string(back) != string(b) {
		t.Fatal("the image read back differs")
	}

	// The background server of `cryptvol open`: the foreground process
	// derives the key, the server only receives it.
	if os.Geteuid() != 0 {
		e2e.Skip(t, "the open path needs root")
	}
	e2e.Root(t)
	serve.Process.Signal(syscall.SIGINT)
	serve.Wait()
	e2e.CheckLeaks(t)
	cli("open", vault, "--no-mount", "--passphrase-file", pw)
	defer cli("close", vault)
	states, err := mount.Registry{Dir: filepath.Join(dir, "run")}.List()
	if err != nil || len(states) != 1 {
		t.Fatalf("registry: %v, %v", states, err)
	}
	rss, hwm = procMemory(t, states[0].PID)
	t.Logf("open's server: VmRSS %d KiB, peak %d KiB", rss, hwm)
	if rss > 64<<10 || hwm > 64<<10 {
		t.Fatalf("open's server holds %d KiB (peak %d KiB): it should never see Argon2's memory", rss, hwm)
	}
}
