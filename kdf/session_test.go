package kdf

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/awnumar/memguard"
)

var cheap = Params{Memory: MinMemory, Iterations: 1, Threads: 1}

// TestSessionDerivesEachJobOnce: under one Session, the same (parameters,
// salt, secret) is derived once and comes back as an independent copy; a
// different salt, parameter or secret is derived anew.
func TestSessionDerivesEachJobOnce(t *testing.T) {
	s := NewSession(0)
	defer s.Close()
	ctx := NewContext(context.Background(), s)
	salt := bytes.Repeat([]byte{1}, 32)
	a, err := Derive(ctx, []byte("pw"), salt, cheap)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Derive(ctx, []byte("pw"), salt, cheap)
	if err != nil {
		t.Fatal(err)
	}
	if s.Derivations() != 1 || s.Spent() != cheap.Work() {
		t.Fatalf("two equal jobs: %d derivations, %v spent; want 1 and %v", s.Derivations(), s.Spent(), cheap.Work())
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the remembered key differs")
	}
	a.Destroy() // b is the caller's own copy
	if len(b.Bytes()) != KeySize {
		t.Fatal("destroying one copy destroyed the other")
	}
	b.Destroy()
	other := cheap
	other.Iterations = 2
	for _, d := range []struct {
		secret, salt []byte
		p            Params
	}{
		{[]byte("pw2"), salt, cheap},
		{[]byte("pw"), bytes.Repeat([]byte{2}, 32), cheap},
		{[]byte("pw"), salt, other},
		{nil, salt, cheap},
		{[]byte{0}, salt, cheap}, // not the empty secret
	} {
		k, err := Derive(ctx, d.secret, d.salt, d.p)
		if err != nil {
			t.Fatal(err)
		}
		k.Destroy()
	}
	if s.Derivations() != 6 {
		t.Fatalf("%d derivations, want 6", s.Derivations())
	}
	// Without a session nothing is remembered.
	k, _ := Derive(context.Background(), []byte("pw"), salt, cheap)
	k.Destroy()
	if s.Derivations() != 6 {
		t.Fatal("a derivation outside the session counted in it")
	}
}

// TestSessionBudget: a derivation that would take the session over its budget
// fails before any work with a *BudgetError; one that fits still runs after
// it; a remembered key costs nothing.
func TestSessionBudget(t *testing.T) {
	s := NewSession(3 * cheap.Work())
	defer s.Close()
	ctx := NewContext(context.Background(), s)
	salt := make([]byte, 32)
	big := Params{Memory: 2 * MinMemory, Iterations: 2, Threads: 1} // 4 units of cheap
	_, err := Derive(ctx, []byte("pw"), salt, big)
	var be *BudgetError
	if !errors.As(err, &be) || !errors.Is(err, ErrBudget) || be.Need != big.Work() || be.Budget != 3*cheap.Work() || be.Spent != 0 {
		t.Fatalf("over budget: %v (%+v)", err, be)
	}
	if s.Derivations() != 0 || s.Spent() != 0 {
		t.Fatal("a refused derivation was counted")
	}
	for i := 0; i < 3; i++ {
		salt[0] = byte(i)
		k, err := Derive(ctx, []byte("pw"), salt, cheap)
		if err != nil {
			t.Fatalf("derivation %d within budget: %v", i, err)
		}
		k.Destroy()
	}
	salt[0] = 9
	if _, err := Derive(ctx, []byte("pw"), salt, cheap); !errors.Is(err, ErrBudget) {
		t.Fatalf("fourth: %v, want over budget", err)
	}
	salt[0] = 1
	k, err := Derive(ctx, []byte("pw"), salt, cheap)
	if err != nil {
		t.Fatalf("a remembered key was charged: %v", err)
	}
	k.Destroy()
}

// TestRunRefundsFailures: a derivation that fails (not enough memory, a
// cancelled context) is not charged.
func TestRunRefundsFailures(t *testing.T) {
	s := NewSession(10)
	ctx := NewContext(context.Background(), s)
	_, err := Run(ctx, Job{Name: "x", Work: 5}, func(context.Context) (*memguard.LockedBuffer, error) {
		return nil, ErrInsufficientMemory
	})
	if !errors.Is(err, ErrInsufficientMemory) || s.Spent() != 0 || s.Derivations() != 0 {
		t.Fatalf("failed run: %v, spent %v", err, s.Spent())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Run(cctx, Job{Name: "x", Work: 5}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestWorkString(t *testing.T) {
	for w, want := range map[Work]string{
		cheap.Work(): "8M", DefaultBudget: "128G", MaxWork: "64G", 3 << 30: "3072G", 1<<32 + 1<<19: "4096.5G", 1536: "1536K",
	} {
		if got := w.String(); got != want {
			t.Errorf("%d: %q, want %q", uint64(w), got, want)
		}
	}
}

func TestWeak(t *testing.T) {
	for p, weak := range map[Params]bool{
		{8 << 10, 1, 1}:          true,
		{32 << 10, 10, 4}:        true, // enough passes, too little memory
		{64 << 10, 2, 4}:         true, // 128 MiB·passes
		{64 << 10, 3, 1}:         false,
		{1 << 20, 1, 4}:          false,
		{MaxMemory, 16, 64}:      false,
		{100 << 10, 2, 1}:        false, // 200 MiB·passes
		{WeakMemory - 1, 100, 1}: true,
	} {
		if p.Weak() != weak {
			t.Errorf("%v: Weak() = %v", p, !weak)
		}
	}
}
