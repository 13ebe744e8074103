// Package kdf derives key-encryption keys from passphrases with Argon2id (RFC 9106,
// version 0x13), within the bounds of docs/FORMAT.md §4, and calibrates parameters to
// a target unlock time.
//
// Bounds are enforced before any work starts: a hostile header cannot make Derive
// allocate more memory than is available or run for hours, and a Session (the
// context of one unlock) bounds the work of all derivations together and runs
// each distinct one once. Argon2 itself is implemented here (argon2core.go):
// it can be cancelled, and keeps what the key could be computed from in locked
// memory and its working memory out of the Go heap.
package kdf

import (
	"context"
	"errors"
	"fmt"

	"github.com/awnumar/memguard"
)

// Bounds of docs/FORMAT.md §4.
const (
	MinMemory     = 8 << 10 // KiB (8 MiB)
	MaxMemory     = 4 << 20 // KiB (4 GiB)
	MinIterations = 1
	MaxIterations = 1000
	MinThreads    = 1
	MaxThreads    = 64
	// MaxWork bounds Memory × Iterations (KiB × passes): 64 GiB of memory passes.
	MaxWork = 1 << 26
	// MinSalt and MaxSalt bound the salt length (RFC 9106 §3.1 asks for at
	// least 8 bytes; formats fix their own length within these).
	MinSalt = 8
	MaxSalt = 1024
	// KeySize is the length of a derived key-encryption key.
	KeySize = 32
)

// Params are Argon2id cost parameters.
type Params struct {
	Memory     uint32 // KiB
	Iterations uint32 // passes over memory (Argon2's t)
	Threads    uint32 // lanes (Argon2's p)
}

func (p Params) String() string {
	return fmt.Sprintf("argon2id m=%s t=%d p=%d", formatKiB(p.Memory), p.Iterations, p.Threads)
}

// formatKiB renders a KiB count the way the CLI accepts it back (e.g. "1G", "8M").
func formatKiB(k uint32) string {
	switch {
	case k%(1<<20) == 0:
		return fmt.Sprintf("%dG", k>>20)
	case k%(1<<10) == 0:
		return fmt.Sprintf("%dM", k>>10)
	}
	return fmt.Sprintf("%dK", k)
}

// ParamError says which parameter is out of bounds.
type ParamError struct {
	Field  string // "memory", "iterations", "threads", "work"
	Value  uint64
	Reason string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("argon2id %s %d %s", e.Field, e.Value, e.Reason)
}

// Validate checks p against the bounds of the format.
func (p Params) Validate() error {
	switch {
	case p.Memory < MinMemory:
		return &ParamError{"memory", uint64(p.Memory), fmt.Sprintf("KiB is below the minimum %d KiB", MinMemory)}
	case p.Memory > MaxMemory:
		return &ParamError{"memory", uint64(p.Memory), fmt.Sprintf("KiB is above the maximum %d KiB", MaxMemory)}
	case p.Iterations < MinIterations:
		return &ParamError{"iterations", uint64(p.Iterations), fmt.Sprintf("is below the minimum %d", MinIterations)}
	case p.Iterations > MaxIterations:
		return &ParamError{"iterations", uint64(p.Iterations), fmt.Sprintf("is above the maximum %d", MaxIterations)}
	case p.Threads < MinThreads:
		return &ParamError{"threads", uint64(p.Threads), fmt.Sprintf("is below the minimum %d", MinThreads)}
	case p.Threads > MaxThreads:
		return &ParamError{"threads", uint64(p.Threads), fmt.Sprintf("is above the maximum %d", MaxThreads)}
	case uint64(p.Memory)*uint64(p.Iterations) > MaxWork:
		return &ParamError{"work", uint64(p.Memory) * uint64(p.Iterations), fmt.Sprintf("(memory KiB × iterations) is above the maximum %d", MaxWork)}
	}
	return nil
}

// ErrInsufficientMemory is returned when the parameters need more memory than
// this machine (or this process's cgroup) has available.
var ErrInsufficientMemory = errors.New("not enough memory for the key derivation")

// Weak keyslot parameters: below RFC 9106 §4's option for memory-constrained
// settings (Argon2id, 64 MiB, three passes), in memory or in memory × passes.
// Such a keyslot lets an attacker test guesses at a passphrase far faster than
// cryptvol's calibrated default (1 GiB, about two seconds) does; Weak is what
// `cryptvol info` marks and what create, passwd and key add warn about.
const (
	WeakMemory = 64 << 10     // KiB
	WeakWork   = 3 * 64 << 10 // KiB × passes
)

// Weak reports whether p is below the parameters WeakMemory and WeakWork
// describe.
func (p Params) Weak() bool {
	return p.Memory < WeakMemory || uint64(p.Memory)*uint64(p.Iterations) < WeakWork
}

// Derive returns the 32-byte Argon2id key for secret and salt, in locked memory
// owned by the caller. It refuses out-of-bound parameters and parameters needing
// more memory than is available, before doing any work, and stops with
// ctx.Err() within milliseconds once ctx is cancelled. Under a Session (see
// NewContext) a key the session derived already comes back without work, and
// the work is charged to the session's budget (a *BudgetError if it does not
// fit).
func Derive(ctx context.Context, secret, salt []byte, p Params) (*memguard.LockedBuffer, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(salt) < MinSalt || len(salt) > MaxSalt {
		return nil, fmt.Errorf("argon2id salt is %d bytes, want %d to %d", len(salt), MinSalt, MaxSalt)
	}
	job := Job{Name: fmt.Sprintf("%s n=%d", p, KeySize), Salt: salt, Secret: secret, Work: p.Work()}
	return Run(ctx, job, func(ctx context.Context) (*memguard.LockedBuffer, error) {
		if err := checkMemory(p); err != nil {
			return nil, err
		}
		return argon2Key(ctx, modeArgon2id, secret, salt, nil, nil, p.Iterations, p.Memory, p.Threads, KeySize)
	})
}

// checkParams refuses parameters out of the format's bounds or needing more
// memory than is available.
func checkParams(p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return checkMemory(p)
}

// checkMemory refuses parameters needing more memory than is available now
// (memoryHeadroom) or, where that is unknown, than the machine has.
func checkMemory(p Params) error {
	need := uint64(p.Memory) * 1024
	if avail, what := availableMemory(); avail != 0 {
		if need > avail {
			return fmt.Errorf("%w: argon2id needs %s, and %s is %d MiB", ErrInsufficientMemory, formatKiB(p.Memory), what, avail>>20)
		}
		return nil
	}
	if phys := physicalMemory(); phys != 0 && need > phys {
		return fmt.Errorf("%w: argon2id needs %s, this machine has %d MiB", ErrInsufficientMemory, formatKiB(p.Memory), phys>>20)
	}
	return nil
}

// argon2id derives n bytes with p outside any Session, for calibration and
// tests; p must be validated.
func argon2id(secret, salt []byte, p Params, n int) (*memguard.LockedBuffer, error) {
	return argon2Key(context.Background(), modeArgon2id, secret, salt, nil, nil, p.Iterations, p.Memory, p.Threads, n)
}
