//go:build unix

package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/kdf"
)

// rewriteHeaders decodes both header copies of the vault at path, lets edit
// change each (primary first), and writes them back with valid checksums
// (their MACs then fail, which an unlock only finds after a slot opens).
func rewriteHeaders(t *testing.T, path string, edit func(primary bool, h *header.Header)) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := readLayout(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*headerCopy{&l.primary, &l.backup} {
		h, err := header.Decode(c.raw)
		if err != nil {
			t.Fatal(err)
		}
		edit(c == &l.primary, h)
		if _, err := f.WriteAt(h.Encode(), c.offset); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRepeatedSaltsDeriveOnce: a hostile header whose eight keyslots share
// one salt and one set of parameters, and whose other copy (same sequence
// number, every slot's wrapped key changed) makes the unlock try all eight
// again, costs one derivation for a wrong passphrase, not sixteen.
func TestRepeatedSaltsDeriveOnce(t *testing.T) {
	path := createClosed(t, 8192, "zero")
	rewriteHeaders(t, path, func(primary bool, h *header.Header) {
		for i := range h.Slots {
			h.Slots[i] = h.Slots[0]
			if !primary {
				h.Slots[i].WrappedKey[0] ^= byte(i + 1)
			}
		}
	})
	d := &derivations{}
	_, err := Unlock(path, Passphrase([]byte("wrong")), &UnlockOptions{ReadOnly: true, derive: d.derive})
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if len(d.params) != 1 {
		t.Fatalf("derived %d keys for 16 keyslots with one salt, want 1", len(d.params))
	}
	// The right passphrase opens the first, and finds the MAC broken.
	if _, err := Unlock(path, Passphrase([]byte("zero")), &UnlockOptions{ReadOnly: true}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("right passphrase on the rewritten header: %v", err)
	}
}

// TestUnlockBudget: a keyslot whose derivation would take the unlock over its
// budget is not tried; a cheaper one after it still is; when none of those
// tried opens, the error names the slots left out and the work they need.
func TestUnlockBudget(t *testing.T) {
	path, params := costlySlots(t) // slot 0: 8M×1, 2: 8M×2, 5: 16M×1
	budget := params[0].Work() + params[2].Work()
	for _, tc := range []struct {
		pass    string
		budget  kdf.Work
		slot    int
		derived int
		skipped []int
	}{
		{"5", budget, -1, 2, []int{5}},
		{"2", budget, 2, 2, nil},
		{"wrong", params[2].Work(), -1, 2, []int{5}}, // 0 fits, 2 no longer, 5 neither
		{"5", 0, 5, 3, nil},                          // the default budget
	} {
		d := &derivations{}
		v, err := Unlock(path, Passphrase([]byte(tc.pass)), &UnlockOptions{ReadOnly: true, Budget: tc.budget, derive: d.derive})
		if tc.slot >= 0 {
			if err != nil || v.Slot() != tc.slot {
				t.Fatalf("%q with budget %v: %v", tc.pass, tc.budget, err)
			}
			v.Close()
		} else {
			var be *BudgetError
			if !errors.As(err, &be) || !errors.Is(err, kdf.ErrBudget) || errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("%q with budget %v: %v, want a BudgetError", tc.pass, tc.budget, err)
			}
			if tc.pass == "wrong" {
				tc.skipped = []int{2, 5}
				tc.derived = 1
			}
			if !slices.Equal(be.Slots, tc.skipped) || be.Budget != tc.budget {
				t.Fatalf("%q: %+v, want slots %v skipped", tc.pass, be, tc.skipped)
			}
			t.Logf("%q: %v", tc.pass, err)
		}
		if len(d.params) != tc.derived {
			t.Fatalf("%q with budget %v: derived %v, want %d", tc.pass, tc.budget, d.params, tc.derived)
		}
	}
}

// TestUnlockCancel: cancelling the context stops an unlock in the middle of
// an expensive derivation, and it tries no further slot.
func TestUnlockCancel(t *testing.T) {
	path := createClosed(t, 8192, "zero")
	v := mustUnlock(t, path, "zero")
	slow := kdf.Params{Memory: 128 << 10, Iterations: 200, Threads: 1}
	if _, err := v.AddPassphrase(Passphrase([]byte("x")), tiny, 1); err != nil {
		t.Fatal(err)
	}
	// Slot 2 is made cheaply and then given slow parameters: its derivation
	// runs for minutes before it fails.
	v.Close()
	rewriteHeaders(t, path, func(_ bool, h *header.Header) {
		h.Slots[2] = h.Slots[1]
		h.Slots[2].Salt[0] ^= 1
		h.Slots[2].Memory, h.Slots[2].Iterations = slow.Memory, slow.Iterations
	})
	ctx, cancel := context.WithCancel(context.Background())
	d := &derivations{}
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	_, err := Unlock(path, Passphrase([]byte("wrong")), &UnlockOptions{ReadOnly: true, Context: ctx, derive: d.derive})
	took := time.Since(start)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled unlock: %v", err)
	}
	if len(d.params) != 3 {
		t.Fatalf("derivations started: %v, want slots 0, 1, 2", d.params)
	}
	t.Logf("cancelled after 500ms, returned after %v", took)
}

