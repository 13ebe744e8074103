package container

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryptvol/cryptvol/tcrypt"
)

// cheapVC is the cheapest VeraCrypt key derivation: SHA-512 with PIM 1
// (16000 iterations). Tests name the PRF so that no other is tried.
var cheapVC = TCryptOptions{PRF: tcrypt.PRFSHA512, PIM: 1}

func createVC(t testing.TB, size int64, algorithm, pass string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "volume.hc")
	vol, err := CreateVeraCrypt(context.Background(), path, Passphrase([]byte(pass)), &VeraCryptOptions{
		Size: size, Algorithm: algorithm, PRF: tcrypt.PRFSHA512, PIM: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := vol.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func openVC(t testing.TB, path string, s Secret, o TCryptOptions, readOnly bool) *Volume {
	t.Helper()
	vol, err := Open(path, s, &OpenOptions{Type: TypeVeraCrypt, TCrypt: o, ReadOnly: readOnly})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vol.Close() })
	return vol
}

// vcOpens reports whether s opens the VeraCrypt volume at path with o.
func vcOpens(t testing.TB, path string, s Secret, o TCryptOptions) bool {
	t.Helper()
	v, err := Unlock(path, s, &UnlockOptions{Type: TypeVeraCrypt, TCrypt: o, ReadOnly: true})
	if errors.Is(err, ErrWrongPassphrase) {
		return false
	}
	if err != nil {
		t.Fatalf("unlock: %v", err)
	}
	v.Close()
	return true
}

func TestVeraCryptCreateOpen(t *testing.T) {
	for _, alg := range []string{"AES", "Serpent-Twofish-AES", "Kuznyechik"} {
		path := createVC(t, 64<<10, alg, "pw")
		st, _ := os.Stat(path)
		if st.Size() != tcrypt.DataOffset+64<<10+tcrypt.BackupAreaSize {
			t.Fatalf("file of %d bytes", st.Size())
		}
		data := randomBytes(64 << 10)
		vol := openVC(t, path, Passphrase([]byte("pw")), cheapVC, false)
		if vol.Type() != TypeVeraCrypt || vol.Size() != 64<<10 || vol.SectorSize() != 512 || vol.UUID() != "" {
			t.Fatalf("%s: type %s size %d sector %d", alg, vol.Type(), vol.Size(), vol.SectorSize())
		}
		writeFull(t, vol, data, 0)
		vol.Close()
		vol = openVC(t, path, Passphrase([]byte("pw")), cheapVC, true)
		if !bytes.Equal(readFull(t, vol, len(data), 0), data) {
			t.Fatalf("%s: data differs after reopening", alg)
		}
		// The first unit is unit 256 of the file: the ciphertext of the
		// plaintext's first 512 bytes depends on it.
		g := vol.Geometry()
		if g.Offset != tcrypt.DataOffset || g.IVOffset != 256 {
			t.Errorf("%s: geometry %+v", alg, g)
		}
		vol.Close()
		// The backup header opens too, and the primary one is in its place.
		if !vcOpens(t, path, Passphrase([]byte("pw")), TCryptOptions{PRF: tcrypt.PRFSHA512, PIM: 1, BackupHeader: true}) {
			t.Errorf("%s: the backup header does not open", alg)
		}
		if vcOpens(t, path, Passphrase([]byte("other")), cheapVC) {
			t.Errorf("%s: a wrong passphrase opens", alg)
		}
	}
}

// TestVeraCryptKeyHandoff: a key handed over with Vault.WriteKey opens the
// volume through OpenWithKey given the type and geometry, as the background
// server does; without the geometry it is refused.
func TestVeraCryptKeyHandoff(t *testing.T) {
	path := createVC(t, 16<<10, "AES-Twofish", "pw")
	v, err := Unlock(path, Passphrase([]byte("pw")), &UnlockOptions{Type: TypeVeraCrypt, TCrypt: cheapVC})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var key bytes.Buffer
	if err := v.WriteKey(&key); err != nil {
		t.Fatal(err)
	}
	if key.Len() != 128 {
		t.Fatalf("%d-byte key for a two-cipher cascade", key.Len())
	}
	g := v.Geometry()
	vol, err := OpenWithKey(path, bytes.NewReader(key.Bytes()), &OpenOptions{Type: TypeVeraCrypt, Geometry: &g})
	if err != nil {
		t.Fatal(err)
	}
	writeFull(t, vol, []byte(strings.Repeat("x", 512)), 512)
	vol.Close()
	if _, err := OpenWithKey(path, bytes.NewReader(key.Bytes()), &OpenOptions{Type: TypeVeraCrypt}); err == nil {
		t.Error("opened without a geometry")
	}
	bad := g
	bad.Size = 1 << 40
	if _, err := OpenWithKey(path, bytes.NewReader(key.Bytes()), &OpenOptions{Type: TypeVeraCrypt, Geometry: &bad}); !errors.Is(err, ErrDamaged) {
		t.Errorf("a geometry past the end of the file: %v", err)
	}
}

