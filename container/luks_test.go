package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/internal/e2e"
)

// cs runs the host's cryptsetup in batch mode with stdin; it fails the test
// unless it exits 0.
func cs(t testing.TB, stdin []byte, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "cryptsetup", append([]string{"--batch-mode"}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cryptsetup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// csOpens reports whether cryptsetup open --test-passphrase accepts secret.
func csOpens(t testing.TB, path string, secret []byte) bool {
	t.Helper()
	cmd := exec.Command("cryptsetup", "--batch-mode", "open", "--test-passphrase", "--key-file=-", path)
	cmd.Stdin = bytes.NewReader(secret)
	return cmd.Run() == nil
}

var csCheap = []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}

// plainFile writes n random bytes to a new file in dir and returns its path
// and contents.
func plainFile(t testing.TB, dir, name string, n int) (string, []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	b := randomBytes(n)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// TestLUKSVolumes opens, through the container layer, LUKS volumes whose data
// cryptsetup encrypted (offline reencryption in userspace): LUKS2 with 512-
// and 4096-byte sectors, attached and with a detached header, by passphrase
// and by keyfile with an offset and a size. The plaintext reads back, writes
// read back after reopening, and (detached) cryptsetup decrypts what was
// written here.
func TestLUKSVolumes(t *testing.T) {
	e2e.Tools(t, "cryptsetup")
	pass := []byte("container luks")
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			dir := t.TempDir()
			format := append([]string{"--type", "luks2", "--sector-size", fmt.Sprint(ss)}, csCheap...)

			attached, plain := plainFile(t, dir, "attached.img", 4<<20)
			os.Truncate(attached, 20<<20)
			cs(t, pass, append(append([]string{"reencrypt", "--encrypt", "--reduce-device-size", "16M", "--key-file=-"}, format...), attached)...)
			if info, err := Inspect(attached); err != nil || info.Type != TypeLUKS2 || info.Geometry.SectorSize != ss {
				t.Fatalf("Inspect: %+v, %v", info, err)
			}
			vol := mustOpen(t, attached, string(pass), nil)
			if vol.Type() != TypeLUKS2 || vol.Geometry().IVStep != uint64(ss/512) {
				t.Fatalf("type %s, geometry %+v", vol.Type(), vol.Geometry())
			}
			if got := readFull(t, vol, len(plain), 0); !bytes.Equal(got, plain) {
				t.Fatal("the plaintext cryptsetup encrypted does not read back")
			}
			mine := randomBytes(3*ss + 100)
			writeFull(t, vol, mine, int64(ss)+7) // unaligned: read-modify-write
			vol.Close()
			vol = mustOpen(t, attached, string(pass), &OpenOptions{ReadOnly: true})
			if got := readFull(t, vol, len(mine), int64(ss)+7); !bytes.Equal(got, mine) {
				t.Fatal("data written here does not read back")
			}
			vol.Close()

			// Detached header, keyfile with offset and size.
			data, plain2 := plainFile(t, dir, "data.img", 2<<20)
			hdr := filepath.Join(dir, "hdr.img")
			keyfile, kb := plainFile(t, dir, "keyfile", 4096)
			cs(t, kb[100:100+64], append(append([]string{"reencrypt", "--encrypt", "--header", hdr, "--key-file=-"}, format...), data)...)
			s := Secret{Keyfiles: []string{keyfile}, KeyfileOffset: 100, KeyfileSize: 64}
			vol, err := Open(data, s, &OpenOptions{Header: hdr})
			if err != nil {
				t.Fatal(err)
			}
			if got := readFull(t, vol, len(plain2), 0); !bytes.Equal(got, plain2) {
				t.Fatal("the plaintext behind a detached header does not read back")
			}
			writeFull(t, vol, mine, 5*int64(ss))
			vol.Close()
			if _, err := Open(data, Passphrase(kb), &OpenOptions{Header: hdr}); !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("the keyfile's whole contents (not the selected bytes): %v", err)
			}
			cs(t, kb[100:164], "reencrypt", "--decrypt", "--force-offline-reencrypt", "--header", hdr, "--key-file=-", data)
			got, _ := os.ReadFile(data)
			want := append(bytes.Clone(plain2[:5*ss]), mine...)
			if !bytes.Equal(got[:len(want)], want) {
				t.Fatal("cryptsetup decrypts what was written here to something else")
			}
		})
	}
}

