package tcrypt

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/kdf"
)

// cheap is a VeraCrypt key derivation the tests can afford: SHA-512 with
// PIM 1 (16000 iterations).
var cheap = KDF{PRF: PRFSHA512, Iterations: vcPIMConst + 1000}

var cheapOpts = Options{Format: VeraCrypt, PRF: PRFSHA512, PIM: 1}

// volume is a VeraCrypt volume file in memory: size bytes of data, and a
// hidden volume of hiddenSize bytes at its end if not zero.
type volume struct {
	file []byte
	keys []byte
}

func newVolume(t *testing.T, size int64, algorithm, password string, hiddenSize int64, hiddenPassword string) *volume {
	t.Helper()
	fileSize := DataOffset + size + BackupAreaSize
	v := &volume{file: make([]byte, fileSize), keys: testKeys()}
	for i := range v.file {
		v.file[i] = byte(i*31 + i>>9) // stand-in for random bytes
	}
	h := NewHeader(uint64(size))
	v.seal(t, h, 0, algorithm, password)
	v.seal(t, h, fileSize-BackupAreaSize, algorithm, password)
	if hiddenSize > 0 {
		start := uint64(DataOffset + size - hiddenSize)
		hh := NewHeader(uint64(hiddenSize))
		hh.HiddenVolumeSize, hh.EncryptedAreaStart = uint64(hiddenSize), start
		v.seal(t, hh, HeaderAreaSize, algorithm, hiddenPassword)
		v.seal(t, hh, fileSize-HeaderAreaSize, algorithm, hiddenPassword)
	}
	return v
}

func (v *volume) seal(t *testing.T, h *Header, off int64, algorithm, password string) {
	t.Helper()
	salt := bytes.Repeat([]byte{byte(off>>9) | 1}, SaltSize)
	raw, err := Seal(context.Background(), h, v.keys, []byte(password), salt, cheap, algorithm)
	if err != nil {
		t.Fatal(err)
	}
	copy(v.file[off:], raw)
}

func (v *volume) unlock(password string, opts Options) (*Unlocked, error) {
	return Unlock(context.Background(), bytes.NewReader(v.file), int64(len(v.file)), []byte(password), opts)
}

func TestUnlockOuterAndHidden(t *testing.T) {
	v := newVolume(t, 256<<10, "AES", "outer", 64<<10, "hidden")
	for _, c := range []struct {
		password string
		backup   bool
		kind     Kind
		offset   int64
	}{
		{"outer", false, Normal, 0},
		{"hidden", false, Hidden, HeaderAreaSize},
		{"outer", true, Normal, int64(len(v.file)) - BackupAreaSize},
		{"hidden", true, Hidden, int64(len(v.file)) - HeaderAreaSize},
	} {
		o := cheapOpts
		o.Backup = c.backup
		u, err := v.unlock(c.password, o)
		if err != nil {
			t.Fatalf("%s (backup %v): %v", c.password, c.backup, err)
		}
		if u.Location.Kind != c.kind || u.Location.Offset != c.offset || u.Algorithm != "AES" || u.KDF != cheap {
			t.Errorf("%s (backup %v): %+v %s %+v", c.password, c.backup, u.Location, u.Algorithm, u.KDF)
		}
		if !bytes.Equal(u.Keys(), v.keys) || !bytes.Equal(u.MasterKey(), v.keys[:64]) {
			t.Error("wrong keys")
		}
		area, err := u.Header.Area(u.Location, int64(len(v.file)))
		if err != nil {
			t.Fatal(err)
		}
		if c.kind == Hidden && (area.Offset != DataOffset+192<<10 || area.Size != 64<<10) {
			t.Errorf("hidden area %+v", area)
		}
		u.Close()
	}
	if _, err := v.unlock("neither", cheapOpts); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("wrong password: %v", err)
	}
	// Only the hidden header is tried: the outer password opens nothing.
	o := cheapOpts
	o.Kinds = []Kind{Hidden}
	if _, err := v.unlock("outer", o); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("outer password on the hidden header: %v", err)
	}
	// The primary header wiped: only the backup opens.
	clear(v.file[:HeaderSize])
	if _, err := v.unlock("outer", cheapOpts); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("wiped primary: %v", err)
	}
	o = cheapOpts
	o.Backup = true
	if u, err := v.unlock("outer", o); err != nil {
		t.Errorf("backup of a wiped primary: %v", err)
	} else {
		u.Close()
	}
}

