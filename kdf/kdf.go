// Package kdf derives key-encryption keys from passphrases with Argon2id (RFC 9106,
// version 0x13), within the bounds of docs/FORMAT.md §4, and calibrates parameters to
// a target unlock time.
//
// Bounds are enforced before any work starts: a hostile header cannot make Derive
// allocate more memory than the machine has or run for hours.
package kdf

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/awnumar/memguard"
	"golang.org/x/crypto/argon2"
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

// formatKiB renders a KiB count in the units --kdf-memory takes (e.g. "1G",
// "8M"), for String.
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
// this machine has.
var ErrInsufficientMemory = errors.New("not enough memory for the key derivation")

// Derive returns the 32-byte Argon2id key for secret and salt, in locked memory
// owned by the caller. It refuses out-of-bound parameters and parameters needing
// more memory than the machine has, before doing any work.
func Derive(secret, salt []byte, p Params) (*memguard.LockedBuffer, error) {
	if err := checkParams(p); err != nil {
		return nil, err
	}
	if len(salt) < MinSalt || len(salt) > MaxSalt {
		return nil, fmt.Errorf("argon2id salt is %d bytes, want %d to %d", len(salt), MinSalt, MaxSalt)
	}
	key := argon2id(secret, salt, p, KeySize)
	// Hand the memory Argon2 used back to the system now instead of keeping it
	// in the heap for the life of the process.
	releaseMemory(p.Memory)
	return memguard.NewBufferFromBytes(key), nil // wipes key
}

// checkParams refuses parameters out of the format's bounds or needing more
// memory than the machine has.
func checkParams(p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if phys := physicalMemory(); phys != 0 && uint64(p.Memory)*1024 > phys {
		return fmt.Errorf("%w: argon2id needs %s, this machine has %d MiB", ErrInsufficientMemory, formatKiB(p.Memory), phys>>20)
	}
	return nil
}

func releaseMemory(kib uint32) {
	if kib >= 64<<10 {
		runtime.GC()
		debug.FreeOSMemory()
	}
}

// argon2id is the one call into the Argon2 implementation; p must be validated
// (Threads fits a uint8 only because of MaxThreads).
func argon2id(secret, salt []byte, p Params, n int) []byte {
	return argon2.IDKey(secret, salt, p.Iterations, p.Memory, uint8(p.Threads), uint32(n))
}