// TestLUKSKeyManagement adds, changes and removes keys of cryptsetup volumes
// through Vault, and checks them with cryptsetup.
func TestLUKSKeyManagement(t *testing.T) {
	e2e.Tools(t, "cryptsetup")
	for _, v := range []string{"luks1", "luks2"} {
		t.Run(v, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "v.img")
			os.WriteFile(path, nil, 0o600)
			os.Truncate(path, 20<<20)
			cs(t, []byte("a"), append([]string{"luksFormat", "--type", v, "--key-file=-"}, append(csCheap, path)...)...)
			vault := mustUnlock(t, path, "a")
			slot, err := vault.AddPassphrase(Passphrase([]byte("b")), tiny, -1)
			if err != nil {
				t.Fatal(err)
			}
			if !csOpens(t, path, []byte("b")) {
				t.Fatal("cryptsetup does not open the added key")
			}
			if err := vault.ChangePassphrase(slot, Passphrase([]byte("c")), tiny); err != nil {
				t.Fatal(err)
			}
			if csOpens(t, path, []byte("b")) || !csOpens(t, path, []byte("c")) {
				t.Fatal("cryptsetup sees the wrong keys after the change")
			}
			if err := vault.RemoveSlot(0); err != nil {
				t.Fatal(err)
			}
			if csOpens(t, path, []byte("a")) {
				t.Fatal("cryptsetup still opens the removed key")
			}
			vault.Close()
			if !opens(t, path, "c") || opens(t, path, "a") {
				t.Fatal("the container sees the wrong keys")
			}
			// Only the one keyslot left: removing it is refused.
			last := mustUnlock(t, path, "c")
			if err := last.RemoveSlot(last.Slot()); !errors.Is(err, ErrLastSlot) {
				t.Fatalf("removing the last keyslot: %v", err)
			}
		})
	}
}

// TestLUKSCreate makes a LUKS2 volume with Create and checks it with
// cryptsetup; its data round-trips, and a second process opens it with the
// key handed over (WriteKey, OpenWithKey).
func TestLUKSCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.luks")
	vol, err := Create(context.Background(), path, Passphrase([]byte("created")), &CreateOptions{
		Type: TypeLUKS2, Size: 1 << 20, KDF: tiny})
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(1 << 20)
	writeFull(t, vol, data, 0)
	vol.Close()
	if st, _ := os.Stat(path); st.Size() != 17<<20 {
		t.Fatalf("file size %d, want 16 MiB of header and 1 MiB of data", st.Size())
	}
	info, err := Inspect(path)
	if err != nil || info.Type != TypeLUKS2 || info.Geometry.Size != 1<<20 || info.Geometry.SectorSize != 4096 || info.LUKS == nil {
		t.Fatalf("Inspect: %+v, %v", info, err)
	}
	v := mustUnlock(t, path, "created")
	var key bytes.Buffer
	if err := v.WriteKey(&key); err != nil {
		t.Fatal(err)
	}
	v.Close()
	vol, err = OpenWithKey(path, &key, &OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, vol, len(data), 0); !bytes.Equal(got, data) {
		t.Fatal("the data does not read back")
	}
	vol.Close()
	if _, err := OpenWithKey(path, bytes.NewReader(randomBytes(64)), nil); !errors.Is(err, ErrDamaged) {
		t.Fatalf("another key: %v", err)
	}
	if _, err := exec.LookPath("cryptsetup"); err == nil {
		if !csOpens(t, path, []byte("created")) {
			t.Fatal("cryptsetup does not open the created volume")
		}
		if out := cs(t, nil, "luksDump", path); !strings.Contains(out, "offset: 16777216 [bytes]") || !strings.Contains(out, "PBKDF:      argon2id") {
			t.Fatalf("luksDump:\n%s", out)
		}
	}
}

