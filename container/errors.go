package container

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cryptvol/cryptvol/kdf"
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

	// ErrUnknownFormat means a file has no header of a format recognised
	// by its magic (it also matches ErrDamaged): not a vault, a vault whose
	// header copies were all wiped, or a format without magic (VeraCrypt,
	// TrueCrypt) that must be named with UnlockOptions.Type.
	ErrUnknownFormat = errors.New("no known header")

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

// BudgetError is an unlock that did not try every keyslot because deriving
// the keys of the rest would take it over its key-derivation budget
// (UnlockOptions.Budget, kdf.DefaultBudget by default). No keyslot it tried
// opened. errors.Is(err, kdf.ErrBudget) holds.
type BudgetError struct {
	Slots  []int    // the keyslots not tried
	Need   kdf.Work // what deriving their keys would take
	Budget kdf.Work // the unlock's budget
}

func (e *BudgetError) Error() string {
	s := make([]string, len(e.Slots))
	for i, n := range e.Slots {
		s[i] = fmt.Sprint(n)
	}
	return fmt.Sprintf("no keyslot tried opens with this passphrase, and keyslot%s %s %s not tried: deriving %s would take %s of memory passes, over the unlock budget of %s",
		plural(len(s)), strings.Join(s, ", "), map[bool]string{true: "was", false: "were"}[len(s) == 1], map[bool]string{true: "its key", false: "their keys"}[len(s) == 1], e.Need, e.Budget)
}

func (e *BudgetError) Is(target error) bool { return target == kdf.ErrBudget }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// ErrProtectedArea matches (errors.Is) a write refused to protect a hidden
// volume (Geometry.Protected).
var ErrProtectedArea = errors.New("write refused: it would overwrite the protected hidden volume")

// ProtectedError is a write refused by hidden volume protection: the write,
// and the protected range. After is true for a write refused because an
// earlier one reached the range.
type ProtectedError struct {
	Offset, Size int64
	Range        Range
	After        bool
}

func (e *ProtectedError) Error() string {
	if e.After {
		return fmt.Sprintf("write of %d bytes at %d refused: an earlier write reached the protected hidden volume (bytes %d-%d), so the volume refuses all writes until it is closed", e.Size, e.Offset, e.Range.Offset, e.Range.End())
	}
	return fmt.Sprintf("write of %d bytes at %d refused: it would overwrite the protected hidden volume (bytes %d-%d); the volume now refuses all writes until it is closed", e.Size, e.Offset, e.Range.Offset, e.Range.End())
}

func (e *ProtectedError) Is(target error) bool { return target == ErrProtectedArea }
