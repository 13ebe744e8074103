package luks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestBackupRestoreWithCryptsetup checks that this package's backups are
// byte for byte cryptsetup's, that cryptsetup restores them, and that this
// package restores cryptsetup's, for LUKS1 and LUKS2.
func TestBackupRestoreWithCryptsetup(t *testing.T) {
	needCryptsetup(t)
	for name, format := range map[string][]string{
		"luks1": {"--type", "luks1", "--key-size", "512", "--pbkdf-force-iterations", "1000"},
		"luks2": append([]string{"--type", "luks2"}, cheapKDF["pbkdf2"]...),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			a, b := []byte("old secret"), []byte("new secret")
			path := csFormat(t, dir, 20<<20, a, format...)
			want := csVolumeKey(t, path, a)

			// Both tools back up the same bytes.
			csBackup := filepath.Join(dir, "cs.backup")
			cryptsetup(t, nil, "luksHeaderBackup", "--header-backup-file", csBackup, path)
			h, f := rwDevice(t, path)
			var ours bytes.Buffer
			if err := h.WriteBackup(&ours, f); err != nil {
				t.Fatal(err)
			}
			theirs, _ := os.ReadFile(csBackup)
			if !bytes.Equal(ours.Bytes(), theirs) {
				t.Fatalf("backup differs from cryptsetup's: %d and %d bytes", ours.Len(), len(theirs))
			}
			if uint64(len(theirs)) != h.BackupSize() {
				t.Fatalf("BackupSize %d, cryptsetup wrote %d", h.BackupSize(), len(theirs))
			}
			// A backup is a header: it unlocks to the volume key.
			bh, err := Read(bytes.NewReader(theirs), int64(len(theirs)))
			if err != nil {
				t.Fatal(err)
			}
			vk, _, err := bh.Unlock(ctx, bytes.NewReader(theirs), a, AnySlot)
			if err != nil || !bytes.Equal(vk.Bytes(), want) {
				t.Fatalf("unlocking the backup: %v", err)
			}

			// Change the key here, restore cryptsetup's backup here: the old key is back.
			if _, err := h.ChangeKey(ctx, f, vk, 0, b, cheapFor(h)); err != nil {
				t.Fatal(err)
			}
			bf, _ := os.Open(csBackup)
			defer bf.Close()
			if _, err := Restore(f, 20<<20, bf, int64(len(theirs))); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			expectOpens(t, path, map[string]bool{"a": true, "b": false, "c": false}, a, b, []byte("c"))

			// Change the key with cryptsetup, restore our backup with cryptsetup.
			cryptsetup(t, a, "luksChangeKey", "--key-file=-", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", path, writeSecret(t, b))
			ourBackup := filepath.Join(dir, "ours.backup")
			writeFile(t, ourBackup, ours.Bytes())
			cryptsetup(t, nil, "luksHeaderRestore", "--header-backup-file", ourBackup, path)
			expectOpens(t, path, map[string]bool{"a": true, "b": false, "c": false}, a, b, []byte("c"))
			vk.Destroy()
		})
	}
}

// TestRestoreRefusesOtherLayouts checks that Restore refuses a backup whose
// layout differs from the readable header on the device, and a backup that
// is not a header.
func TestRestoreRefusesOtherLayouts(t *testing.T) {
	needCryptsetup(t)
	dir := t.TempDir()
	p1 := csFormat(t, filepath.Join(dir), 20<<20, []byte("x"), append([]string{"--type", "luks2"}, cheapKDF["pbkdf2"]...)...)
	os.Rename(p1, filepath.Join(dir, "one.img"))
	p2 := csFormat(t, dir, 20<<20, []byte("x"), append([]string{"--type", "luks2", "--offset", "24576"}, cheapKDF["pbkdf2"]...)...)
	h1, f1 := readHeader(t, filepath.Join(dir, "one.img"))
	var backup bytes.Buffer
	if err := h1.WriteBackup(&backup, f1); err != nil {
		t.Fatal(err)
	}
	_, f2 := rwDevice(t, p2)
	before, _ := os.ReadFile(p2)
	if _, err := Restore(f2, 20<<20, bytes.NewReader(backup.Bytes()), int64(backup.Len())); err == nil {
		t.Fatal("a backup with another data offset was restored")
	}
	junk := make([]byte, 1<<20)
	if _, err := Restore(f2, 20<<20, bytes.NewReader(junk), int64(len(junk))); !errors.Is(err, ErrNotLUKS) {
		t.Fatalf("restoring zeros: %v", err)
	}
	if after, _ := os.ReadFile(p2); !bytes.Equal(before, after) {
		t.Fatal("a refused restore wrote to the device")
	}
}

// TestRestoreAfterCrash interrupts a restore at every step and checks that
// running it again completes it and that the data area is never written.
func TestRestoreAfterCrash(t *testing.T) {
	needCryptsetup(t)
	for _, v := range []string{"luks1", "luks2"} {
		t.Run(v, func(t *testing.T) {
			format := []string{"--type", v, "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}
			a, b := []byte("a"), []byte("b")
			template := csFormat(t, t.TempDir(), 20<<20, a, format...)
			h, f := readHeader(t, template)
			var backup bytes.Buffer
			if err := h.WriteBackup(&backup, f); err != nil {
				t.Fatal(err)
			}
			f.Close()
			cryptsetup(t, a, "luksChangeKey", "--key-file=-", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", template, writeSecret(t, b))
			for _, tear := range []bool{false, true} {
				for n := 1; ; n++ {
					path := filepath.Join(t.TempDir(), "v.img")
					copyFile(t, template, path)
					dataBefore := readRange(t, path, int64(h.dataOffset()), 1<<20)
					_, f := rwDevice(t, path)
					cd := &crashDevice{Device: f, n: n, tear: tear}
					_, err := Restore(cd, 20<<20, bytes.NewReader(backup.Bytes()), int64(backup.Len()))
					if err != nil && !errors.Is(err, errCrash) {
						t.Fatalf("tear=%v step %d: %v", tear, n, err)
					}
					if _, err := Restore(f, 20<<20, bytes.NewReader(backup.Bytes()), int64(backup.Len())); err != nil {
						t.Fatalf("tear=%v step %d: restoring again: %v", tear, n, err)
					}
					if got := openSet(t, path, map[string][]byte{"a": a, "b": b}); fmt.Sprint(got) != "[a]" {
						t.Fatalf("tear=%v step %d: opens with %v after restoring again", tear, n, got)
					}
					if !bytes.Equal(readRange(t, path, int64(h.dataOffset()), 1<<20), dataBefore) {
						t.Fatalf("tear=%v step %d: the data area changed", tear, n)
					}
					if !cd.crashed {
						break
					}
				}
			}
		})
	}
}

func readRange(t *testing.T, path string, off, n int64) []byte {
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
