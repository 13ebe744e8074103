package luks

import (
	"errors"
	"fmt"
)

var (
	// ErrNotLUKS means the device has no LUKS magic where a header would be.
	ErrNotLUKS = errors.New("not a LUKS volume")

	// ErrDamaged matches (errors.Is) every error that means the header cannot
	// be read: a field out of bounds, a bad checksum on every copy, metadata
	// that is not the JSON LUKS2 defines, a truncated device. A *DamagedError
	// says which field and why.
	ErrDamaged = errors.New("LUKS header damaged")

	// ErrUnsupported matches every error that means the header is well formed
	// but asks for something this package does not do: dm-integrity segments,
	// a reencryption in progress, unknown requirements, a cipher or hash
	// outside the supported list, a key derivation above the cost bounds. An
	// *UnsupportedError says what. Nothing is ever written to such a volume.
	ErrUnsupported = errors.New("LUKS feature not supported")

	// ErrWrongPassphrase means no keyslot that could be tried opens with the
	// secret given (every one was tried).
	ErrWrongPassphrase = errors.New("wrong passphrase (no keyslot opens with it)")

	// ErrWrongKey means a volume key given for a header change does not match
	// the volume's digest.
	ErrWrongKey = errors.New("the volume key does not match this volume")

	// ErrNoFreeSlot means there is no free keyslot, or no keyslot area large
	// enough, for a new key.
	ErrNoFreeSlot = errors.New("no free keyslot")

	// ErrLastSlot refuses to remove the last keyslot that opens the data: the
	// volume could never be opened again.
	ErrLastSlot = errors.New("refusing to remove the last keyslot that opens the volume: it could never be opened again")

	// ErrHeaderChanged means the header on the device is no longer the one
	// that was read: another program changed it. Nothing was written.
	ErrHeaderChanged = errors.New("the LUKS header changed on the device since it was read")
)

// DamagedError is a header that fails validation: which copy, which field
// and why. It matches ErrDamaged.
type DamagedError struct {
	Copy   string // "primary", "secondary", "LUKS1", "backup file"; empty when not about one copy
	Field  string // binary field or JSON path ("keyslots.1.area.offset")
	Reason string
}

func (e *DamagedError) Error() string {
	s := "LUKS header"
	if e.Copy != "" {
		s = e.Copy + " " + s
	}
	if e.Field != "" {
		s += ": " + e.Field
	}
	return s + ": " + e.Reason
}

func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

func damaged(field, format string, args ...any) *DamagedError {
	return &DamagedError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// UnsupportedError is a feature of a well-formed header that this package
// does not handle. It matches ErrUnsupported; Err, when set, is the cause
// (a *kdf.CostError, kdf.ErrInsufficientMemory, kdf.ErrUnknownHash).
type UnsupportedError struct {
	Feature string // what, e.g. "segment 0 encryption", "keyslot 3 kdf"
	Detail  string
	Err     error
}

func (e *UnsupportedError) Error() string {
	s := "unsupported LUKS " + e.Feature
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }
func (e *UnsupportedError) Unwrap() error        { return e.Err }

func unsupported(feature, format string, args ...any) *UnsupportedError {
	return &UnsupportedError{Feature: feature, Detail: fmt.Sprintf(format, args...)}
}

// SlotError is an operation on a keyslot that is not in the right state.
type SlotError struct {
	Slot   int
	Reason string // "does not exist", "is not active", "is already in use", …
}

func (e *SlotError) Error() string { return fmt.Sprintf("keyslot %d %s", e.Slot, e.Reason) }