// TestLUKSBackupRestoreGrow backs up a LUKS2 header, changes the key,
// restores the backup (the old key works again), and grows the volume.
func TestLUKSBackupRestoreGrow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.luks")
	vol, err := Create(context.Background(), path, Passphrase([]byte("a")), &CreateOptions{Type: TypeLUKS2, Size: 1 << 20, KDF: tiny})
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(1 << 20)
	writeFull(t, vol, data, 0)
	vol.Close()
	backup, err := BackupHeader(path)
	if err != nil || len(backup) != 16<<20 || !IsLUKSBackup(backup) {
		t.Fatalf("BackupHeader: %d bytes, %v", len(backup), err)
	}
	v := mustUnlock(t, path, "a")
	if err := v.ChangePassphrase(0, Passphrase([]byte("b")), tiny); err != nil {
		t.Fatal(err)
	}
	v.Close()
	if err := RestoreHeader(path, backup, Passphrase([]byte("b")), nil); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("restoring with a key the backup does not have: %v", err)
	}
	if err := RestoreHeader(path, backup, Passphrase([]byte("a")), nil); err != nil {
		t.Fatal(err)
	}
	if !opens(t, path, "a") || opens(t, path, "b") {
		t.Fatal("after the restore the old key should open, the new one not")
	}
	v = mustUnlock(t, path, "a")
	if err := v.Grow(context.Background(), 3<<20, FillRandom, nil); err != nil {
		t.Fatal(err)
	}
	v.Close()
	vol = mustOpen(t, path, "a", nil)
	if vol.Size() != 3<<20 {
		t.Fatalf("size %d after growing", vol.Size())
	}
	if got := readFull(t, vol, len(data), 0); !bytes.Equal(got, data) {
		t.Fatal("growing changed the data")
	}
}

// TestLUKSSecrets checks cryptsetup's keyfile rules.
func TestLUKSSecrets(t *testing.T) {
	dir := t.TempDir()
	kf, kb := plainFile(t, dir, "k", 100)
	for _, tc := range []struct {
		s    Secret
		want []byte
		ok   bool
	}{
		{Secret{Passphrase: []byte("p")}, []byte("p"), true},
		{Secret{Keyfiles: []string{kf}}, kb, true},
		{Secret{Keyfiles: []string{kf}, KeyfileOffset: 10}, kb[10:], true},
		{Secret{Keyfiles: []string{kf}, KeyfileOffset: 10, KeyfileSize: 5}, kb[10:15], true},
		{Secret{Keyfiles: []string{kf}, KeyfileOffset: 99, KeyfileSize: 5}, nil, false},
		{Secret{Passphrase: []byte("p"), Keyfiles: []string{kf}}, nil, false},
		{Secret{Keyfiles: []string{kf, kf}}, nil, false},
		{Secret{Passphrase: []byte("p"), KeyfileSize: 3}, nil, false},
		{Secret{Keyfiles: []string{kf}, KeyfileSize: 9 << 20}, nil, false},
		{Secret{Keyfiles: []string{filepath.Join(dir, "missing")}}, nil, false},
	} {
		got, err := luksSecret(tc.s)
		if (err == nil) != tc.ok || !bytes.Equal(got, tc.want) {
			t.Errorf("%+v: %q, %v", tc.s, got, err)
		}
	}
	if _, _, err := v1Secret(Secret{Keyfiles: []string{kf}, KeyfileOffset: 1}); err == nil {
		t.Error("a keyfile offset accepted for a cryptvol vault")
	}
}
