package vmtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/kdf"
	"github.com/cryptvol/cryptvol/luks"
)

// The LUKS tests of docs/LUKS.md against cryptsetup and dm-crypt themselves,
// in the lab's kernel (the host's has no dm-crypt): cryptsetup maps what
// cryptvol made and reads what cryptvol wrote, cryptvol opens what
// cryptsetup made and reads what dm-crypt wrote, for both sector sizes,
// through a filesystem on both of cryptvol's paths (nbd and loop), and for
// the ciphers cryptsetup can only format through dm-crypt (Serpent, Twofish,
// Camellia).

// luksPass is the passphrase of the tests' volumes: cryptvol reads the
// first line of --passphrase-file, cryptsetup the first line of its
// standard input.
const luksPass = "lab passphrase"

// luksPass2 is the passphrase a test adds with cryptvol.
const luksPass2 = "another lab passphrase"

// cheapKDF are cryptvol's flags for a fast keyslot (the lab runs under an
// emulator).
var cheapKDF = []string{"--kdf-memory", "8M", "--kdf-iterations", "1", "--kdf-threads", "1"}

// cheapPBKDF2 are cryptsetup's flags for a fast keyslot.
var cheapPBKDF2 = []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}

func TestGuestLUKS(t *testing.T) {
	if !InGuest() {
		t.Skip("guest test: runs in the kernel lab (TestLab, scripts/kernel-lab)")
	}
	t.Cleanup(func() { logCryptoDrivers(t, "xts(aes)", "xts(serpent)", "xts(twofish)", "xts(camellia)") })
	for _, sector := range []int{512, 4096} {
		t.Run(fmt.Sprintf("cryptvol-made-%d", sector), func(t *testing.T) { luksCryptvolMade(t, sector) })
	}
	for _, sector := range []int{512, 4096} {
		t.Run(fmt.Sprintf("cryptsetup-made-ext4-%d", sector), func(t *testing.T) { luksCryptsetupFS(t, sector) })
	}
	for _, c := range []string{"serpent", "twofish", "camellia"} {
		spec := c + "-xts-plain64"
		t.Run(c+"-cryptsetup-made", func(t *testing.T) { luksCipherCryptsetupMade(t, spec) })
		t.Run(c+"-cryptvol-made", func(t *testing.T) { luksCipherCryptvolMade(t, spec) })
	}
	for _, c := range []struct {
		name, spec string
		keyBits    int
	}{
		{"aes-xts-plain64", "aes-xts-plain64", 512},
		{"aes-cbc-essiv-sha256", "aes-cbc-essiv:sha256", 256},
		{"aes-xts-plain", "aes-xts-plain", 256},
		{"serpent-xts-plain64", "serpent-xts-plain64", 512},
	} {
		t.Run("luks1-"+c.name, func(t *testing.T) { luks1CryptsetupMade(t, c.spec, c.keyBits) })
	}
}

// luksCryptvolMade: `cryptvol create --type luks2 --from` a random image;
// cryptsetup maps the volume with dm-crypt and the kernel reads that image;
// then dm-crypt writes another one and cryptvol exports it.
func luksCryptvolMade(t *testing.T, sector int) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pw"), []byte(luksPass+"\n"))
	plain := randBytes(3 << 20)
	writeFile(t, filepath.Join(dir, "plain.img"), plain)
	run(t, dir, "cryptvol", append([]string{"create", "--type", "luks2", "v.luks", "--from", "plain.img",
		"--sector-size", fmt.Sprint(sector), "--passphrase-file", "pw"}, cheapKDF...)...)

	dev := cryptsetupOpen(t, dir, "v.luks", "cv")
	table := strings.TrimSpace(run(t, dir, "dmsetup", "table", "cv"))
	t.Logf("dm-crypt table: %s", table)
	// cryptsetup never asks for iv_large_sectors on LUKS: IVs count 512-byte
	// units (container.Geometry.IVStep is sector/512).
	if strings.Contains(table, "iv_large_sectors") {
		t.Errorf("cryptsetup set iv_large_sectors on a LUKS2 volume: %s", table)
	}
	if sector != 512 && !strings.Contains(table, fmt.Sprintf("sector_size:%d", sector)) {
		t.Errorf("the table has no sector_size:%d: %s", sector, table)
	}
	if got := readDevice(t, dev, len(plain)); !bytes.Equal(got, plain) {
		t.Fatalf("dm-crypt's plaintext differs from the image cryptvol imported at byte %d", firstDiff(got, plain))
	}
	second := randBytes(len(plain))
	writeDevice(t, dev, second)
	cryptsetupClose(t, "cv")

	run(t, dir, "cryptvol", "export", "v.luks", "out.img", "--passphrase-file", "pw")
	if got := readFile(t, filepath.Join(dir, "out.img")); !bytes.Equal(got, second) {
		t.Fatalf("cryptvol's export differs from what dm-crypt wrote at byte %d", firstDiff(got, second))
	}
}

