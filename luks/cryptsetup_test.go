package luks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestUnlockCryptsetupVolumes opens volumes made by cryptsetup — LUKS1 with
// every PBKDF2 hash, LUKS2 with every KDF and both sector sizes, several
// keyslots with different KDFs, binary keyfile secrets — with each secret, and
// checks the key against luksDump --dump-volume-key.
func TestUnlockCryptsetupVolumes(t *testing.T) {
	needCryptsetup(t)
	type volume struct {
		name   string
		format []string
		add    []string // KDF names of extra keyslots
	}
	var vols []volume
	// Every hash the host's cryptsetup takes for LUKS1 (its stribog512 fails).
	for _, h := range []string{"sha1", "sha224", "sha256", "sha384", "sha512", "ripemd160", "whirlpool", "sha3-256", "sha3-512", "blake2b-512", "blake2s-256"} {
		vols = append(vols, volume{"luks1-" + h, []string{"--type", "luks1", "--hash", h, "--pbkdf-force-iterations", "1000", "--key-size", "512"}, []string{"pbkdf2"}})
	}
	// The ciphers the host's cryptsetup runs without device-mapper (AES, through
	// the kernel's AF_ALG): cryptsetup 2.6's defaults (LUKS1 with a 256-bit
	// key is AES-128-XTS) and the older aes-cbc-essiv:sha256 and aes-xts-plain.
	// Serpent, Twofish and Camellia need dm-crypt to be formatted: the kernel
	// lab tests them.
	for _, c := range []struct{ cipher, bits string }{
		{"aes-xts-plain64", "256"}, {"aes-xts-plain", "512"}, {"aes-cbc-essiv:sha256", "256"},
		{"aes-cbc-essiv:sha256", "128"}, {"aes-cbc-plain64", "256"},
	} {
		for _, v := range []string{"luks1", "luks2"} {
			vols = append(vols, volume{fmt.Sprintf("%s-%s-%s", v, c.cipher, c.bits),
				[]string{"--type", v, "--cipher", c.cipher, "--key-size", c.bits, "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}, []string{"pbkdf2"}})
		}
	}
	for _, k := range []string{"argon2id", "argon2i", "pbkdf2", "pbkdf2-sha1", "pbkdf2-sha512", "pbkdf2-whirlpool"} {
		for _, ss := range []string{"512", "4096"} {
			f := append([]string{"--type", "luks2", "--sector-size", ss}, cheapKDF[k]...)
			vols = append(vols, volume{fmt.Sprintf("luks2-%s-%s", k, ss), f, []string{"argon2i", "pbkdf2"}})
		}
	}
	for _, v := range vols {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			secrets := [][]byte{[]byte("first passphrase")}
			path := csFormat(t, dir, 20<<20, secrets[0], v.format...)
			for i, k := range v.add {
				s := []byte(fmt.Sprintf("keyfile\x00\n%d\xff", i)) // keyfile bytes: NUL, newline, non-UTF-8
				args := cheapKDF[k]
				if v.format[1] == "luks1" {
					args = []string{"--pbkdf-force-iterations", "1000"}
				}
				csAddKey(t, path, secrets[0], s, args...)
				secrets = append(secrets, s)
			}
			want := csVolumeKey(t, path, secrets[0])
			h, f := readHeader(t, path)
			if err := h.Supported(); err != nil {
				t.Fatalf("Supported: %v", err)
			}
			for i, s := range secrets {
				vk, slot, err := h.Unlock(context.Background(), f, s, AnySlot)
				if err != nil {
					t.Fatalf("secret %d: %v", i, err)
				}
				if slot != i || !bytes.Equal(vk.Bytes(), want) {
					t.Fatalf("secret %d: slot %d, key %x, want slot %d, key %x", i, slot, vk.Bytes(), i, want)
				}
				vk.Destroy()
				// Restricted to its own slot it opens, restricted to another it does not.
				if vk, _, err := h.Unlock(context.Background(), f, s, i); err != nil {
					t.Fatalf("secret %d in slot %d: %v", i, i, err)
				} else {
					vk.Destroy()
				}
				if _, _, err := h.Unlock(context.Background(), f, s, (i+1)%len(secrets)); len(secrets) > 1 && !errors.Is(err, ErrWrongPassphrase) {
					t.Fatalf("secret %d in another slot: %v", i, err)
				}
			}
			if _, _, err := h.Unlock(context.Background(), f, []byte("wrong"), AnySlot); !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("wrong passphrase: %v", err)
			}
			g, err := h.Geometry(20<<20, false)
			if err != nil {
				t.Fatal(err)
			}
			if g.KeySize != len(want) {
				t.Fatalf("geometry key size %d, volume key %d bytes", g.KeySize, len(want))
			}
		})
	}
}
