package container

import (
	"errors"
	"fmt"
)

var (
	// ErrWrongPassphrase means no active keyslot opens with the passphrase given
	// (every active slot was tried).
	ErrWrongPassphrase = errors.New("wrong passphrase (no keyslot opens with it)")

	// ErrDamaged matches (errors.Is) every error that means the vault cannot be
	// read as a version 1 vault: not a vault, unsupported version, both header
	// copies damaged, a header field out of bounds, a truncated file, or a header
	// that fails authentication. The error chain says which.
	ErrDamaged = errors.New("vault damaged or unsupported")

	// ErrInUse means another process has the vault open (or is changing its header).
	ErrInUse = errors.New("vault is in use by another cryptvol process")

	ErrReadOnly   = errors.New("volume is read-only")
	ErrClosed     = errors.New("volume is closed")
	ErrExists     = errors.New("file already exists")
	ErrLastSlot   = errors.New("refusing to remove the last active keyslot: the vault could never be opened again")
	ErrNoFreeSlot = errors.New("all keyslots are in use")
)

// damagedError carries the reason a vault is unusable and matches ErrDamaged.
type damagedError struct{ err error }

func (e *damagedError) Error() string        { return e.err.Error() }
func (e *damagedError) Unwrap() error        { return e.err }
func (e *damagedError) Is(target error) bool { return target == ErrDamaged }

func damaged(format string, args ...any) error {
	return &damagedError{fmt.Errorf(format, args...)}
}

// SlotError is an operation on a keyslot that is not in the right state.
type SlotError struct {
	Slot   int
	Reason string // "is not active", "is already active", "does not exist"
}

func (e *SlotError) Error() string { return fmt.Sprintf("keyslot %d %s", e.Slot, e.Reason) }