// addHidden writes a hidden volume of size bytes at the end of the outer
// volume's data area, as VeraCrypt makes one: its header (and backup) in the
// hidden header areas, its data encrypted with keys of its own.
func addHidden(t testing.TB, path, pass string, size int64) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := tcrypt.NewKeys("AES")
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Destroy()
	h := tcrypt.NewHeader(uint64(size))
	h.HiddenVolumeSize, h.EncryptedAreaStart = uint64(size), uint64(st.Size()-tcrypt.BackupAreaSize-size)
	ks, _ := tcrypt.KDFs(tcrypt.VeraCrypt, tcrypt.PRFSHA512, 1, false)
	for _, off := range []int64{tcrypt.HeaderAreaSize, st.Size() - tcrypt.HeaderAreaSize} {
		salt, _ := tcrypt.NewSalt()
		raw, err := tcrypt.Seal(context.Background(), h, keys.Bytes(), []byte(pass), salt, ks[0], "AES")
		if err != nil {
			t.Fatal(err)
		}
		patchFile(t, path, off, raw)
	}
}

func TestVeraCryptHidden(t *testing.T) {
	path := createVC(t, 256<<10, "AES", "outer")
	addHidden(t, path, "hidden", 64<<10)
	hidden := openVC(t, path, Passphrase([]byte("hidden")), cheapVC, false)
	if hidden.Size() != 64<<10 || hidden.Geometry().Offset != tcrypt.DataOffset+192<<10 {
		t.Fatalf("hidden volume: %+v", hidden.Geometry())
	}
	secret := randomBytes(64 << 10)
	writeFull(t, hidden, secret, 0)
	hidden.Close()

	// Protected, the outer volume takes writes below the hidden volume and
	// refuses the first that reaches it, and every one after.
	p := cheapVC
	p.ProtectHidden = &Secret{Passphrase: []byte("hidden")}
	p.ProtectPRF, p.ProtectPIM = tcrypt.PRFSHA512, 1
	outer := openVC(t, path, Passphrase([]byte("outer")), p, false)
	g := outer.Geometry()
	if g.Protected == nil || *g.Protected != (Range{Offset: 192 << 10, Size: 64 << 10}) {
		t.Fatalf("protected range %+v", g.Protected)
	}
	writeFull(t, outer, randomBytes(4096), 0)
	writeFull(t, outer, randomBytes(1000), 192<<10-1000)
	_, err := outer.WriteAt(make([]byte, 1024), 192<<10-512)
	var pe *ProtectedError
	if !errors.Is(err, ErrProtectedArea) || !errors.As(err, &pe) || pe.After {
		t.Fatalf("write across the start of the hidden volume: %v", err)
	}
	if _, err := outer.WriteAt(make([]byte, 512), 0); !errors.As(err, &pe) || !pe.After {
		t.Fatalf("a write after the protection triggered: %v", err)
	}
	if _, err := outer.WriteAtInPlace(make([]byte, 512), 4096); !errors.Is(err, ErrProtectedArea) {
		t.Fatalf("an in-place write after: %v", err)
	}
	outer.Close()
	hidden = openVC(t, path, Passphrase([]byte("hidden")), cheapVC, true)
	if !bytes.Equal(readFull(t, hidden, len(secret), 0), secret) {
		t.Fatal("the hidden volume changed")
	}
	hidden.Close()

	// A wrong protection passphrase is a wrong passphrase; so is the
	// hidden volume's own passphrase given as the outer one with protection.
	p.ProtectHidden = &Secret{Passphrase: []byte("nope")}
	if _, err := Open(path, Passphrase([]byte("outer")), &OpenOptions{Type: TypeVeraCrypt, TCrypt: p}); !errors.Is(err, ErrWrongPassphrase) || !strings.Contains(err.Error(), "hidden volume") {
		t.Errorf("wrong protection passphrase: %v", err)
	}
	p.ProtectHidden = &Secret{Passphrase: []byte("hidden")}
	if _, err := Open(path, Passphrase([]byte("hidden")), &OpenOptions{Type: TypeVeraCrypt, TCrypt: p}); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("the hidden passphrase as the outer one: %v", err)
	}
}

