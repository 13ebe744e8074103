package cipher_test

import (
	"bytes"
	"crypto/pbkdf2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/kdf"
)

// tcryptImages is the archive of VeraCrypt and TrueCrypt volumes made by those
// tools (../shared/interop/README.md); it stays outside the repository.
const tcryptImages = "../../shared/interop/tcrypt-images.tar.xz"

// TestVeraCryptImages decrypts the headers of volumes VeraCrypt and TrueCrypt
// made, trying every encryption algorithm as they do: exactly the one the
// volume was made with must show the magic. This holds cipher order and key
// splitting of the cascades, and Serpent, Twofish, Camellia, Kuznyechik and
// Whirlpool, to the real tools.
func TestVeraCryptImages(t *testing.T) {
	if testing.Short() {
		t.Skip("derives keys with 500000 PBKDF2 iterations per image")
	}
	if _, err := os.Stat(tcryptImages); err != nil {
		e2e.Skip(t, "the interop images are not beside the repository: "+err.Error())
	}
	e2e.Tools(t, "tar", "xz")
	images := []struct {
		file, hash, algorithm, magic string
		iterations                   int
	}{
		{"vc_1-sha512-xts-serpent-twofish-aes", "sha512", "Serpent-Twofish-AES", "VERA", 500000},
		{"vc_1-sha512-xts-camellia", "sha512", "Camellia", "VERA", 500000},
		{"vc_1-sha512-xts-kuznyechik", "sha512", "Kuznyechik", "VERA", 500000},
		{"vc_1-whirlpool-xts-aes", "whirlpool", "AES", "VERA", 500000},
		{"tc_4-sha512-xts-twofish-serpent", "sha512", "Twofish-Serpent", "TRUE", 1000},
		{"tc_3-ripemd160-xts-serpent", "ripemd160", "Serpent", "TRUE", 2000},
	}
	dir := t.TempDir()
	args := []string{"-xJf", tcryptImages, "-C", dir}
	for _, im := range images {
		args = append(args, im.file)
	}
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	for _, im := range images {
		t.Run(im.file, func(t *testing.T) {
			if raceEnabled && im.hash == "whirlpool" {
				// 500000 iterations of pure-Go Whirlpool take about a
				// minute under the race detector; the hash has its
				// vectors in kdf/whirlpool, and runs here without -race.
				t.Skip("Whirlpool PBKDF2 under the race detector is too slow")
			}
			hdr := make([]byte, 512)
			f, err := os.Open(filepath.Join(dir, im.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.ReadAt(hdr, 0); err != nil {
				t.Fatal(err)
			}
			h, err := kdf.Hash(im.hash)
			if err != nil {
				t.Fatal(err)
			}
			// The header key is long enough for a three-cipher cascade.
			hk, err := pbkdf2.Key(h, "aaaaaaaaaaaa", hdr[:64], im.iterations, 192)
			if err != nil {
				t.Fatal(err)
			}
			var found []string
			for _, name := range cipher.VeraCryptAlgorithms() {
				spec, err := cipher.VeraCryptSpec(name)
				if err != nil {
					t.Fatal(err)
				}
				s, err := cipher.NewSector(spec, hk[:spec.KeySize], make([]byte, spec.StateSize()), 448)
				if err != nil {
					t.Fatal(err)
				}
				plain := make([]byte, 448)
				s.Decrypt(plain, hdr[64:], 0)
				if bytes.Equal(plain[:4], []byte(im.magic)) {
					found = append(found, name)
				}
			}
			if len(found) != 1 || found[0] != im.algorithm {
				t.Fatalf("the magic %q appears with %v, want exactly %s", im.magic, found, im.algorithm)
			}
		})
	}
}
