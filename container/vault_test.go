package container

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/kdf"
)

func TestWrongPassphraseTriesEverySlot(t *testing.T) {
	path := createClosed(t, 8192, "first")
	v := mustUnlock(t, path, "first")
	if s, err := v.AddPassphrase(Passphrase([]byte("last")), tiny, 7); err != nil || s != 7 {
		t.Fatalf("add to slot 7: %d, %v", s, err)
	}
	v.Close()
	if !opens(t, path, "last") || !opens(t, path, "first") {
		t.Fatal("a passphrase does not open")
	}
	if _, err := Unlock(path, Passphrase([]byte("nope")), nil); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := Unlock(path, Passphrase([]byte("last")), &UnlockOptions{Slots: []int{0}}); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("restricted to slot 0: %v", err)
	}
	var se *SlotError
	if _, err := Unlock(path, Passphrase([]byte("last")), &UnlockOptions{Slots: []int{3}}); !errors.As(err, &se) {
		t.Fatalf("inactive slot: %v", err)
	}
	if v := mustUnlock(t, path, "last"); v.Slot() != 7 {
		t.Fatalf("opened slot %d", v.Slot())
	}
}

func TestKeyManagement(t *testing.T) {
	path, vol := create(t, 8192, 4096, "one")
	data := randomBytes(8192)
	writeFull(t, vol, data, 0)
	vol.Close()

	v := mustUnlock(t, path, "one")
	if s, err := v.AddPassphrase(Passphrase([]byte("two")), tiny, -1); err != nil || s != 1 {
		t.Fatalf("add: %d, %v", s, err)
	}
	if err := v.ChangePassphrase(0, Passphrase([]byte("uno")), tiny); err != nil {
		t.Fatal(err)
	}
	if h := v1of(v).h; !h.Slots[0].Active || !h.Slots[1].Active || len(h.ActiveSlots()) != 2 {
		t.Fatalf("slots after change: %v", h.ActiveSlots())
	}
	v.Close()
	if opens(t, path, "one") || !opens(t, path, "uno") || !opens(t, path, "two") {
		t.Fatal("passphrases after change are wrong")
	}
	if v := mustUnlock(t, path, "uno"); v.Slot() != 0 {
		t.Fatalf("changed passphrase moved to slot %d", v.Slot())
	}

	v = mustUnlock(t, path, "two")
	if err := v.RemoveSlot(0); err != nil {
		t.Fatal(err)
	}
	if err := v.RemoveSlot(1); !errors.Is(err, ErrLastSlot) {
		t.Fatalf("removing the last slot: %v", err)
	}
	var se *SlotError
	if err := v.RemoveSlot(0); !errors.As(err, &se) {
		t.Fatalf("removing an inactive slot: %v", err)
	}
	if _, err := v.AddPassphrase(Passphrase([]byte("x")), tiny, 1); !errors.As(err, &se) {
		t.Fatalf("adding into an active slot: %v", err)
	}
	if _, err := v.AddPassphrase(Passphrase([]byte("x")), tiny, 8); !errors.As(err, &se) {
		t.Fatalf("adding into slot 8: %v", err)
	}
	if _, err := v.AddPassphrase(Passphrase([]byte("x")), kdf.Params{}, -1); err == nil {
		t.Fatal("zero KDF parameters accepted")
	}
	v.Close()
	if opens(t, path, "uno") || !opens(t, path, "two") {
		t.Fatal("passphrases after remove are wrong")
	}
	// Removed slots are zero in both copies.
	for _, off := range []int64{0, header.DataAlignment + 8192} {
		raw := readFile(t, path, off, header.Size)
		if !allZero(raw[header.SlotsOffset : header.SlotsOffset+header.SlotSize]) {
			t.Fatalf("removed slot 0 still has bytes in the copy at %d", off)
		}
	}
	vol = mustOpen(t, path, "two", nil)
	if !equal(readFull(t, vol, 8192, 0), data) {
		t.Fatal("data changed by key management")
	}
}

