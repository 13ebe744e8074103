package main

import (
	"errors"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/kdf"
	"github.com/cryptvol/cryptvol/mount"
	"github.com/cryptvol/cryptvol/mount/fsys"
)

// Exit codes: a stable interface, documented in README.md and asserted by the
// CLI tests.
const (
	exitOK            = 0
	exitError         = 1 // any other error
	exitUsage         = 2 // bad command line
	exitBadPassphrase = 3 // no keyslot opens with the passphrase (or keyfiles)
	exitDamaged       = 4 // damaged or unsupported vault
	exitInterrupted   = 130
)

// usageError is a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// hinted attaches a next step to an error; it is printed as "cryptvol: hint:".
type hinted struct {
	err  error
	hint string
}

func (e *hinted) Error() string { return e.err.Error() }
func (e *hinted) Unwrap() error { return e.err }

func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hinted{err, hint}
}

// exitCode maps an error to the documented exit code.
func exitCode(err error) int {
	var ue *usageError
	var se *mount.ServerError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &se) && se.Code != 0:
		return se.Code
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, container.ErrWrongPassphrase):
		return exitBadPassphrase
	case errors.Is(err, container.ErrDamaged):
		return exitDamaged
	case errors.Is(err, errInterrupted):
		return exitInterrupted
	}
	return exitError
}

var errInterrupted = errors.New("interrupted")

// defaultHint suggests the next step for well-known errors that carry no hint.
func defaultHint(err error) string {
	switch {
	case errors.Is(err, container.ErrWrongPassphrase):
		return "passphrases are case-sensitive, and a keyslot made with keyfiles needs every one of them (in any order); `cryptvol info FILE` lists the active keyslots"
	case errors.Is(err, container.ErrDamaged):
		return "if you have a header backup: cryptvol header restore FILE BACKUP"
	case errors.Is(err, container.ErrInUse):
		return "`cryptvol list` shows open vaults; close it first"
	case errors.Is(err, kdf.ErrBudget):
		return "`cryptvol info FILE` shows what each keyslot costs; if you trust this vault, allow more with --unlock-budget SIZE (memory × passes, e.g. 512G)"
	case errors.Is(err, fsys.ErrCheckFailed):
		return "the vault's filesystem is damaged, or was shaped to attack the kernel's filesystem code that mounting runs as root; to look at it without mounting: `cryptvol open FILE --no-mount` and the check on the device; if the vault is yours (not closed cleanly, say) and you trust it, --check=never"
	case errors.Is(err, container.ErrEmptySecret):
		return "give a passphrase, or a keyfile with content (head -c 64 /dev/urandom > FILE)"
	case errors.Is(err, mount.ErrNeedsKernel):
		return "open it as root (sudo cryptvol open), or give the decrypted disk to a VM or a tool without root: cryptvol serve FILE --listen unix:PATH"
	}
	return ""
}
