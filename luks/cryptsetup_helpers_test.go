package luks

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/internal/e2e"
)

// These helpers run the host's cryptsetup on plain files: luksFormat,
// luksAddKey, luksChangeKey, luksKillSlot, luksDump --dump-volume-key,
// luksHeaderBackup/Restore and open --test-passphrase need no device mapper.
// Secrets go through --key-file=- so that their bytes are the passphrase,
// exactly as this package takes them.

// cheapKDF are cryptsetup options for the cheapest derivations it accepts, so
// tests stay fast.
var cheapKDF = map[string][]string{
	"argon2id":         {"--pbkdf", "argon2id", "--pbkdf-memory", "32", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"},
	"argon2i":          {"--pbkdf", "argon2i", "--pbkdf-memory", "64", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "2"},
	"pbkdf2":           {"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"},
	"pbkdf2-sha1":      {"--pbkdf", "pbkdf2", "--hash", "sha1", "--pbkdf-force-iterations", "1000"},
	"pbkdf2-sha512":    {"--pbkdf", "pbkdf2", "--hash", "sha512", "--pbkdf-force-iterations", "1000"},
	"pbkdf2-whirlpool": {"--pbkdf", "pbkdf2", "--hash", "whirlpool", "--pbkdf-force-iterations", "1000"},
}

func needCryptsetup(t testing.TB) {
	t.Helper()
	e2e.Tools(t, "cryptsetup")
}

// cryptsetup runs cryptsetup with stdin and returns its output; it fails the
// test unless the exit status is 0.
func cryptsetup(t testing.TB, stdin []byte, args ...string) string {
	t.Helper()
	out, err := runCryptsetup(stdin, args...)
	if err != nil {
		t.Fatalf("cryptsetup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func runCryptsetup(stdin []byte, args ...string) (string, error) {
	// A cryptsetup run is seconds at most here; a hang is a test bug (a
	// costly default KDF), not something to wait for.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "cryptsetup", append([]string{"--batch-mode"}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// csFormat makes a LUKS volume of size bytes at a new path in dir with
// cryptsetup luksFormat and returns the path.
func csFormat(t testing.TB, dir string, size int64, pass []byte, args ...string) string {
	t.Helper()
	path := filepath.Join(dir, "v.img")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	cryptsetup(t, pass, append(append([]string{"luksFormat", "--key-file=-"}, args...), path)...)
	return path
}

// csAddKey adds newPass with cryptsetup luksAddKey, unlocking with pass.
func csAddKey(t testing.TB, path string, pass, newPass []byte, args ...string) {
	t.Helper()
	f := writeSecret(t, newPass)
	cryptsetup(t, pass, append(append([]string{"luksAddKey", "--key-file=-"}, args...), path, f)...)
}

// csVolumeKey returns the volume key pass opens, from luksDump --dump-volume-key.
func csVolumeKey(t testing.TB, path string, pass []byte) []byte {
	t.Helper()
	vkf := filepath.Join(t.TempDir(), "vk")
	cryptsetup(t, pass, "luksDump", "--dump-volume-key", "--volume-key-file", vkf, "--key-file=-", path)
	vk, err := os.ReadFile(vkf)
	if err != nil {
		t.Fatal(err)
	}
	return vk
}

// csOpens reports whether cryptsetup open --test-passphrase accepts pass.
func csOpens(t testing.TB, path string, pass []byte) bool {
	t.Helper()
	out, err := runCryptsetup(pass, "open", "--test-passphrase", "--key-file=-", path)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 {
			return false // "No key available with this passphrase."
		}
		t.Fatalf("cryptsetup open --test-passphrase: %v\n%s", err, out)
	}
	return true
}

func writeSecret(t testing.TB, secret []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// readHeader opens path and reads its header.
func readHeader(t testing.TB, path string) (*Header, *os.File) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	h, err := Read(f, fi.Size())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return h, f
}

// mustUnlock unlocks path with pass and returns the key and the slot.
func mustUnlock(t testing.TB, path string, pass []byte) (*memguard.LockedBuffer, int) {
	t.Helper()
	h, f := readHeader(t, path)
	vk, slot, err := h.Unlock(context.Background(), f, pass, AnySlot)
	if err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	return vk, slot
}
