package luks

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestDataMatchesCryptsetup checks Geometry (offset, sector size, and the
// 512-byte IV units cryptsetup uses for LUKS2 at every sector size), with the
// AES ciphers the host runs without device-mapper, against
// data that cryptsetup itself encrypted and decrypted, in userspace: offline
// `reencrypt --encrypt` of a plain file, attached (the data moved behind a
// new header) and detached (--header), and offline `reencrypt --decrypt` of
// data this package encrypted.
func TestDataMatchesCryptsetup(t *testing.T) {
	needCryptsetup(t)
	pass := []byte("data passphrase")
	for _, tc := range []struct {
		cipher string
		bits   int
		ss     int
	}{
		{"aes-xts-plain64", 512, 512}, {"aes-xts-plain64", 512, 2048}, {"aes-xts-plain64", 512, 4096},
		{"aes-xts-plain64", 256, 4096}, {"aes-xts-plain", 512, 512}, {"aes-cbc-essiv:sha256", 256, 512},
		{"aes-cbc-essiv:sha256", 256, 4096}, {"aes-cbc-plain64", 128, 4096},
	} {
		ss := tc.ss
		t.Run(fmt.Sprintf("%s-%d-%d", tc.cipher, tc.bits, ss), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			plain := make([]byte, 4<<20)
			rand.Read(plain)
			kdf := append([]string{"--type", "luks2", "--sector-size", fmt.Sprint(ss), "--cipher", tc.cipher, "--key-size", fmt.Sprint(tc.bits)}, cheapKDF["pbkdf2"]...)

			// Attached: the plaintext moves 8 MiB down behind the header.
			attached := filepath.Join(dir, "attached.img")
			writeFile(t, attached, append(bytes.Clone(plain), make([]byte, 16<<20)...))
			cryptsetup(t, pass, append(append([]string{"reencrypt", "--encrypt", "--reduce-device-size", "16M", "--key-file=-"}, kdf...), attached)...)
			checkDecrypts(t, attached, attached, pass, plain)

			// Detached: the data stays at offset 0 of its device.
			data := filepath.Join(dir, "data.img")
			hdr := filepath.Join(dir, "hdr.img")
			writeFile(t, data, plain)
			cryptsetup(t, pass, append(append([]string{"reencrypt", "--encrypt", "--header", hdr, "--key-file=-"}, kdf...), data)...)
			checkDecrypts(t, hdr, data, pass, plain)

			// And back: data this package encrypts, cryptsetup decrypts.
			data2 := filepath.Join(dir, "data2.img")
			hdr2 := filepath.Join(dir, "hdr2.img")
			writeFile(t, data2, make([]byte, len(plain)))
			writeFile(t, hdr2, make([]byte, 16<<20))
			cryptsetup(t, pass, append(append([]string{"luksFormat", "--header", hdr2, "--key-file=-"}, kdf...), data2)...)
			h, f := readHeader(t, hdr2)
			vk, _ := mustUnlock(t, hdr2, pass)
			g, err := h.Geometry(int64(len(plain)), true)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			c, wipe, err := newSectorCipher(g.Cipher, vk.Bytes(), g.SectorSize)
			if err != nil {
				t.Fatal(err)
			}
			enc := make([]byte, len(plain))
			for n := uint64(0); n*uint64(ss) < g.Size; n++ {
				o := g.Offset + n*uint64(ss)
				c.Encrypt(enc[o:o+uint64(ss)], plain[o:o+uint64(ss)], g.IV(n))
			}
			wipe()
			writeFile(t, data2, enc)
			cryptsetup(t, pass, "reencrypt", "--decrypt", "--force-offline-reencrypt", "--header", hdr2, "--key-file=-", data2)
			if got, _ := os.ReadFile(data2); !bytes.Equal(got, plain) {
				t.Fatal("cryptsetup decrypts this package's ciphertext to something else")
			}
		})
	}
}

// checkDecrypts decrypts the data area described by the header at hdr on the
// data device at data and compares it with the start of plain.
func checkDecrypts(t *testing.T, hdr, data string, pass, plain []byte) {
	t.Helper()
	vk := csVolumeKey(t, hdr, pass)
	h, _ := readHeader(t, hdr)
	enc, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	g, err := h.Geometry(int64(len(enc)), hdr != data)
	if err != nil {
		t.Fatal(err)
	}
	c, wipe, err := newSectorCipher(g.Cipher, vk, g.SectorSize)
	if err != nil {
		t.Fatal(err)
	}
	defer wipe()
	n := min(uint64(len(plain)), g.Size) / uint64(g.SectorSize)
	got := make([]byte, n*uint64(g.SectorSize))
	for i := uint64(0); i < n; i++ {
		o := i * uint64(g.SectorSize)
		c.Decrypt(got[o:o+uint64(g.SectorSize)], enc[g.Offset+o:g.Offset+o+uint64(g.SectorSize)], g.IV(i))
	}
	if n == 0 || !bytes.Equal(got, plain[:len(got)]) {
		t.Fatalf("%s: %d sectors of %d bytes at %d do not decrypt to the plaintext", data, n, g.SectorSize, g.Offset)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