func TestChangeWithAllSlotsFull(t *testing.T) {
	path := createClosed(t, 8192, "p0")
	v := mustUnlock(t, path, "p0")
	for i := 1; i < header.SlotCount; i++ {
		if _, err := v.AddPassphrase(Passphrase([]byte{'p', byte('0' + i)}), tiny, -1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.AddPassphrase(Passphrase([]byte("more")), tiny, -1); !errors.Is(err, ErrNoFreeSlot) {
		t.Fatalf("ninth passphrase: %v", err)
	}
	if err := v.ChangePassphrase(3, Passphrase([]byte("new3")), tiny); err != nil {
		t.Fatal(err)
	}
	v.Close()
	if opens(t, path, "p3") || !opens(t, path, "new3") || !opens(t, path, "p7") {
		t.Fatal("change with all slots full")
	}
}

// TestRepair damages, truncates or ages one header copy and checks that
// unlocking picks the good copy, warns, and repairs the other.
func TestRepair(t *testing.T) {
	const size = 8192
	backupOff := int64(header.DataAlignment + size)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
		warn   string
	}{
		{"primary bit flip", func(t *testing.T, p string) { patchFile(t, p, 700, []byte{0xff}) }, "primary header copy was unusable: checksum mismatch"},
		{"backup bit flip", func(t *testing.T, p string) { patchFile(t, p, backupOff+4000, []byte{1}) }, "backup header copy was unusable: checksum mismatch"},
		{"primary torn", func(t *testing.T, p string) { patchFile(t, p, 2048, make([]byte, 2048)) }, "primary header copy was unusable"},
		{"primary zeroed", func(t *testing.T, p string) { patchFile(t, p, 0, make([]byte, header.Size)) }, "primary header copy was unusable"},
		{"backup older", func(t *testing.T, p string) {
			old := readFile(t, p, backupOff, header.Size)
			v := mustUnlock(t, p, "pw")
			v.AddPassphrase(Passphrase([]byte("new")), tiny, -1)
			v.Close()
			patchFile(t, p, backupOff, old)
		}, "backup header copy was older (sequence 1, current 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := createClosed(t, size, "pw")
			want := readFile(t, path, 0, header.Size)
			tc.damage(t, path)
			if strings.Contains(tc.name, "older") {
				want = readFile(t, path, 0, header.Size)
			}
			// info sees the problem and does not change the file.
			info, err := Inspect(path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Primary.Problem == "" && info.Backup.Problem == "" {
				t.Fatal("Inspect reports both copies healthy")
			}
			// A read-only unlock reports but does not repair.
			var warns []string
			v, err := Unlock(path, Passphrase([]byte("pw")), &UnlockOptions{ReadOnly: true, Warn: func(s string) { warns = append(warns, s) }})
			if err != nil {
				t.Fatal(err)
			}
			v.Close()
			if len(warns) != 1 || !strings.Contains(warns[0], "not repaired") {
				t.Fatalf("read-only warnings: %q", warns)
			}
			warns = nil
			v, err = Unlock(path, Passphrase([]byte("pw")), &UnlockOptions{Warn: func(s string) { warns = append(warns, s) }})
			if err != nil {
				t.Fatal(err)
			}
			v.Close()
			if len(warns) != 1 || !strings.Contains(warns[0], tc.warn) || !strings.Contains(warns[0], "repaired") {
				t.Fatalf("warnings %q, want one containing %q", warns, tc.warn)
			}
			if !equal(readFile(t, path, 0, header.Size), want) || !equal(readFile(t, path, backupOff, header.Size), want) {
				t.Fatal("copies not identical to the good header after repair")
			}
			warns = nil
			v, _ = Unlock(path, Passphrase([]byte("pw")), &UnlockOptions{Warn: func(s string) { warns = append(warns, s) }})
			v.Close()
			if len(warns) != 0 {
				t.Fatalf("warnings after repair: %q", warns)
			}
		})
	}
}

func TestDamagedVaults(t *testing.T) {
	const size = 8192
	backupOff := int64(header.DataAlignment + size)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
		msg    string
	}{
		{"both copies flipped", func(t *testing.T, p string) {
			patchFile(t, p, 100, []byte{0xff})
			patchFile(t, p, backupOff+100, []byte{0xff})
		}, "both header copies are unusable"},
		{"truncated", func(t *testing.T, p string) { os.Truncate(p, header.DataAlignment+4096) }, "truncated"},
		{"shorter than a header", func(t *testing.T, p string) { os.Truncate(p, 1000) }, "shorter than one header"},
		{"not a vault", func(t *testing.T, p string) {
			patchFile(t, p, 0, bytes.Repeat([]byte("x"), header.Size))
			patchFile(t, p, backupOff, bytes.Repeat([]byte("y"), header.Size))
		}, "not a cryptvol vault"},
		{"version 2", func(t *testing.T, p string) {
			for _, off := range []int64{0, backupOff} {
				raw := readFile(t, p, off, header.Size)
				raw[9] = 2
				fixChecksum(raw)
				patchFile(t, p, off, raw)
			}
		}, "unsupported format version 2"},
		{"hostile argon2 memory", func(t *testing.T, p string) {
			for _, off := range []int64{0, backupOff} {
				raw := readFile(t, p, off, header.Size)
				copy(raw[header.SlotsOffset+4:], []byte{0x40, 0, 0, 0}) // 1 TiB in KiB
				fixChecksum(raw)
				patchFile(t, p, off, raw)
			}
		}, "keyslot 0: argon2id memory 1073741824 KiB is above the maximum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := createClosed(t, size, "pw")
			tc.damage(t, path)
			for name, f := range map[string]func() error{
				"inspect": func() error { _, err := Inspect(path); return err },
				"unlock":  func() error { _, err := Unlock(path, Passphrase([]byte("pw")), nil); return err },
				"open":    func() error { _, err := Open(path, Passphrase([]byte("pw")), nil); return err },
			} {
				err := f()
				if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("%s: %v, want ErrDamaged containing %q", name, err, tc.msg)
				}
			}
		})
	}
}

