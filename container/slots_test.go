package container

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/kdf"
)

// derivations records which slots a derivation ran for: each slot of the
// vault gets its own Argon2 cost, so the parameters say which slot it was
// without any timing.
type derivations struct {
	params []kdf.Params
	fail   map[kdf.Params]error // derivations that fail, by parameters
}

// derive stands for kdf.Derive under the unlock's session (so that keys it
// derived already and its budget apply as they do to kdf.Derive), recording
// the derivations that run.
func (d *derivations) derive(ctx context.Context, secret, salt []byte, p kdf.Params) (*memguard.LockedBuffer, error) {
	job := kdf.Job{Name: p.String(), Salt: salt, Secret: secret, Work: p.Work()}
	return kdf.Run(ctx, job, func(ctx context.Context) (*memguard.LockedBuffer, error) {
		d.params = append(d.params, p)
		if err := d.fail[p]; err != nil {
			return nil, err
		}
		return kdf.Derive(kdf.NewContext(ctx, nil), secret, salt, p)
	})
}

// costlySlots makes a vault with active slots 0, 2 and 5, each with different
// Argon2 parameters, and returns them by slot.
func costlySlots(t *testing.T) (string, map[int]kdf.Params) {
	path := createClosed(t, 8192, "zero")
	params := map[int]kdf.Params{
		0: tiny,
		2: {Memory: kdf.MinMemory, Iterations: 2, Threads: 2},
		5: {Memory: 2 * kdf.MinMemory, Iterations: 1, Threads: 1},
	}
	v := mustUnlock(t, path, "zero")
	for _, s := range []int{2, 5} {
		if _, err := v.AddPassphrase(Passphrase([]byte{'0' + byte(s)}), params[s], s); err != nil {
			t.Fatal(err)
		}
	}
	v.Close()
	return path, params
}

// TestWrongPassphraseDerivesEverySlot checks the rule of docs/FORMAT.md §4: a
// wrong passphrase is tried against every active slot, in order, not only
// until the first failure.
func TestWrongPassphraseDerivesEverySlot(t *testing.T) {
	path, params := costlySlots(t)
	all := []kdf.Params{params[0], params[2], params[5]}
	for _, tc := range []struct {
		pass string
		want []kdf.Params
		err  error
	}{
		{"wrong", all, ErrWrongPassphrase},
		{"5", all, nil},
		{"2", all[:2], nil},
		{"zero", all[:1], nil},
	} {
		d := &derivations{}
		v, err := Unlock(path, Passphrase([]byte(tc.pass)), &UnlockOptions{ReadOnly: true, derive: d.derive})
		if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Fatalf("%q: %v, want %v", tc.pass, err, tc.err)
		}
		if v != nil {
			v.Close()
		}
		if !slices.Equal(d.params, tc.want) {
			t.Errorf("%q: derived %v, want %v", tc.pass, d.params, tc.want)
		}
	}

	// A header restore tries every slot of the backup the same way.
	backup, err := BackupHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	d := &derivations{}
	if err := restoreHeader(path, backup, Passphrase([]byte("wrong")), &UnlockOptions{derive: d.derive}, nil); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("restore with a wrong passphrase: %v", err)
	}
	if !slices.Equal(d.params, all) {
		t.Errorf("restore derived %v, want %v", d.params, all)
	}
}

// TestUnderivableSlotDoesNotStopTheSearch: a slot whose key cannot be derived
// here (its memory cost above this machine's) must not hide the others.
func TestUnderivableSlotDoesNotStopTheSearch(t *testing.T) {
	path, params := costlySlots(t)
	d := &derivations{fail: map[kdf.Params]error{params[0]: kdf.ErrInsufficientMemory}}
	v, err := Unlock(path, Passphrase([]byte("5")), &UnlockOptions{ReadOnly: true, derive: d.derive})
	if err != nil {
		t.Fatalf("slot 5 behind an underivable slot 0: %v", err)
	}
	if v.Slot() != 5 {
		t.Fatalf("opened slot %d, want 5", v.Slot())
	}
	v.Close()

	// With no slot opening, the error is the derivation's, not "wrong
	// passphrase": the passphrase may be the untried slot's.
	d = &derivations{fail: map[kdf.Params]error{params[0]: kdf.ErrInsufficientMemory}}
	_, err = Unlock(path, Passphrase([]byte("zero")), &UnlockOptions{ReadOnly: true, derive: d.derive})
	if !errors.Is(err, kdf.ErrInsufficientMemory) || errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("only the right slot underivable: %v", err)
	}
	if len(d.params) != 3 {
		t.Fatalf("derived %d slots, want 3", len(d.params))
	}
}