// luksCryptsetupFS: a LUKS2 volume made by cryptsetup, with ext4 made and
// files written through dm-crypt, mounts through cryptvol's nbd path and
// then its loop path with the same files; each adds a file, and dm-crypt
// finds the filesystem clean with every file at the end.
func luksCryptsetupFS(t *testing.T, sector int) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pw"), []byte(luksPass+"\n"))
	sparseFile(t, filepath.Join(dir, "v.img"), 64<<20)
	cryptsetup(t, dir, append([]string{"--batch-mode", "luksFormat", "--type", "luks2", "--sector-size", fmt.Sprint(sector)}, append(cheapPBKDF2, "v.img")...)...)
	dev := cryptsetupOpen(t, dir, "v.img", "cs")
	run(t, dir, "mkfs.ext4", "-q", dev)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	run(t, dir, "mount", dev, mnt)
	files := map[string][]byte{}
	for i, size := range []int{0, 1, 4095, 4096, 65537, 1 << 20} {
		name := fmt.Sprintf("f%d", i)
		if i%2 == 1 {
			name = "dir/" + name
		}
		files[name] = randBytes(size)
	}
	writeTree(t, mnt, files)
	run(t, dir, "umount", mnt)
	cryptsetupClose(t, "cs")

	for _, via := range []string{"nbd", "loop"} {
		out := run(t, dir, "cryptvol", "open", "v.img", mnt, "--via", via, "--passphrase-file", "pw")
		t.Logf("%s", strings.TrimSpace(out))
		checkTree(t, mnt, files)
		extra := map[string][]byte{"from-" + via: randBytes(100_000)}
		writeTree(t, mnt, extra)
		files["from-"+via] = extra["from-"+via]
		run(t, dir, "cryptvol", "close", mnt)
	}

	dev = cryptsetupOpen(t, dir, "v.img", "cs")
	run(t, dir, "e2fsck", "-f", "-n", dev)
	run(t, dir, "mount", "-o", "ro", dev, mnt)
	checkTree(t, mnt, files)
	run(t, dir, "umount", mnt)
	cryptsetupClose(t, "cs")
}

// luksCipherCryptsetupMade: cryptsetup formats a volume with spec (through
// dm-crypt: its userspace cannot run these ciphers), dm-crypt writes random
// data, and cryptvol exports the same data.
func luksCipherCryptsetupMade(t *testing.T, spec string) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pw"), []byte(luksPass+"\n"))
	sparseFile(t, filepath.Join(dir, "v.img"), 20<<20)
	cryptsetup(t, dir, append([]string{"--batch-mode", "luksFormat", "--type", "luks2", "--cipher", spec, "--key-size", "512"},
		append(cheapPBKDF2, "v.img")...)...)
	dev := cryptsetupOpen(t, dir, "v.img", "cs")
	data := randBytes(2 << 20)
	writeDevice(t, dev, data)
	cryptsetupClose(t, "cs")
	info := run(t, dir, "cryptvol", "info", "v.img")
	if !strings.Contains(info, spec) {
		t.Errorf("cryptvol info does not name %s:\n%s", spec, info)
	}
	run(t, dir, "cryptvol", "export", "v.img", "out.img", "--passphrase-file", "pw")
	if got := readFile(t, filepath.Join(dir, "out.img")); !bytes.Equal(got[:len(data)], data) {
		t.Fatalf("cryptvol's plaintext differs from what dm-crypt wrote at byte %d", firstDiff(got, data))
	}
}

