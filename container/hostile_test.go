package container_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/kdf"
	"github.com/cryptvol/cryptvol/testvectors/gen/hostile"
)

// maxAlloc bounds what one call on a hostile vault may allocate: the base
// vault's Argon2 needs 8 MiB, a hostile header must not make it more.
const maxAlloc = 100 << 20

// hangLimit is how long one call may take before the test calls it a hang.
// It is not a performance bound: the calls take milliseconds.
const hangLimit = 2 * time.Minute

// TestHostileVaults runs every generated hostile vault through Inspect,
// Unlock (read-only and read-write) and Open: the outcome and message each
// case documents, or a repair that leaves both copies intact and the data
// readable — never a panic, a hang or an allocation over 100 MiB.
func TestHostileVaults(t *testing.T) {
	pass := []byte("hostile base passphrase")
	base := filepath.Join(t.TempDir(), "base.cv")
	vol, err := container.Create(context.Background(), base, container.Passphrase(pass), &container.CreateOptions{
		Size: 64 << 10, KDF: kdf.Params{Memory: kdf.MinMemory, Iterations: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, vol.Size())
	rand.Read(data)
	if _, err := vol.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := vol.Sync(); err != nil {
		t.Fatal(err)
	}
	vol.Close()
	b := hostile.Base{Path: base, Passphrase: pass}

	counts := map[hostile.Outcome]int{}
	for _, c := range hostile.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			counts[c.Unlock]++
			dir := t.TempDir()
			path := filepath.Join(dir, "v.cv")
			if err := c.Make(b, path); err != nil {
				t.Fatal(err)
			}
			msg := regexp.MustCompile(c.Message)

			var info *container.Info
			bounded(t, "Inspect", func() error { info, err = container.Inspect(path); return err })
			switch {
			case c.Inspect && err != nil:
				t.Fatalf("Inspect: %v", err)
			case !c.Inspect && !errors.Is(err, container.ErrDamaged):
				t.Fatalf("Inspect: %v, want ErrDamaged", err)
			case !c.Inspect && !msg.MatchString(err.Error()):
				t.Fatalf("Inspect: %q does not match %q", err, c.Message)
			case c.Unlock == hostile.Repaired && info.Primary.Problem == "" && info.Backup.Problem == "":
				t.Fatalf("Inspect reports no problem with either copy")
			}

			// Read-only: the same outcome, nothing repaired or written.
			before := readAll(t, path)
			checkUnlock(t, c, msg, path, true)
			if !bytes.Equal(readAll(t, path), before) {
				t.Fatal("a read-only unlock changed the file")
			}
			openCopy := filepath.Join(dir, "open.cv")
			if err := c.Make(b, openCopy); err != nil {
				t.Fatal(err)
			}

			checkUnlock(t, c, msg, path, false)
			if c.Unlock == hostile.Repaired {
				info, err := container.Inspect(path)
				if err != nil {
					t.Fatalf("Inspect after the repair: %v", err)
				}
				if info.Primary.Problem != "" || info.Backup.Problem != "" {
					t.Fatalf("after the repair: primary %q, backup %q", info.Primary.Problem, info.Backup.Problem)
				}
				if warnings := checkUnlock(t, c, nil, path, false); len(warnings) > 0 {
					t.Fatalf("a second unlock still warns: %q", warnings)
				}
			}

			// Open: the data area behind the verified header is intact.
			var vol *container.Volume
			bounded(t, "Open", func() error { vol, err = container.Open(openCopy, container.Passphrase(pass), nil); return err })
			checkErr(t, "Open", c.Unlock, msg, err)
			if err == nil {
				got := make([]byte, vol.Size())
				if _, err := vol.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("data after Open: %v, equal %v", err, bytes.Equal(got, data))
				}
				vol.Close()
			}
		})
	}
	t.Logf("%d hostile vaults: %d open, %d repaired, %d wrong passphrase, %d damaged", len(hostile.Cases()),
		counts[hostile.Opens], counts[hostile.Repaired], counts[hostile.WrongPassphrase], counts[hostile.Damaged])
}

// checkUnlock unlocks the case's vault with the base passphrase and checks
// the outcome (msg nil: any message); it returns the warnings given.
func checkUnlock(t *testing.T, c hostile.Case, msg *regexp.Regexp, path string, readOnly bool) []string {
	t.Helper()
	var warnings []string
	var v *container.Vault
	var err error
	bounded(t, fmt.Sprintf("Unlock (read-only %v)", readOnly), func() error {
		v, err = container.Unlock(path, container.Passphrase([]byte("hostile base passphrase")), &container.UnlockOptions{
			ReadOnly: readOnly, Warn: func(m string) { warnings = append(warnings, m) }})
		return err
	})
	if v != nil {
		defer v.Close()
	}
	if msg == nil {
		if err != nil {
			t.Fatalf("Unlock: %v", err)
		}
		return warnings
	}
	checkErr(t, "Unlock", c.Unlock, msg, err)
	all := strings.Join(warnings, "\n")
	switch {
	case c.Unlock == hostile.Repaired && !msg.MatchString(all) && !readOnly:
		t.Fatalf("Unlock warned %q, want a match for %q", all, c.Message)
	case c.Unlock == hostile.Repaired && readOnly && !strings.Contains(all, "not repaired (opened read-only)") && !strings.Contains(all, "using the"):
		t.Fatalf("read-only Unlock warned %q, want a notice that nothing was repaired", all)
	case c.Unlock == hostile.Opens && len(warnings) > 0:
		t.Fatalf("Unlock warned %q", all)
	}
	return warnings
}

func checkErr(t *testing.T, what string, want hostile.Outcome, msg *regexp.Regexp, err error) {
	t.Helper()
	switch want {
	case hostile.Opens, hostile.Repaired:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return
	case hostile.WrongPassphrase:
		if !errors.Is(err, container.ErrWrongPassphrase) {
			t.Fatalf("%s: %v, want ErrWrongPassphrase", what, err)
		}
	case hostile.Damaged:
		if !errors.Is(err, container.ErrDamaged) {
			t.Fatalf("%s: %v, want ErrDamaged", what, err)
		}
	}
	if !msg.MatchString(err.Error()) {
		t.Fatalf("%s: %q does not match %q", what, err, msg)
	}
}

// bounded runs f, failing the test if it hangs, panics (which fails it
// anyway) or allocates more than maxAlloc.
func bounded(t *testing.T, what string, f func() error) {
	t.Helper()
	done := make(chan struct{})
	var alloc uint64
	go func() {
		defer close(done)
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		f()
		runtime.ReadMemStats(&m1)
		alloc = m1.TotalAlloc - m0.TotalAlloc
	}()
	select {
	case <-done:
	case <-time.After(hangLimit):
		t.Fatalf("%s did not return within %v", what, hangLimit)
	}
	if alloc > maxAlloc {
		t.Fatalf("%s allocated %d MiB", what, alloc>>20)
	}
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
