package vmtest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGuestVeraCryptCryptsetup: VeraCrypt volumes cryptvol makes open with
// cryptsetup (`tcryptOpen --veracrypt`, which implements VeraCrypt's format
// independently), before and after `cryptvol passwd`, and dm-crypt's
// plaintext is cryptvol's byte for byte. The machines' own kernel lacks the
// AF_ALG interface cryptsetup decrypts VeraCrypt headers with; the lab's has
// it. The guest's cryptsetup (the host's: 2.6 on OpenSSL 3) derives keys
// with SHA-512 and SHA-256 only: it predates VeraCrypt's Argon2id and
// BLAKE2s, and OpenSSL's default provider has neither Whirlpool nor
// Streebog. cryptvol's other PRFs are checked against VeraCrypt's own
// images (package tcrypt, cmd/cryptvol's e2e scripts).
func TestGuestVeraCryptCryptsetup(t *testing.T) {
	if !InGuest() {
		t.Skip("guest test: runs in the kernel lab (TestLab, scripts/kernel-lab)")
	}
	for _, c := range []struct {
		encryption, prf string
		pim             int
	}{
		{"AES", "sha512", 0},
		{"Serpent-Twofish-AES", "sha512", 1},
		{"Camellia-Serpent", "sha256", 2},
		{"Twofish", "sha512", 2},
	} {
		t.Run(c.encryption+"-"+c.prf, func(t *testing.T) {
			dir := t.TempDir()
			plain := make([]byte, 1<<20)
			rand.Read(plain)
			writeFile(t, filepath.Join(dir, "plain.img"), plain)
			writeFile(t, filepath.Join(dir, "pw"), []byte("a VeraCrypt passphrase\n"))
			writeFile(t, filepath.Join(dir, "pw2"), []byte("its new passphrase\n"))
			pim := []string{"--pim", fmt.Sprint(c.pim)}
			run(t, dir, "cryptvol", append([]string{"create", "--type", "veracrypt", "v.hc", "--from", "plain.img",
				"--encryption", c.encryption, "--prf", c.prf, "--passphrase-file", "pw"}, pim...)...)
			if got := tcryptOpen(t, dir, "v.hc", "a VeraCrypt passphrase", c.pim, len(plain)); !bytes.Equal(got, plain) {
				t.Fatalf("dm-crypt's plaintext differs from the image at byte %d", firstDiff(got, plain))
			}
			// Re-keyed by cryptvol (another PRF and PIM): cryptsetup
			// opens it with the new passphrase, and the old one fails.
			run(t, dir, "cryptvol", append([]string{"passwd", "--type", "veracrypt", "v.hc", "--prf", c.prf,
				"--passphrase-file", "pw", "--new-passphrase-file", "pw2", "--new-prf", "sha512", "--new-pim", "3"}, pim...)...)
			if got := tcryptOpen(t, dir, "v.hc", "its new passphrase", 3, len(plain)); !bytes.Equal(got, plain) {
				t.Fatal("after passwd, dm-crypt's plaintext differs from the image")
			}
			dump := []string{"tcryptDump", "--veracrypt", "v.hc"}
			if c.pim != 0 {
				dump = append(dump, "--veracrypt-pim", fmt.Sprint(c.pim))
			}
			cmd := exec.Command("cryptsetup", dump...)
			cmd.Dir, cmd.Stdin = dir, strings.NewReader("a VeraCrypt passphrase")
			if out, err := cmd.CombinedOutput(); err == nil {
				t.Fatalf("the old passphrase still opens the header:\n%s", out)
			}
		})
	}
}

// tcryptOpen maps a VeraCrypt volume with cryptsetup (typing the
// passphrase on its standard input), reads size bytes of its plaintext, and
// closes the mapping.
func tcryptOpen(t *testing.T, dir, volume, pass string, pim, size int) []byte {
	t.Helper()
	args := []string{"tcryptOpen", "--veracrypt", "--readonly", volume, "vctest"}
	if pim != 0 {
		args = append(args, "--veracrypt-pim", fmt.Sprint(pim))
	}
	cmd := exec.Command("cryptsetup", args...)
	cmd.Dir, cmd.Stdin = dir, strings.NewReader(pass)
	if out, err := cmd.CombinedOutput(); err != nil {
		crypto, _ := os.ReadFile("/proc/crypto")
		var names []string
		for _, l := range strings.Split(string(crypto), "\n") {
			if strings.HasPrefix(l, "name") {
				names = append(names, strings.TrimSpace(strings.TrimPrefix(l, "name")))
			}
		}
		t.Fatalf("cryptsetup %s: %v\n%s\n(/proc/crypto has %s)", strings.Join(args, " "), err, out, strings.Join(names, " "))
	}
	defer func() {
		if out, err := exec.Command("cryptsetup", "close", "vctest").CombinedOutput(); err != nil {
			t.Errorf("cryptsetup close: %v\n%s", err, out)
		}
	}()
	out, _ := exec.Command("cryptsetup", "status", "vctest").CombinedOutput()
	t.Logf("cryptsetup status:\n%s", out)
	f, err := os.Open("/dev/mapper/vctest")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, _ := f.Seek(0, io.SeekEnd); n != int64(size) {
		t.Errorf("/dev/mapper/vctest has %d bytes, want %d", n, size)
	}
	got := make([]byte, size)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	return got
}