// luksCipherCryptvolMade: package luks makes a volume with spec (the CLI's
// create makes AES only), cryptvol writes random data through its nbd
// device, and dm-crypt reads the same data.
func luksCipherCryptvolMade(t *testing.T, spec string) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pw"), []byte(luksPass+"\n"))
	img := filepath.Join(dir, "v.img")
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	const size = 20 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	_, vk, err := luks.Create(context.Background(), f, size, []byte(luksPass), luks.CreateOptions{
		Cipher: spec, KeySize: 64,
		Key: luks.NewKey{PBKDF2: kdf.PBKDF2{Hash: "sha256", Iterations: 1000}}, DigestIterations: 1000})
	if err != nil {
		t.Fatal(err)
	}
	destroy(vk)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out := run(t, dir, "cryptvol", "open", "v.img", "--no-mount", "--via", "nbd", "--passphrase-file", "pw")
	m := regexp.MustCompile(` on (/dev/\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("cryptvol open named no device:\n%s", out)
	}
	data := randBytes(2 << 20)
	writeDevice(t, m[1], data)
	run(t, dir, "cryptvol", "close", "v.img")

	dump := cryptsetup(t, dir, "luksDump", "v.img")
	if !strings.Contains(dump, "cipher: "+spec) {
		t.Errorf("luksDump does not show cipher %s:\n%s", spec, dump)
	}
	dev := cryptsetupOpen(t, dir, "v.img", "cv")
	if got := readDevice(t, dev, len(data)); !bytes.Equal(got, data) {
		t.Fatalf("dm-crypt's plaintext differs from what cryptvol wrote at byte %d", firstDiff(got, data))
	}
	cryptsetupClose(t, "cv")
}

// luks1CryptsetupMade: cryptsetup formats a LUKS1 volume with spec (LUKS1's
// older defaults among them, which cryptvol opens and never makes), dm-crypt
// writes random data and cryptvol exports the same data; then cryptvol adds
// a passphrase, writes other data through its nbd device, and cryptsetup
// opens the volume with that passphrase (the keyslot cryptvol made) and
// dm-crypt reads what cryptvol wrote.
func luks1CryptsetupMade(t *testing.T, spec string, keyBits int) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pw"), []byte(luksPass+"\n"))
	writeFile(t, filepath.Join(dir, "pw2"), []byte(luksPass2+"\n"))
	sparseFile(t, filepath.Join(dir, "v.img"), 20<<20)
	cryptsetup(t, dir, append([]string{"--batch-mode", "luksFormat", "--type", "luks1", "--cipher", spec,
		"--key-size", fmt.Sprint(keyBits), "--hash", "sha256"}, append(cheapPBKDF2, "v.img")...)...)
	dev := cryptsetupOpen(t, dir, "v.img", "cs")
	t.Logf("dm-crypt table: %s", strings.TrimSpace(run(t, dir, "dmsetup", "table", "cs")))
	data := randBytes(2 << 20)
	writeDevice(t, dev, data)
	cryptsetupClose(t, "cs")

	info := run(t, dir, "cryptvol", "info", "v.img")
	if !strings.Contains(info, "luks1") || !strings.Contains(info, spec) {
		t.Errorf("cryptvol info does not show a luks1 volume with %s:\n%s", spec, info)
	}
	run(t, dir, "cryptvol", "export", "v.img", "out.img", "--passphrase-file", "pw")
	if got := readFile(t, filepath.Join(dir, "out.img")); !bytes.Equal(got[:len(data)], data) {
		t.Fatalf("cryptvol's plaintext differs from what dm-crypt wrote at byte %d", firstDiff(got, data))
	}

	run(t, dir, "cryptvol", append([]string{"key", "add", "v.img", "--passphrase-file", "pw", "--new-passphrase-file", "pw2"}, cheapKDF...)...)
	out := run(t, dir, "cryptvol", "open", "v.img", "--no-mount", "--via", "nbd", "--passphrase-file", "pw2")
	m := regexp.MustCompile(` on (/dev/\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("cryptvol open named no device:\n%s", out)
	}
	second := randBytes(len(data))
	writeDevice(t, m[1], second)
	run(t, dir, "cryptvol", "close", "v.img")

	dev = cryptsetupOpenPass(t, dir, luksPass2, "v.img", "cs")
	if got := readDevice(t, dev, len(second)); !bytes.Equal(got, second) {
		t.Fatalf("dm-crypt's plaintext differs from what cryptvol wrote at byte %d", firstDiff(got, second))
	}
	cryptsetupClose(t, "cs")
}