// TestVeraCryptKeyfiles: keyfiles, and a directory of keyfiles (hidden files
// and subdirectories skipped), open what they made.
func TestVeraCryptKeyfiles(t *testing.T) {
	dir := t.TempDir()
	kdir := filepath.Join(dir, "keys")
	os.Mkdir(kdir, 0o700)
	os.Mkdir(filepath.Join(kdir, "sub"), 0o700)
	os.WriteFile(filepath.Join(kdir, "a"), []byte("keyfile a"), 0o600)
	os.WriteFile(filepath.Join(kdir, "b"), []byte("keyfile b"), 0o600)
	os.WriteFile(filepath.Join(kdir, ".hidden"), []byte("not a keyfile"), 0o600)
	path := filepath.Join(dir, "v.hc")
	s := Secret{Passphrase: []byte("pw"), Keyfiles: []string{filepath.Join(kdir, "b"), filepath.Join(kdir, "a")}}
	vol, err := CreateVeraCrypt(context.Background(), path, s, &VeraCryptOptions{Size: 8192, PRF: tcrypt.PRFSHA512, PIM: 1})
	if err != nil {
		t.Fatal(err)
	}
	vol.Close()
	if !vcOpens(t, path, Secret{Passphrase: []byte("pw"), Keyfiles: []string{kdir}}, cheapVC) {
		t.Error("the directory does not stand for its keyfiles")
	}
	if vcOpens(t, path, Secret{Passphrase: []byte("pw"), Keyfiles: []string{filepath.Join(kdir, "a")}}, cheapVC) {
		t.Error("one keyfile of two opens")
	}
	if vcOpens(t, path, Passphrase([]byte("pw")), cheapVC) {
		t.Error("no keyfile opens")
	}
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o700)
	if err := (Secret{Keyfiles: []string{empty}}).CheckKeyfilesAs(TypeVeraCrypt); err == nil {
		t.Error("an empty directory of keyfiles accepted")
	}
	if err := (Secret{Keyfiles: []string{kdir}}).CheckKeyfilesAs(TypeCryptvol); err == nil {
		t.Error("a directory accepted as a cryptvol keyfile")
	}
}

// TestVeraCryptPasswd changes the passphrase, PRF and PIM, and checks that
// the master keys and data stay, both header copies change, and the old
// passphrase opens neither.
func TestVeraCryptPasswd(t *testing.T) {
	path := createVC(t, 8192, "Serpent", "old")
	data := randomBytes(8192)
	vol := openVC(t, path, Passphrase([]byte("old")), cheapVC, false)
	writeFull(t, vol, data, 0)
	vol.Close()
	v, err := Unlock(path, Passphrase([]byte("old")), &UnlockOptions{Type: TypeVeraCrypt, TCrypt: cheapVC})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ChangeHeaderKey(context.Background(), Passphrase([]byte("new")), HeaderKDF{PRF: tcrypt.PRFSHA256, PIM: 2}); err != nil {
		t.Fatal(err)
	}
	v.Close()
	newOpts := TCryptOptions{PRF: tcrypt.PRFSHA256, PIM: 2}
	for _, backup := range []bool{false, true} {
		o := newOpts
		o.BackupHeader = backup
		if !vcOpens(t, path, Passphrase([]byte("new")), o) {
			t.Errorf("backup %v: the new passphrase does not open", backup)
		}
		o = cheapVC
		o.BackupHeader = backup
		if vcOpens(t, path, Passphrase([]byte("old")), o) {
			t.Errorf("backup %v: the old passphrase still opens", backup)
		}
	}
	vol = openVC(t, path, Passphrase([]byte("new")), newOpts, true)
	if !bytes.Equal(readFull(t, vol, len(data), 0), data) {
		t.Error("data changed")
	}
}

