package luks

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cryptvol/cryptvol/kdf"
)

// cheap are the cheapest derivations for keyslots this package writes in tests.
var cheap = NewKey{Slot: AnySlot, Argon2: kdf.Argon2{Variant: kdf.Argon2id, Memory: 32, Iterations: 4, Threads: 1},
	PBKDF2: kdf.PBKDF2{}}

func cheapFor(h *Header) NewKey {
	k := cheap
	if h.Version() == 1 {
		k.PBKDF2 = kdf.PBKDF2{Iterations: 1000}
	}
	return k
}

// rwDevice opens path for reading and writing as a Device.
func rwDevice(t testing.TB, path string) (*Header, *os.File) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, _ := f.Stat()
	h, err := Read(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return h, f
}

// TestKeyChangesWithCryptsetup adds, changes and removes keys here and checks
// them with cryptsetup (open --test-passphrase, luksDump --dump-volume-key,
// token export), then changes keys with cryptsetup and opens them here.
func TestKeyChangesWithCryptsetup(t *testing.T) {
	needCryptsetup(t)
	for _, tc := range []struct {
		name        string
		format, kdf []string
	}{
		{"luks1", []string{"--type", "luks1", "--key-size", "512"}, []string{"--pbkdf-force-iterations", "1000"}},
		{"luks2-argon2id-4096", []string{"--type", "luks2", "--sector-size", "4096"}, cheapKDF["argon2id"]},
		{"luks2-pbkdf2-512", []string{"--type", "luks2", "--sector-size", "512"}, cheapKDF["pbkdf2"]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			a, b, c := []byte("secret a"), []byte("secret b\x00"), []byte("secret c")
			path := csFormat(t, t.TempDir(), 20<<20, a, append(tc.format, tc.kdf...)...)
			luks2 := tc.format[1] == "luks2"
			token := `{"type":"x-cryptvol-test","keyslots":["0"],"kept":{"nested":[1,2.5,"é"]}}`
			if luks2 {
				cryptsetup(t, []byte(token), "token", "import", "--json-file=-", "--token-id", "3", path)
			}
			want := csVolumeKey(t, path, a)

			h, f := rwDevice(t, path)
			vk, _, err := h.Unlock(ctx, f, a, AnySlot)
			if err != nil {
				t.Fatal(err)
			}
			defer vk.Destroy()
			sb, err := h.AddKey(ctx, f, vk, b, cheapFor(h))
			if err != nil {
				t.Fatalf("AddKey: %v", err)
			}
			expectOpens(t, path, map[string]bool{"a": true, "b": true, "c": false}, a, b, c)
			if got := csVolumeKey(t, path, b); !bytes.Equal(got, want) {
				t.Fatal("cryptsetup gets another volume key from the added keyslot")
			}
			sc, err := h.ChangeKey(ctx, f, vk, sb, c, cheapFor(h))
			if err != nil {
				t.Fatalf("ChangeKey: %v", err)
			}
			if luks2 && sc != sb {
				t.Fatalf("LUKS2 ChangeKey moved keyslot %d to %d", sb, sc)
			}
			expectOpens(t, path, map[string]bool{"a": true, "b": false, "c": true}, a, b, c)
			if err := h.RemoveKey(f, 0); err != nil {
				t.Fatalf("RemoveKey: %v", err)
			}
			expectOpens(t, path, map[string]bool{"a": false, "b": false, "c": true}, a, b, c)
			if err := h.RemoveKey(f, sc); !errors.Is(err, ErrLastSlot) {
				t.Fatalf("removing the last keyslot: %v", err)
			}
			if got := csVolumeKey(t, path, c); !bytes.Equal(got, want) {
				t.Fatal("cryptsetup gets another volume key after the changes")
			}
			if luks2 {
				// The token kept everything but the reference to the removed keyslot.
				got := cryptsetup(t, nil, "token", "export", "--token-id", "3", path)
				if w := strings.Replace(token, `"keyslots":["0"]`, `"keyslots":[]`, 1); strings.TrimSpace(got) != w {
					t.Fatalf("token after the changes:\n%s\nwant\n%s", got, w)
				}
			}
			out := cryptsetup(t, nil, "luksDump", path)
			if luks2 && !strings.Contains(out, "Epoch:") {
				t.Fatalf("luksDump:\n%s", out)
			}

			// Now cryptsetup changes keys, and they open here.
			d, e := []byte("secret d"), []byte("secret e")
			csAddKey(t, path, c, d, tc.kdf...)
			cryptsetup(t, c, append(append([]string{"luksChangeKey", "--key-file=-"}, tc.kdf...), path, writeSecret(t, e))...)
			h2, f2 := readHeader(t, path)
			for _, s := range [][]byte{d, e} {
				k, _, err := h2.Unlock(ctx, f2, s, AnySlot)
				if err != nil {
					t.Fatalf("%q after cryptsetup's changes: %v", s, err)
				}
				if !bytes.Equal(k.Bytes(), want) {
					t.Fatal("another volume key after cryptsetup's changes")
				}
				k.Destroy()
			}
			if _, _, err := h2.Unlock(ctx, f2, c, AnySlot); !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("the changed-away secret: %v", err)
			}
			// The stale Header refuses to write over cryptsetup's changes.
			if _, err := h.AddKey(ctx, f, vk, []byte("late"), cheapFor(h)); !errors.Is(err, ErrHeaderChanged) {
				t.Fatalf("AddKey with a stale header: %v", err)
			}
		})
	}
}

func expectOpens(t *testing.T, path string, want map[string]bool, a, b, c []byte) {
	t.Helper()
	for name, s := range map[string][]byte{"a": a, "b": b, "c": c} {
		if got := csOpens(t, path, s); got != want[name] {
			t.Fatalf("cryptsetup open --test-passphrase with secret %s: %v, want %v", name, got, want[name])
		}
		h, f := readHeader(t, path)
		vk, _, err := h.Unlock(context.Background(), f, s, AnySlot)
		if (err == nil) != want[name] {
			t.Fatalf("Unlock with secret %s: %v, want opens %v", name, err, want[name])
		}
		if err == nil {
			vk.Destroy()
		}
	}
}