// cryptsetup runs cryptsetup in dir with the passphrase on its standard
// input, and returns its output.
func cryptsetup(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return cryptsetupPass(t, dir, luksPass, args...)
}

// cryptsetupPass is cryptsetup typing pass.
func cryptsetupPass(t *testing.T, dir, pass string, args ...string) string {
	t.Helper()
	cmd := exec.Command("cryptsetup", args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(pass + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cryptsetup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// cryptsetupOpen maps a LUKS volume file (cryptsetup attaches a loop
// device) as /dev/mapper/name, closed when the test ends if it is still
// open.
func cryptsetupOpen(t *testing.T, dir, file, name string) string {
	t.Helper()
	return cryptsetupOpenPass(t, dir, luksPass, file, name)
}

// cryptsetupOpenPass is cryptsetupOpen typing pass.
func cryptsetupOpenPass(t *testing.T, dir, pass, file, name string) string {
	t.Helper()
	cryptsetupPass(t, dir, pass, "open", file, name)
	dev := "/dev/mapper/" + name
	t.Cleanup(func() {
		if _, err := os.Stat(dev); err == nil {
			exec.Command("cryptsetup", "close", name).Run()
		}
	})
	return dev
}

func cryptsetupClose(t *testing.T, name string) {
	t.Helper()
	if out, err := exec.Command("cryptsetup", "close", name).CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup close %s: %v\n%s", name, err, out)
	}
}

// logCryptoDrivers logs the kernel drivers behind the named algorithms in
// /proc/crypto (those instantiated so far), to show what the guest's kernel
// ran.
func logCryptoDrivers(t *testing.T, names ...string) {
	b, err := os.ReadFile("/proc/crypto")
	if err != nil {
		return
	}
	var name string
	var found []string
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "name":
			name = strings.TrimSpace(v)
		case "driver":
			for _, n := range names {
				if name == n {
					found = append(found, name+" = "+strings.TrimSpace(v))
				}
			}
		}
	}
	t.Logf("the kernel's drivers: %s", strings.Join(found, ", "))
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// sparseFile makes an empty file of size bytes.
func sparseFile(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readDevice reads the first n bytes of a block device.
func readDevice(t *testing.T, dev string, n int) []byte {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatalf("reading %s: %v", dev, err)
	}
	return b
}

// writeDevice writes b at the start of a block device and syncs it.
func writeDevice(t *testing.T, dev string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		t.Fatalf("writing %s: %v", dev, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		t.Fatalf("syncing %s: %v", dev, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeTree writes files (relative path: contents) under root and syncs
// them.
func writeTree(t *testing.T, root string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Write(b)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// checkTree compares the files under root with files, by SHA-256.
func checkTree(t *testing.T, root string, files map[string][]byte) {
	t.Helper()
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Errorf("%s differs (%d bytes, want %d)", name, len(got), len(want))
		}
	}
}

func destroy(b *memguard.LockedBuffer) {
	if b != nil {
		b.Destroy()
	}
}