// TestVeraCryptPasswdCrash interrupts the header rewrite at every write and
// sync, torn or not: the volume always opens with the old or the new
// passphrase, through the primary header or the backup, and its data stays.
func TestVeraCryptPasswdCrash(t *testing.T) {
	template := createVC(t, 8192, "AES", "old")
	data := randomBytes(8192)
	vol := openVC(t, template, Passphrase([]byte("old")), cheapVC, false)
	writeFull(t, vol, data, 0)
	vol.Close()
	tmpl, _ := os.ReadFile(template)
	for n := 1; ; n++ {
		for _, tear := range []bool{false, true} {
			path := filepath.Join(t.TempDir(), "v.hc")
			os.WriteFile(path, tmpl, 0o600)
			v, err := Unlock(path, Passphrase([]byte("old")), &UnlockOptions{Type: TypeVeraCrypt, TCrypt: cheapVC})
			if err != nil {
				t.Fatal(err)
			}
			cf := &crashingFile{f: v.k.(*tcryptVault).ops, n: n, tear: tear}
			v.k.(*tcryptVault).ops = cf
			err = v.ChangeHeaderKey(context.Background(), Passphrase([]byte("new")), HeaderKDF{PIM: 1})
			v.Close()
			if !cf.crashed {
				if err != nil {
					t.Fatal(err)
				}
				if n < 4 {
					t.Fatalf("only %d steps", n-1)
				}
				return // every step was interrupted once
			}
			var works []string
			for _, pass := range []string{"old", "new"} {
				for _, backup := range []bool{false, true} {
					o := cheapVC
					o.BackupHeader = backup
					if vcOpens(t, path, Passphrase([]byte(pass)), o) {
						works = append(works, pass+map[bool]string{false: "", true: "(backup)"}[backup])
					}
				}
			}
			if len(works) == 0 {
				t.Fatalf("crash at step %d (torn %v): neither passphrase opens", n, tear)
			}
			t.Logf("crash at step %d (torn %v): opens with %v", n, tear, works)
			pass, o := "old", cheapVC
			if !strings.HasPrefix(works[0], "old") {
				pass = "new"
			}
			o.BackupHeader = strings.HasSuffix(works[0], "(backup)")
			vol := openVC(t, path, Passphrase([]byte(pass)), o, true)
			if !bytes.Equal(readFull(t, vol, len(data), 0), data) {
				t.Fatalf("crash at step %d: data changed", n)
			}
			vol.Close()
		}
	}
}

func TestVeraCryptUnsupported(t *testing.T) {
	path := createVC(t, 8192, "AES", "pw")
	v, err := Unlock(path, Passphrase([]byte("pw")), &UnlockOptions{Type: TypeVeraCrypt, TCrypt: cheapVC})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.AddPassphrase(Passphrase([]byte("x")), tiny, -1); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("add: %v", err)
	}
	if err := v.RemoveSlot(0); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("remove: %v", err)
	}
	if err := v.Grow(context.Background(), 1<<20, FillSparse, nil); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("grow: %v", err)
	}
	if _, err := Unlock(path, Passphrase([]byte("pw")), &UnlockOptions{Type: TypeVeraCrypt, TCrypt: TCryptOptions{System: true}}); err == nil {
		t.Error("system encryption unlocked read-write")
	}
}

