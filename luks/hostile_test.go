package luks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/luks"
	"github.com/cryptvol/cryptvol/testvectors/gen/lukshostile"
)

// maxAlloc bounds what one call on a hostile volume may allocate: the bases'
// derivations need almost nothing, a hostile header must not make it more.
const maxAlloc = 64 << 20

// hangLimit is how long one call may take before the test calls it a hang.
// It is not a performance bound: the calls take milliseconds.
const hangLimit = 2 * time.Minute

// TestHostileVolumes runs every generated hostile LUKS volume through Read,
// Info, Unlock with the base passphrase and Geometry: the outcome and message
// each case documents — never a panic, a hang, an allocation over 64 MiB or a
// write to the volume. A volume with a damaged or older LUKS2 copy is then
// repaired, explicitly, and opens the same way with no copy reported.
func TestHostileVolumes(t *testing.T) {
	dir := t.TempDir()
	bases := map[int]lukshostile.Base{}
	for v, make := range map[int]func(string) (lukshostile.Base, error){1: lukshostile.MakeBase1, 2: lukshostile.MakeBase2} {
		b, err := make(filepath.Join(dir, fmt.Sprintf("base%d.img", v)))
		if err != nil {
			t.Fatal(err)
		}
		bases[v] = b
	}
	cases := lukshostile.Cases()
	if len(cases) < 100 {
		t.Fatalf("only %d hostile cases", len(cases))
	}
	counts := map[string]int{}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "v.img")
			if err := c.Make(bases[c.Version], path); err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			msg := regexp.MustCompile(c.Message)
			got := runCase(t, path, bases[c.Version], c, msg)
			counts[got]++
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Fatal("reading and unlocking changed the volume")
			}
			if c.Degraded {
				counts["degraded, repaired"]++
				repairAndRecheck(t, path, bases[c.Version], c)
			}
		})
	}
	t.Logf("%d hostile volumes: %v", len(cases), counts)
}

// runCase checks one case and returns a summary of what happened.
func runCase(t *testing.T, path string, base lukshostile.Base, c lukshostile.Case, msg *regexp.Regexp) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	var h *luks.Header
	bounded(t, "Read", func() error { h, err = luks.Read(f, fi.Size()); return err })
	if !check(t, "Read", c.Read, err, msg) {
		return "read: " + c.Read.String()
	}
	var info *luks.Info
	bounded(t, "Info", func() error { info = h.Info(); return nil })
	degraded := false
	for _, cp := range info.Copies {
		if cp.Problem != "" {
			degraded = true
		}
	}
	if degraded != c.Degraded {
		t.Fatalf("Info reports a damaged copy: %v, want %v (%+v)", degraded, c.Degraded, info.Copies)
	}
	var vk interface{ Bytes() []byte }
	bounded(t, "Unlock", func() error {
		k, _, err2 := h.Unlock(context.Background(), f, base.Passphrase, luks.AnySlot)
		err = err2
		if k != nil {
			vk = k
		}
		return err
	})
	if !check(t, "Unlock", c.Unlock, err, msg) {
		return "unlock: " + c.Unlock.String()
	}
	if !bytes.Equal(vk.Bytes(), base.VolumeKey) {
		t.Fatal("Unlock returned another volume key")
	}
	bounded(t, "Geometry", func() error { _, err = h.Geometry(fi.Size(), false); return err })
	if !check(t, "Geometry", c.Data, err, msg) {
		return "data: " + c.Data.String()
	}
	if c.Message != "" {
		t.Fatalf("everything succeeded, want an error matching %q", c.Message)
	}
	return "opens"
}

// check compares err with the expected outcome; it reports whether the case
// goes on (the step succeeded as expected).
func check(t *testing.T, what string, want lukshostile.Outcome, err error, msg *regexp.Regexp) bool {
	t.Helper()
	switch want {
	case lukshostile.OK:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return true
	case lukshostile.Refused:
		if !errors.Is(err, luks.ErrDamaged) && !errors.Is(err, luks.ErrUnsupported) {
			t.Fatalf("%s: %v, want ErrDamaged or ErrUnsupported", what, err)
		}
	case lukshostile.WrongPassphrase:
		if !errors.Is(err, luks.ErrWrongPassphrase) {
			t.Fatalf("%s: %v, want ErrWrongPassphrase", what, err)
		}
	case lukshostile.NotLUKS:
		if !errors.Is(err, luks.ErrNotLUKS) {
			t.Fatalf("%s: %v, want ErrNotLUKS", what, err)
		}
	}
	if !msg.MatchString(err.Error()) {
		t.Fatalf("%s: %q does not match %q", what, err, msg)
	}
	return false
}

// repairAndRecheck repairs a volume whose LUKS2 copies disagree and checks it
// opens the same way, with both copies current.
func repairAndRecheck(t *testing.T, path string, base lukshostile.Base, c lukshostile.Case) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	h, err := luks.Read(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Repair(f); err != nil {
		t.Fatalf("Repair: %v", err)
	}
	h, err = luks.Read(f, fi.Size())
	if err != nil {
		t.Fatalf("Read after Repair: %v", err)
	}
	for _, cp := range h.Info().Copies {
		if cp.Problem != "" {
			t.Fatalf("after Repair the %s copy: %s", cp.Name, cp.Problem)
		}
	}
	vk, _, err := h.Unlock(context.Background(), f, base.Passphrase, luks.AnySlot)
	if c.Unlock == lukshostile.OK && (err != nil || !bytes.Equal(vk.Bytes(), base.VolumeKey)) {
		t.Fatalf("Unlock after Repair: %v", err)
	}
}

// bounded runs f, failing the test if it hangs or allocates more than
// maxAlloc (a panic fails it anyway).
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