// TestUnlockEveryAlgorithm opens a header of each of VeraCrypt's 15
// encryption algorithms; exactly the one it was made with decrypts it.
func TestUnlockEveryAlgorithm(t *testing.T) {
	for _, name := range cipher.VeraCryptAlgorithms() {
		v := newVolume(t, 4096, name, "pw", 0, "")
		u, err := v.unlock("pw", cheapOpts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if u.Algorithm != name {
			t.Errorf("%s opened as %s", name, u.Algorithm)
		}
		u.Close()
	}
}

// TestUnlockHeaderError: a header that decrypts but that cryptvol refuses is
// reported as such, not as a wrong password.
func TestUnlockHeaderError(t *testing.T) {
	v := newVolume(t, 4096, "AES", "pw", 0, "")
	h := NewHeader(4096)
	h.SectorSize = 8192
	plain := h.Encode(v.keys)
	hk, _ := cheap.Derive(context.Background(), []byte("pw"), v.file[:SaltSize])
	defer hk.Destroy()
	if err := cryptHeader("AES", hk.Bytes(), v.file[SaltSize:HeaderSize], plain, true); err != nil {
		t.Fatal(err)
	}
	_, err := v.unlock("pw", cheapOpts)
	var he *HeaderError
	if !errors.As(err, &he) || he.Field != "sector size" {
		t.Fatalf("got %v", err)
	}
}

// TestUnlockTrueCrypt5AsVeraCrypt: a TrueCrypt 5 header found as a
// VeraCrypt volume is refused with the reason.
func TestUnlockTrueCrypt5AsVeraCrypt(t *testing.T) {
	file := make([]byte, 8192)
	h := &Header{Magic: MagicTrueCrypt, Version: 3, MinProgramVersion: 0x0500, VolumeSize: 4096, EncryptedAreaLength: 4096, SectorSize: 512}
	tc := KDF{PRF: PRFSHA512, Iterations: 1000, TrueCrypt: true}
	raw, err := Seal(context.Background(), h, testKeys(), []byte("pw"), make([]byte, SaltSize), tc, "Serpent")
	if err != nil {
		t.Fatal(err)
	}
	copy(file, raw)
	_, err = Unlock(context.Background(), bytes.NewReader(file), 8192, []byte("pw"), Options{Format: VeraCrypt, PRF: PRFSHA512, Kinds: []Kind{Normal}})
	var he *HeaderError
	if !errors.As(err, &he) || he.Field != "version" {
		t.Fatalf("as VeraCrypt: %v", err)
	}
	u, err := Unlock(context.Background(), bytes.NewReader(file), 8192, []byte("pw"), Options{Format: TrueCrypt})
	if err != nil {
		t.Fatalf("as TrueCrypt: %v", err)
	}
	defer u.Close()
	if a, err := u.Header.Area(u.Location, 8192); err != nil || a != (Area{512, 4096, 1}) {
		t.Errorf("area %+v, %v", a, err)
	}
}

// TestPlan states the bound of one unlock: locations × key derivations.
func TestPlan(t *testing.T) {
	const size = 1 << 20
	for _, c := range []struct {
		opts Options
		want int
	}{
		// XTS attempts, then TrueCrypt 4's: 2 places × 3 PRFs where it
		// may have made the volume.
		{Options{Format: VeraCrypt}, 2*9 + 2*3},
		{Options{Format: VeraCrypt, Backup: true}, 2 * 9},
		{Options{Format: VeraCrypt, System: true}, 1 * 7},
		{Options{Format: VeraCrypt, PIM: 10}, 2 * 6},
		{Options{Format: VeraCrypt, PRF: PRFSHA512}, 2 * 2},
		{Options{Format: VeraCrypt, PRF: PRFSHA256}, 2 * 1},
		{Options{Format: VeraCrypt, PRF: PRFWhirlpool}, 2*2 + 2*1},
		{Options{Format: TrueCrypt}, 3*3 + 2*3},
		{Options{Format: VeraCrypt, Kinds: []Kind{Hidden}}, 1*9 + 1*3},
	} {
		p, err := Plan(size, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != c.want {
			t.Errorf("%+v: %d attempts, want %d", c.opts, len(p), c.want)
		}
	}
	if _, err := Plan(100, Options{Format: VeraCrypt}); err == nil {
		t.Error("a 100-byte file has a plan")
	}
}

// TestUnlockSession: every derivation goes through the kdf.Session of the
// context: a wrong password costs exactly the plan (each attempt derived
// once, counted), trying again in the same session derives nothing more, and
// a budget too small for the plan stops the unlock with a budget error.
func TestUnlockSession(t *testing.T) {
	v := newVolume(t, 4096, "AES", "pw", 0, "")
	plan, _ := Plan(int64(len(v.file)), cheapOpts)
	var work kdf.Work
	for _, a := range plan {
		work += a.KDF.Work()
	}
	s := kdf.NewSession(0)
	defer s.Close()
	ctx := kdf.NewContext(context.Background(), s)
	unlock := func(ctx context.Context, pw string) error {
		u, err := Unlock(ctx, bytes.NewReader(v.file), int64(len(v.file)), []byte(pw), cheapOpts)
		if err == nil {
			u.Close()
		}
		return err
	}
	if err := unlock(ctx, "wrong"); !errors.Is(err, ErrWrongPassword) {
		t.Fatal(err)
	}
	if s.Derivations() != len(plan) || s.Spent() != work {
		t.Errorf("%d derivations of %v work, the plan has %d of %v", s.Derivations(), s.Spent(), len(plan), work)
	}
	if err := unlock(ctx, "wrong"); !errors.Is(err, ErrWrongPassword) || s.Derivations() != len(plan) {
		t.Errorf("again in the same session: %v, %d derivations", err, s.Derivations())
	}
	small := kdf.NewSession(work / 2)
	defer small.Close()
	if err := unlock(kdf.NewContext(context.Background(), small), "wrong"); !errors.Is(err, kdf.ErrBudget) {
		t.Errorf("half the budget the plan needs: %v", err)
	}
}

// TestUnlockCancel: cancelling stops an unlock whose derivations would take
// hours.
func TestUnlockCancel(t *testing.T) {
	v := newVolume(t, 4096, "AES", "pw", 0, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Unlock(ctx, bytes.NewReader(v.file), int64(len(v.file)), []byte("pw"), Options{Format: VeraCrypt, PRF: PRFStreebog, PIM: MaxPIM})
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("not stopped")
	}
}

// TestUnlockLeavesNoWorker: once Unlock has returned, no attempt still runs
// (one that did would read the password's locked memory, which a program
// exiting right after destroys: a fault, seen in CI under the race detector).
// SHA-512 succeeds first; Whirlpool is under way in the other worker.
func TestUnlockLeavesNoWorker(t *testing.T) {
	v := newVolume(t, 4096, "AES", "pw", 0, "")
	for range 5 {
		before := runtime.NumGoroutine()
		u, err := v.unlock("pw", Options{Format: VeraCrypt, PIM: 1, Workers: 2})
		after := runtime.NumGoroutine()
		if err != nil {
			t.Fatal(err)
		}
		u.Close()
		// The feeder may not have returned yet; nothing else may be left.
		if after > before+1 {
			t.Fatalf("%d goroutines before Unlock, %d after it returned", before, after)
		}
	}
}
