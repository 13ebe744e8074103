package luks

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// createdVolume makes a LUKS2 volume with Create in a temporary file.
func createdVolume(t *testing.T, secret []byte) (*Header, *os.File, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "v.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	f.Truncate(17 << 20)
	h, vk, err := Create(context.Background(), f, 17<<20, secret, CreateOptions{Key: cheap, DigestIterations: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer vk.Destroy()
	return h, f, bytes.Clone(vk.Bytes())
}

// TestKEKCache checks that keyslots sharing a derivation (same KDF, parameters
// and salt) cost one derivation per unlock, and that every one is still tried.
func TestKEKCache(t *testing.T) {
	h, f, _ := createdVolume(t, []byte("s"))
	m := h.v2.meta()
	tree := m.tree.clone()
	s0 := tree.get("keyslots").get("0")
	d := tree.get("digests").get("0").get("keyslots")
	for i := 1; i < 8; i++ {
		s := s0.clone()
		s.get("area").set("offset", jUint(32768+uint64(i)*258048))
		tree.get("keyslots").set(strconv.Itoa(i), s)
		d.arr = append(d.arr, jStr(strconv.Itoa(i)))
	}
	if err := h.commit2(f, tree); err != nil {
		t.Fatal(err)
	}
	tries, err := h.tries(AnySlot)
	if err != nil || len(tries) != 8 {
		t.Fatalf("%d tries, %v", len(tries), err)
	}
	cache := newKEKCache(context.Background(), []byte("wrong"))
	defer cache.destroy()
	if _, _, err := openSlots(context.Background(), f, cache, tries); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatal(err)
	}
	if len(cache.keys) != 1 {
		t.Fatalf("%d derivations for 8 keyslots sharing one", len(cache.keys))
	}
	// With the right secret the first opens, from the same cache.
	cache2 := newKEKCache(context.Background(), []byte("s"))
	defer cache2.destroy()
	if vk, slot, err := openSlots(context.Background(), f, cache2, tries); err != nil || slot != 0 {
		t.Fatalf("slot %d, %v", slot, err)
	} else {
		vk.Destroy()
	}
}

// TestUnlockCancelled checks that a cancelled context stops an unlock and is
// what it returns.
func TestUnlockCancelled(t *testing.T) {
	h, f, _ := createdVolume(t, []byte("s"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := h.Unlock(ctx, f, []byte("s"), AnySlot); !errors.Is(err, context.Canceled) {
		t.Fatalf("Unlock with a cancelled context: %v", err)
	}
	// A slow derivation is cut short.
	tree := h.v2.meta().tree.clone()
	tree.get("keyslots").get("0").set("kdf", jObj(jm("type", jStr("pbkdf2")), jm("hash", jStr("sha512")),
		jm("iterations", jInt(1<<27)), jm("salt", tree.get("keyslots").get("0").get("kdf").get("salt"))))
	if err := h.commit2(f, tree); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := h.Unlock(ctx, f, []byte("s"), AnySlot); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Unlock past its deadline: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the cancelled unlock took %v", d)
	}
}

// TestUnlockSlotRestriction checks the slot argument.
func TestUnlockSlotRestriction(t *testing.T) {
	h, f, want := createdVolume(t, []byte("s"))
	var se *SlotError
	for _, slot := range []int{1, 31, 32, -2} {
		if _, _, err := h.Unlock(context.Background(), f, []byte("s"), slot); !errors.As(err, &se) {
			t.Errorf("slot %d: %v, want a SlotError", slot, err)
		}
	}
	vk, slot, err := h.Unlock(context.Background(), f, []byte("s"), 0)
	if err != nil || slot != 0 || !bytes.Equal(vk.Bytes(), want) {
		t.Fatalf("slot 0: %d, %v", slot, err)
	}
	vk.Destroy()
}