// TestTamperedHeader changes an authenticated field and fixes the checksum, as
// an attacker without the key can: unlocking must refuse it, or use the other
// copy if that one is authentic.
func TestTamperedHeader(t *testing.T) {
	const size = 8192
	backupOff := int64(header.DataAlignment + size)
	tamper := func(t *testing.T, path string, off int64) {
		raw := readFile(t, path, off, header.Size)
		raw[46] = 0x02 // sector_size 4096 (00 00 10 00) -> 512 (00 00 02 00)
		raw[23]++      // sequence + 1 so this copy wins
		fixChecksum(raw)
		patchFile(t, path, off, raw)
	}
	path := createClosed(t, size, "pw")
	tamper(t, path, 0)
	var warns []string
	v, err := Unlock(path, Passphrase([]byte("pw")), &UnlockOptions{Warn: func(s string) { warns = append(warns, s) }})
	if err != nil {
		t.Fatalf("one tampered copy: %v", err)
	}
	v.Close()
	if len(warns) != 2 || !strings.Contains(warns[0], "fails authentication") || !strings.Contains(warns[1], "repaired") {
		t.Fatalf("warnings %q", warns)
	}
	if h, _ := header.Decode(readFile(t, path, 0, header.Size)); h == nil || h.SectorSize != 4096 {
		t.Fatal("tampered primary not repaired")
	}

	tamper(t, path, 0)
	tamper(t, path, backupOff)
	if _, err := Unlock(path, Passphrase([]byte("pw")), nil); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("both tampered: %v", err)
	}
}

func fixChecksum(raw []byte) {
	h := sha256.Sum256(raw[:4064])
	copy(raw[4064:], h[:])
}

func TestHeaderBackupRestore(t *testing.T) {
	path, vol := create(t, 8192, 4096, "old")
	data := randomBytes(8192)
	writeFull(t, vol, data, 0)
	vol.Close()
	backup, err := BackupHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	v := mustUnlock(t, path, "old")
	if err := v.ChangePassphrase(0, Passphrase([]byte("new")), tiny); err != nil {
		t.Fatal(err)
	}
	v.Close()

	if err := RestoreHeader(path, backup, Passphrase([]byte("new")), nil); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("restore with a passphrase the backup does not know: %v", err)
	}
	vol = mustOpen(t, path, "new", nil)
	if err := RestoreHeader(path, backup, Passphrase([]byte("old")), nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("restore while open: %v", err)
	}
	vol.Close()
	if err := RestoreHeader(path, backup, Passphrase([]byte("old")), nil); err != nil {
		t.Fatal(err)
	}
	if !opens(t, path, "old") || opens(t, path, "new") {
		t.Fatal("restored header does not hold the old passphrase only")
	}
	info, _ := Inspect(path)
	if info.Sequence != 4 { // 1 created, 2 and 3 by the change, 4 the restore
		t.Fatalf("sequence after restore %d", info.Sequence)
	}
	vol = mustOpen(t, path, "old", nil)
	if !equal(readFull(t, vol, 8192, 0), data) {
		t.Fatal("data differs after restore")
	}
	vol.Close()

	// Restore over a vault whose both copies are destroyed.
	patchFile(t, path, 0, make([]byte, header.Size))
	patchFile(t, path, header.DataAlignment+8192, make([]byte, header.Size))
	if err := RestoreHeader(path, backup, Passphrase([]byte("old")), nil); err != nil {
		t.Fatalf("restore over a destroyed header: %v", err)
	}
	if !opens(t, path, "old") {
		t.Fatal("does not open after restoring a destroyed header")
	}

	// Another vault's header, a wrong size, garbage.
	other := createClosed(t, 8192, "old")
	if err := RestoreHeader(other, backup, Passphrase([]byte("old")), nil); !errors.Is(err, ErrOtherVault) {
		t.Fatalf("restore onto another vault: %v", err)
	}
	bigger := createClosed(t, 16384, "old")
	if err := RestoreHeader(bigger, backup, Passphrase([]byte("old")), nil); err == nil || !strings.Contains(err.Error(), "describes a vault of") {
		t.Fatalf("restore onto a vault of another size: %v", err)
	}
	if err := RestoreHeader(path, []byte("garbage"), Passphrase([]byte("old")), nil); !errors.Is(err, ErrDamaged) {
		t.Fatalf("garbage backup: %v", err)
	}
}
