package container

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cryptvol/cryptvol/kdf"
)

// tiny are the cheapest parameters the format allows, for fast tests.
var tiny = kdf.Params{Memory: kdf.MinMemory, Iterations: 1, Threads: 1}

func create(t testing.TB, size int64, sectorSize int, pass string) (string, *Volume) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vault.cv")
	vol, err := Create(context.Background(), path, Passphrase([]byte(pass)), &CreateOptions{Size: size, SectorSize: sectorSize, KDF: tiny})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vol.Close() })
	return path, vol
}

func createClosed(t testing.TB, size int64, pass string) string {
	t.Helper()
	path, vol := create(t, size, 4096, pass)
	if err := vol.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustOpen(t testing.TB, path, pass string, opts *OpenOptions) *Volume {
	t.Helper()
	vol, err := Open(path, Passphrase([]byte(pass)), opts)
	if err != nil {
		t.Fatalf("open with %q: %v", pass, err)
	}
	t.Cleanup(func() { vol.Close() })
	return vol
}

func mustUnlock(t testing.TB, path, pass string) *Vault {
	t.Helper()
	v, err := Unlock(path, Passphrase([]byte(pass)), nil)
	if err != nil {
		t.Fatalf("unlock with %q: %v", pass, err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// opens reports whether pass unlocks the vault, failing on any error other
// than a wrong passphrase.
func opens(t testing.TB, path, pass string) bool {
	t.Helper()
	v, err := Unlock(path, Passphrase([]byte(pass)), &UnlockOptions{ReadOnly: true})
	if errors.Is(err, ErrWrongPassphrase) {
		return false
	}
	if err != nil {
		t.Fatalf("unlock with %q: %v", pass, err)
	}
	v.Close()
	return true
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func writeFull(t testing.TB, vol *Volume, p []byte, off int64) {
	t.Helper()
	if n, err := vol.WriteAt(p, off); err != nil || n != len(p) {
		t.Fatalf("WriteAt(%d bytes, %d) = %d, %v", len(p), off, n, err)
	}
}

func readFull(t testing.TB, vol *Volume, n int, off int64) []byte {
	t.Helper()
	p := make([]byte, n)
	if m, err := vol.ReadAt(p, off); err != nil || m != n {
		t.Fatalf("ReadAt(%d bytes, %d) = %d, %v", n, off, m, err)
	}
	return p
}

func patchFile(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func equal(a, b []byte) bool { return bytes.Equal(a, b) }

// v1of is the cryptvol v1 state of an unlocked vault, for tests that reach
// into it.
func v1of(v *Vault) *v1Vault { return v.k.(*v1Vault) }