// TestKeyfileRules: a keyslot whose whole secret is empty is refused; a
// keyfile that is not a regular file is refused without reading it (a FIFO
// no one writes to, /dev/zero) unless SpecialKeyfiles, and then read only up
// to kdf.MaxKeyfileSize.
func TestKeyfileRules(t *testing.T) {
	path := createClosed(t, 8192, "zero")
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	v := mustUnlock(t, path, "zero")
	if _, err := v.AddPassphrase(Secret{Keyfiles: []string{empty}}, tiny, -1); !errors.Is(err, ErrEmptySecret) {
		t.Fatalf("an empty keyfile and no passphrase: %v", err)
	}
	if _, err := v.AddPassphrase(Secret{Keyfiles: []string{empty, empty}}, tiny, -1); !errors.Is(err, ErrEmptySecret) {
		t.Fatalf("two empty keyfiles: %v", err)
	}
	if err := v.ChangePassphrase(0, Secret{Keyfiles: []string{empty}}, tiny); !errors.Is(err, ErrEmptySecret) {
		t.Fatalf("passwd to an empty keyfile: %v", err)
	}
	if _, err := v.AddPassphrase(Secret{Passphrase: []byte("p"), Keyfiles: []string{empty}}, tiny, -1); err != nil {
		t.Fatalf("an empty keyfile with a passphrase: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kf := range []string{fifo, "/dev/zero"} {
		s := Secret{Passphrase: []byte("zero"), Keyfiles: []string{kf}}
		if err := s.CheckKeyfiles(); !errors.Is(err, ErrSpecialKeyfile) {
			t.Errorf("check %s: %v", kf, err)
		}
		done := make(chan error, 1)
		go func() { _, err := Unlock(path, s, &UnlockOptions{ReadOnly: true}); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrSpecialKeyfile) {
				t.Errorf("unlock with %s: %v", kf, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("unlock with %s hangs", kf)
		}
	}
	s := Secret{Passphrase: []byte("zero"), Keyfiles: []string{"/dev/zero"}, SpecialKeyfiles: true}
	if _, err := Unlock(path, s, &UnlockOptions{ReadOnly: true}); !errors.Is(err, kdf.ErrKeyfileTooLarge) {
		t.Errorf("/dev/zero allowed: %v", err)
	}
}

// TestCreateForceRefusesOpenVault: replacing a vault that is open read-write
// would leave its writes going to the replaced file: refused.
func TestCreateForceRefusesOpenVault(t *testing.T) {
	path, vol := create(t, 8192, 4096, "zero")
	_, err := Create(context.Background(), path, Passphrase([]byte("new")), &CreateOptions{Size: 8192, KDF: tiny, Force: true})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("create --force over an open vault: %v", err)
	}
	vol.Close()
	if !opens(t, path, "zero") {
		t.Fatal("the open vault was replaced")
	}
	nv, err := Create(context.Background(), path, Passphrase([]byte("new")), &CreateOptions{Size: 8192, KDF: tiny, Force: true})
	if err != nil {
		t.Fatalf("create --force over a closed vault: %v", err)
	}
	nv.Close()
	if !opens(t, path, "new") {
		t.Fatal("not replaced")
	}
}
