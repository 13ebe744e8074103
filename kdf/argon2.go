package kdf

import (
	"context"
	"fmt"

	"github.com/awnumar/memguard"
)

// Argon2 variants (RFC 9106 §3.4) as LUKS2 names them.
const (
	Argon2i  = "argon2i"
	Argon2id = "argon2id"
)

// Bounds of Argon2 parameters read from other formats (LUKS2). They follow
// cryptsetup's limits (memory 4 GiB at most, as its crypt_pbkdf_get_limits) and
// this package's work bound, not the floors of cryptvol's own format (§4 of
// docs/FORMAT.md): a volume its owner made with little memory still opens. The
// floor of 8 KiB per lane is RFC 9106's (§3.1: m ≥ 8p); below it the reference
// implementation refuses and golang.org/x/crypto/argon2 would silently use more,
// giving another key.
const (
	MaxArgon2Memory     = 4 << 20 // KiB (4 GiB)
	MaxArgon2Iterations = 1 << 20
	MaxArgon2Threads    = MaxThreads
	minArgon2Salt       = 8 // RFC 9106 §3.1
	minArgon2Key        = 4 // RFC 9106 §3.1
)

// Argon2 is Argon2i or Argon2id (version 0x13) with explicit parameters.
type Argon2 struct {
	Variant    string // Argon2i or Argon2id
	Memory     uint32 // KiB
	Iterations uint32 // passes (t)
	Threads    uint32 // lanes (p)
}

func (a Argon2) String() string {
	return fmt.Sprintf("%s m=%s t=%d p=%d", a.Variant, formatKiB(a.Memory), a.Iterations, a.Threads)
}

// Validate checks a against the bounds above.
func (a Argon2) Validate() error {
	if a.Variant != Argon2i && a.Variant != Argon2id {
		return fmt.Errorf("unknown argon2 variant %q", a.Variant)
	}
	v := a.Variant
	switch {
	case a.Threads < MinThreads:
		return &CostError{v, "threads", uint64(a.Threads), fmt.Sprintf("is below the minimum %d", MinThreads)}
	case a.Threads > MaxArgon2Threads:
		return &CostError{v, "threads", uint64(a.Threads), fmt.Sprintf("is above the maximum %d", MaxArgon2Threads)}
	case a.Memory < 8*a.Threads:
		return &CostError{v, "memory", uint64(a.Memory), fmt.Sprintf("KiB is below 8 KiB per thread (%d KiB)", 8*a.Threads)}
	case a.Memory > MaxArgon2Memory:
		return &CostError{v, "memory", uint64(a.Memory), fmt.Sprintf("KiB is above the maximum %d KiB", MaxArgon2Memory)}
	case a.Iterations < MinIterations:
		return &CostError{v, "iterations", uint64(a.Iterations), fmt.Sprintf("is below the minimum %d", MinIterations)}
	case a.Iterations > MaxArgon2Iterations:
		return &CostError{v, "iterations", uint64(a.Iterations), fmt.Sprintf("is above the maximum %d", MaxArgon2Iterations)}
	case uint64(a.Memory)*uint64(a.Iterations) > MaxWork:
		return &CostError{v, "work", uint64(a.Memory) * uint64(a.Iterations), fmt.Sprintf("(memory KiB × iterations) is above the maximum %d", MaxWork)}
	}
	return nil
}

// Derive returns n bytes of Argon2 output in locked memory owned by the
// caller. It refuses out-of-bound parameters, parameters needing more memory
// than is available, a salt shorter than 8 bytes and a cancelled ctx, before
// any work, and stops within milliseconds once ctx is cancelled. It takes part
// in the context's Session (see Run): shared, budgeted.
func (a Argon2) Derive(ctx context.Context, secret, salt []byte, n int) (*memguard.LockedBuffer, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if err := checkMemory(Params{Memory: a.Memory}); err != nil {
		return nil, err
	}
	if len(salt) < minArgon2Salt {
		return nil, &CostError{a.Variant, "salt", uint64(len(salt)), fmt.Sprintf("bytes is below the minimum %d", minArgon2Salt)}
	}
	if n < minArgon2Key || n > MaxPBKDF2KeySize {
		return nil, &CostError{a.Variant, "key size", uint64(max(n, 0)), fmt.Sprintf("is not within %d to %d bytes", minArgon2Key, MaxPBKDF2KeySize)}
	}
	mode := uint32(modeArgon2id)
	if a.Variant == Argon2i {
		mode = modeArgon2i
	}
	job := Job{Name: fmt.Sprintf("%s n=%d", a, n), Salt: salt, Secret: secret, Work: Work(a.Memory) * Work(a.Iterations)}
	return Run(ctx, job, func(ctx context.Context) (*memguard.LockedBuffer, error) {
		return argon2Key(ctx, mode, secret, salt, nil, nil, a.Iterations, a.Memory, a.Threads, n)
	})
}

// Argon2id returns p as explicit Argon2id parameters (for writing them into
// another format's header).
func (p Params) Argon2id() Argon2 {
	return Argon2{Variant: Argon2id, Memory: p.Memory, Iterations: p.Iterations, Threads: p.Threads}
}