// TestTrueCryptConvert: a TrueCrypt volume re-keyed as a VeraCrypt volume
// becomes one (magic VERA, VeraCrypt's iteration counts), with its data;
// re-keyed as TrueCrypt it stays one.
func TestTrueCryptConvert(t *testing.T) {
	path := createVC(t, 8192, "Twofish", "pw")
	data := randomBytes(8192)
	vol := openVC(t, path, Passphrase([]byte("pw")), cheapVC, false)
	writeFull(t, vol, data, 0)
	vol.Close()
	// Make its headers TrueCrypt 7's, with the same keys.
	v, err := Unlock(path, Passphrase([]byte("pw")), &UnlockOptions{Type: TypeVeraCrypt, TCrypt: cheapVC, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	tv := v.k.(*tcryptVault)
	h := *tv.u.Header
	h.Magic, h.MinProgramVersion = tcrypt.MagicTrueCrypt, 0x0700
	tc := tcrypt.KDF{PRF: tcrypt.PRFWhirlpool, Iterations: 1000, TrueCrypt: true}
	for _, off := range []int64{0, tv.size - tcrypt.BackupAreaSize} {
		salt, _ := tcrypt.NewSalt()
		raw, err := tcrypt.Seal(context.Background(), &h, tv.u.Keys(), []byte("tc"), salt, tc, "Twofish")
		if err != nil {
			t.Fatal(err)
		}
		patchFile(t, path, off, raw)
	}
	v.Close()
	tcOpts := TCryptOptions{PRF: tcrypt.PRFWhirlpool}
	for _, typ := range []Type{TypeTrueCrypt, TypeVeraCrypt} {
		v, err := Unlock(path, Passphrase([]byte("tc")), &UnlockOptions{Type: typ, TCrypt: tcOpts, ReadOnly: true})
		if err != nil {
			t.Fatalf("as %s: %v", typ, err)
		}
		if ti, _ := v.TCryptInfo(); ti.Magic != "TRUE" || ti.Iterations != 1000 || ti.MinProgramVersion != "7.0" {
			t.Errorf("as %s: %+v", typ, ti)
		}
		v.Close()
	}
	// Re-keyed as TrueCrypt: still TrueCrypt's.
	v, err = Unlock(path, Passphrase([]byte("tc")), &UnlockOptions{Type: TypeTrueCrypt, TCrypt: tcOpts})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ChangeHeaderKey(context.Background(), Passphrase([]byte("tc2")), HeaderKDF{}); err != nil {
		t.Fatal(err)
	}
	if err := v.ChangeHeaderKey(context.Background(), Passphrase([]byte("tc2")), HeaderKDF{PIM: 3}); err == nil {
		t.Error("a PIM for a TrueCrypt volume accepted")
	}
	v.Close()
	// Re-keyed as VeraCrypt: converted.
	v, err = Unlock(path, Passphrase([]byte("tc2")), &UnlockOptions{Type: TypeVeraCrypt, TCrypt: tcOpts})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ChangeHeaderKey(context.Background(), Passphrase([]byte("vc")), HeaderKDF{PRF: tcrypt.PRFSHA512, PIM: 1}); err != nil {
		t.Fatal(err)
	}
	v.Close()
	for _, backup := range []bool{false, true} {
		o := cheapVC
		o.BackupHeader = backup
		v, err := Unlock(path, Passphrase([]byte("vc")), &UnlockOptions{Type: TypeVeraCrypt, TCrypt: o, ReadOnly: true})
		if err != nil {
			t.Fatalf("converted (backup %v): %v", backup, err)
		}
		if ti, _ := v.TCryptInfo(); ti.Magic != "VERA" || ti.Version != 5 || ti.MinProgramVersion != "1.0b" || ti.Iterations != 16000 {
			t.Errorf("converted: %+v", ti)
		}
		v.Close()
	}
	if _, err := Unlock(path, Passphrase([]byte("vc")), &UnlockOptions{Type: TypeTrueCrypt, ReadOnly: true}); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("the converted volume as TrueCrypt: %v", err)
	}
	vol = openVC(t, path, Passphrase([]byte("vc")), cheapVC, true)
	if !bytes.Equal(readFull(t, vol, len(data), 0), data) {
		t.Error("data changed")
	}
}

// TestVeraCryptRepair: a volume opened through its backup header writes it
// over the damaged primary, which then opens again.
func TestVeraCryptRepair(t *testing.T) {
	path := createVC(t, 8192, "AES", "pw")
	patchFile(t, path, 0, make([]byte, tcrypt.HeaderSize))
	if vcOpens(t, path, Passphrase([]byte("pw")), cheapVC) {
		t.Fatal("a wiped primary header opens")
	}
	o := cheapVC
	o.BackupHeader = true
	v, err := Unlock(path, Passphrase([]byte("pw")), &UnlockOptions{Type: TypeVeraCrypt, TCrypt: o})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Repair(); err != nil {
		t.Fatal(err)
	}
	v.Close()
	if !vcOpens(t, path, Passphrase([]byte("pw")), cheapVC) {
		t.Error("the repaired primary header does not open")
	}
}
