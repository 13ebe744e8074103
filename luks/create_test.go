package luks

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCreateWithCryptsetup makes LUKS2 volumes here (attached with the
// defaults, and a detached header) and checks them with cryptsetup: luksDump
// shows cryptsetup 2.6's defaults, open --test-passphrase accepts the secret,
// --dump-volume-key gives the key Create returned, keys added by either tool
// open in the other, and data encrypted here decrypts in cryptsetup.
func TestCreateWithCryptsetup(t *testing.T) {
	needCryptsetup(t)
	ctx := context.Background()
	dir := t.TempDir()
	secret := []byte("created here")
	path := filepath.Join(dir, "v.img")
	writeFile(t, path, nil)
	os.Truncate(path, 24<<20)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, vk, err := Create(ctx, f, 24<<20, secret, CreateOptions{Key: cheap, DigestIterations: 1000, Label: "cryptvol test"})
	if err != nil {
		t.Fatal(err)
	}
	defer vk.Destroy()
	dump := cryptsetup(t, nil, "luksDump", path)
	for _, want := range []string{"Version:       \t2", "Label:         \tcryptvol test", "offset: 16777216 [bytes]",
		"length: (whole device)", "cipher: aes-xts-plain64", "sector: 4096 [bytes]", "Key:        512 bits",
		"PBKDF:      argon2id", "Area offset:32768 [bytes]", "Area length:258048 [bytes]", "Keyslots area: \t16744448 [bytes]"} {
		if !strings.Contains(dump, want) {
			t.Errorf("luksDump lacks %q:\n%s", want, dump)
		}
	}
	if !csOpens(t, path, secret) {
		t.Fatal("cryptsetup does not open the created volume")
	}
	if got := csVolumeKey(t, path, secret); !bytes.Equal(got, vk.Bytes()) {
		t.Fatal("cryptsetup gets another volume key")
	}
	g, err := h.Geometry(24<<20, false)
	if err != nil || g.Offset != DefaultDataOffset || g.SectorSize != 4096 || !g.Dynamic || g.Size != 8<<20 {
		t.Fatalf("Geometry %+v, %v", g, err)
	}
	if _, err := h.AddKey(ctx, f, vk, []byte("second"), cheap); err != nil {
		t.Fatal(err)
	}
	if !csOpens(t, path, []byte("second")) {
		t.Fatal("cryptsetup does not open the key added here")
	}
	csAddKey(t, path, secret, []byte("third"), cheapKDF["argon2i"]...)
	if k, _ := mustUnlock(t, path, []byte("third")); !bytes.Equal(k.Bytes(), vk.Bytes()) {
		t.Fatal("the key cryptsetup added opens to another volume key")
	}

	// A detached header: data at offset 0 of another file, which cryptsetup
	// decrypts after it was encrypted here.
	hdr, data := filepath.Join(dir, "hdr.img"), filepath.Join(dir, "data.img")
	writeFile(t, hdr, make([]byte, 16<<20))
	hf, _ := os.OpenFile(hdr, os.O_RDWR, 0)
	defer hf.Close()
	dh, dvk, err := Create(ctx, hf, 16<<20, secret, CreateOptions{Key: cheap, DigestIterations: 1000, Detached: true, SectorSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer dvk.Destroy()
	plain := bytes.Repeat([]byte("cryptvol detached header data. "), 1<<16)[:1<<20]
	dg, err := dh.Geometry(int64(len(plain)), true)
	if err != nil || dg.Offset != 0 || dg.SectorSize != 512 {
		t.Fatalf("detached Geometry %+v, %v", dg, err)
	}
	c, wipe, _ := newSectorCipher(dg.Cipher, dvk.Bytes(), dg.SectorSize)
	enc := make([]byte, len(plain))
	for n := uint64(0); n*512 < uint64(len(plain)); n++ {
		c.Encrypt(enc[n*512:(n+1)*512], plain[n*512:(n+1)*512], dg.IV(n))
	}
	wipe()
	writeFile(t, data, enc)
	cryptsetup(t, secret, "reencrypt", "--decrypt", "--force-offline-reencrypt", "--header", hdr, "--key-file=-", data)
	if got, _ := os.ReadFile(data); !bytes.Equal(got, plain) {
		t.Fatal("cryptsetup decrypts data written through a created detached header to something else")
	}
}

// TestSetDataSize checks that a fixed-size segment changes size (and
// cryptsetup reads it) and that dynamic ones need nothing.
func TestSetDataSize(t *testing.T) {
	needCryptsetup(t)
	path := csFormat(t, t.TempDir(), 24<<20, []byte("x"), append([]string{"--type", "luks2"}, cheapKDF["pbkdf2"]...)...)
	h, f := rwDevice(t, path)
	if err := h.SetDataSize(f, 4096); err != nil {
		t.Fatalf("dynamic: %v", err)
	}
	tree := h.v2.meta().tree.clone()
	tree.get("segments").get("0").set("size", jUint(8<<20))
	if err := h.commit2(f, tree); err != nil {
		t.Fatal(err)
	}
	if err := h.SetDataSize(f, 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := h.SetDataSize(f, 4<<20+512); err == nil {
		t.Fatal("a size that is not whole sectors was set")
	}
	h2, _ := readHeader(t, path)
	if g, err := h2.Geometry(24<<20, false); err != nil || g.Size != 4<<20 || g.Dynamic {
		t.Fatalf("Geometry %+v, %v", g, err)
	}
	if out := cryptsetup(t, nil, "luksDump", path); !strings.Contains(out, "length: 4194304 [bytes]") {
		t.Fatalf("luksDump:\n%s", out)
	}
}

// TestCreateOtherCiphers makes LUKS2 volumes with the ciphers the host's
// cryptsetup cannot format without dm-crypt (the kernel lab checks them with
// cryptsetup): they open, take a new key, and their data round-trips; luksDump
// reads their headers.
func TestCreateOtherCiphers(t *testing.T) {
	for _, c := range []struct {
		cipher string
		key    int
	}{
		{"serpent-xts-plain64", 64}, {"twofish-xts-plain64", 64}, {"camellia-xts-plain64", 64},
		{"serpent-cbc-essiv:sha256", 32}, {"twofish-xts-plain", 32},
	} {
		t.Run(c.cipher, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "v.img")
			writeFile(t, path, nil)
			os.Truncate(path, 17<<20)
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			defer f.Close()
			h, vk, err := Create(ctx, f, 17<<20, []byte("s"), CreateOptions{Key: cheap, DigestIterations: 1000, Cipher: c.cipher, KeySize: c.key, SectorSize: 512})
			if err != nil {
				t.Fatal(err)
			}
			defer vk.Destroy()
			if _, err := h.AddKey(ctx, f, vk, []byte("t"), cheap); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"s", "t"} {
				k, _ := mustUnlock(t, path, []byte(s))
				if !bytes.Equal(k.Bytes(), vk.Bytes()) {
					t.Fatalf("secret %s opens another key", s)
				}
				k.Destroy()
			}
			g, err := h.Geometry(17<<20, false)
			if err != nil || g.Cipher != c.cipher || g.KeySize != c.key {
				t.Fatalf("Geometry %+v, %v", g, err)
			}
			sc, wipe, err := newSectorCipher(g.Cipher, vk.Bytes(), g.SectorSize)
			if err != nil {
				t.Fatal(err)
			}
			defer wipe()
			plain := bytes.Repeat([]byte{0x5a}, 4096)
			enc := make([]byte, len(plain))
			sc.Encrypt(enc, plain, g.IV(3))
			back := make([]byte, len(enc))
			sc.Decrypt(back, enc, g.IV(3))
			if !bytes.Equal(back, plain) || bytes.Equal(enc, plain) {
				t.Fatal("data does not round-trip")
			}
			if _, err := exec.LookPath("cryptsetup"); err == nil {
				if out := cryptsetup(t, nil, "luksDump", path); !strings.Contains(out, "cipher: "+c.cipher) {
					t.Fatalf("luksDump:\n%s", out)
				}
			}
		})
	}
}
