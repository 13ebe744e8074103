package kdf

import (
	"context"
	"runtime"
	"testing"

	"github.com/cryptvol/cryptvol/internal/memscan"
)

// TestDeriveLeavesNoKeyOutsideLockedMemory derives a key (under a Session,
// which keeps a copy, and without one) and searches this process's memory:
// the key is found only in locked memory. golang.org/x/crypto/argon2 left
// seven copies of it in the heap and on stacks.
func TestDeriveLeavesNoKeyOutsideLockedMemory(t *testing.T) {
	salt := make([]byte, 32)
	p := Params{Memory: 16 << 10, Iterations: 2, Threads: 2}
	s := NewSession(0)
	k, err := Derive(NewContext(context.Background(), s), []byte("correct horse"), salt, p)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Destroy()
	k2, err := Derive(context.Background(), []byte("correct horse"), salt, p)
	if err != nil {
		t.Fatal(err)
	}
	k2.Destroy()
	s.Close()
	runtime.GC()
	hits, err := memscan.Find(k.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hits {
		t.Errorf("the key is in unlocked memory at %v", h)
	}
}
