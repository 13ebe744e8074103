package container

import (
	"context"
	"runtime"
	"testing"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/internal/memscan"
	"github.com/cryptvol/cryptvol/kdf"
)

// lockedWriter collects what is written to it in locked memory.
type lockedWriter struct{ b *memguard.LockedBuffer }

func (w lockedWriter) Write(p []byte) (int, error) { return copy(w.b.Bytes(), p), nil }

// TestKeysOnlyInLockedMemory creates a vault, adds a passphrase, unlocks it
// (a wrong passphrase first), opens its volume, writes and reads, closes
// everything, and then searches this process's memory for the key-encryption
// key of its keyslot and for the master key (whole, and each XTS half): none
// may be outside locked memory. Before cryptvol derived keys with its own
// Argon2 and wiped what the AEAD and the stacks kept, 8 or 9 copies of the
// key-encryption key were found after Unlock and Close.
func TestKeysOnlyInLockedMemory(t *testing.T) {
	pass := []byte("correct horse battery staple")
	path, vol := create(t, 1<<20, 4096, string(pass))
	vol.Close()
	v, err := Unlock(path, Passphrase([]byte("wrong")), nil)
	if err == nil {
		t.Fatal("wrong passphrase accepted")
	}
	v = mustUnlock(t, path, string(pass))
	if _, err := v.AddPassphrase(Passphrase([]byte("another")), tiny, 3); err != nil {
		t.Fatal(err)
	}
	mk := memguard.NewBuffer(64)
	defer mk.Destroy()
	if err := v.WriteKey(lockedWriter{mk}); err != nil {
		t.Fatal(err)
	}
	v.Close()

	vol = mustOpen(t, path, string(pass), nil)
	writeFull(t, vol, randomBytes(1<<16), 4096)
	buf := make([]byte, 1<<16)
	vol.ReadAt(buf, 0)
	vol.Close()

	// The key-encryption keys of slots 0 and 3, derived again here (the
	// derivation itself is checked by kdf's own test).
	info, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := readLayoutOf(path)
	if err != nil {
		t.Fatal(err)
	}
	keks := map[string]*memguard.LockedBuffer{}
	for _, s := range info.Keyslots {
		secret := pass
		if s.Slot == 3 {
			secret = []byte("another")
		}
		hs := &l.winner.h.Slots[s.Slot]
		k, err := kdf.Derive(context.Background(), secret, hs.Salt[:], slotParams(hs))
		if err != nil {
			t.Fatal(err)
		}
		defer k.Destroy()
		keks[map[int]string{0: "slot 0's key-encryption key", 3: "slot 3's key-encryption key"}[s.Slot]] = k
	}
	runtime.GC()
	needles := map[string][]byte{"the master key": mk.Bytes(), "the XTS data key": mk.Bytes()[:32], "the XTS tweak key": mk.Bytes()[32:]}
	for name, k := range keks {
		needles[name] = k.Bytes()
	}
	for name, n := range needles {
		hits, err := memscan.Find(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hits {
			t.Errorf("%s is in unlocked memory at %v", name, h)
		}
	}
}
