package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cryptvol/cryptvol/kdf"
)

// Vault is an unlocked vault opened for key management: it holds the master key
// and the verified header. It does not give access to the data (see Volume).
// Close wipes the master key.
type Vault struct {
	path string
	typ  Type
	k    keyslots
}

// UnlockOptions tune Unlock. The zero value tries every slot, opens the file
// read-write and repairs a damaged or stale header copy.
type UnlockOptions struct {
	// Slots restricts the keyslots tried (nil: every active slot).
	Slots []int
	// ReadOnly opens the file read-only; nothing is repaired or changed.
	ReadOnly bool
	// Warn receives notices such as a header copy repaired or found damaged.
	Warn func(msg string)
	// Context, if set, cancels the unlock: key derivation stops within
	// milliseconds and the unlock returns its error. It is an option rather
	// than a first parameter so that Unlock's many callers stay as they are.
	Context context.Context
	// Budget bounds the key-derivation work of the whole unlock, every
	// keyslot of every header copy tried (0: kdf.DefaultBudget). A keyslot
	// that would take it over is not tried; if none of the others opens,
	// the error is a *BudgetError.
	Budget kdf.Work
	// Header is a detached LUKS2 header file for the volume at path (as
	// cryptsetup's --header); empty: the header is in the volume.
	Header string
	// Type is the container format. Empty: recognised by the header's
	// magic. VeraCrypt and TrueCrypt volumes have none, so they must be
	// named (TypeVeraCrypt, TypeTrueCrypt), and TCrypt tunes their unlock.
	Type   Type
	TCrypt TCryptOptions

	// derive replaces kdf.Derive for this call: a test seam that counts the
	// slots tried or makes one fail. Nil in production.
	derive deriveFunc
}

// session returns the context of one unlock: opts.Context carrying a new
// kdf.Session with opts.Budget, which every derivation of the unlock shares,
// whatever the format. done wipes what the session kept.
func (o *UnlockOptions) session() (ctx context.Context, done func()) {
	ctx = o.Context
	if ctx == nil {
		ctx = context.Background()
	}
	s := kdf.NewSession(o.Budget)
	return kdf.NewContext(ctx, s), s.Close
}

// Unlock reads the vault's header, opens a keyslot with s, verifies the
// header, and repairs a damaged or stale header copy (unless read-only). The
// format is opts.Type, or else recognised by the header's magic.
//
// All key derivations of one Unlock share one kdf.Session (its context):
// each distinct (salt, parameters) is derived once, and their total work is
// bounded by opts.Budget. A format's unlock takes that context and passes it
// to every kdf derivation it makes.
func Unlock(path string, s Secret, opts *UnlockOptions) (*Vault, error) {
	if opts == nil {
		opts = &UnlockOptions{}
	}
	o := *opts
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	typ := o.Type
	var err error
	if typ == "" {
		if typ, err = detectFile(headerPath(path, opts.Header)); err != nil {
			return nil, err
		}
	}
	if o.Header != "" && !isLUKS(typ) {
		return nil, fmt.Errorf("%s: %w", o.Header, damaged("not a LUKS header: only LUKS volumes have detached headers"))
	}
	ctx, done := o.session()
	defer done()
	var k keyslots
	switch typ {
	case TypeCryptvol:
		k, err = unlockV1(ctx, path, s, &o)
	case TypeLUKS1, TypeLUKS2:
		k, err = unlockLUKS(ctx, path, s, &o)
	case TypeVeraCrypt, TypeTrueCrypt:
		k, err = unlockTCrypt(ctx, path, typ, s, &o)
	default:
		err = fmt.Errorf("%s: %w", path, damaged("unsupported container format %q", typ))
	}
	if err != nil {
		return nil, err
	}
	return &Vault{path: path, typ: typ, k: k}, nil
}

// headerPath is where the header of the volume at path is: a detached header
// file, or the volume itself.
func headerPath(path, header string) string {
	if header != "" {
		return header
	}
	return path
}

func detectFile(path string) (Type, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return detect(f)
}

// Path returns the vault file's path.
func (v *Vault) Path() string { return v.path }

// Type returns the vault's format.
func (v *Vault) Type() Type { return v.typ }

// UUID returns the vault's uuid in its usual text form.
func (v *Vault) UUID() string { return v.k.uuid() }

// Geometry returns where the vault's data is and how it is encrypted.
func (v *Vault) Geometry() Geometry { return v.k.geometry() }

// Slot returns the keyslot that opened the vault.
func (v *Vault) Slot() int { return v.k.keyslot() }

// WriteKey writes the master key to w, for handing an unlocked vault to another
// process over a pipe (never a file, argv or the environment); OpenWithKey reads
// it back.
func (v *Vault) WriteKey(w io.Writer) error {
	mk := v.k.masterKey()
	if mk == nil {
		return ErrClosed
	}
	_, err := w.Write(mk.Bytes())
	return err
}

// AddPassphrase wraps the master key under a new secret in slot (or in the
// lowest free slot if slot < 0), with key derivation parameters p, and
// returns the slot used. A secret that is empty as a whole (no passphrase,
// every keyfile empty) is refused with ErrEmptySecret. Its one derivation has
// the cost the caller chose, and is not cancelled.
func (v *Vault) AddPassphrase(s Secret, p kdf.Params, slot int) (int, error) {
	return v.k.addKey(context.Background(), s, p, slot)
}

// ChangePassphrase replaces the secret of an active slot, keeping its number,
// so that a crash at any point leaves the old or the new one working. The new
// secret is refused as by AddPassphrase.
func (v *Vault) ChangePassphrase(slot int, s Secret, p kdf.Params) error {
	return v.k.changeKey(context.Background(), slot, s, p)
}

// RemoveSlot clears an active slot. Removing the last active slot is refused
// (ErrLastSlot).
func (v *Vault) RemoveSlot(slot int) error { return v.k.removeKey(slot) }

// Grow enlarges the vault's data area to newSize plaintext bytes, so that a
// crash leaves either the old size or the new one. The vault must not be
// open. progress, if set, follows the random fill of the new space.
func (v *Vault) Grow(ctx context.Context, newSize int64, fill Fill, progress func(done, total int64)) error {
	return v.k.grow(ctx, newSize, fill, progress)
}

// Repair rewrites a damaged, missing or older header copy from the current
// one. Unlocking a cryptvol vault read-write does it on the way; a LUKS2
// volume's copies are repaired only by this (docs/LUKS.md).
func (v *Vault) Repair() error { return v.k.repair() }

// Close wipes the master key and releases the file and its lock.
func (v *Vault) Close() error { return v.k.close() }

var errReadOnlyVault = errors.New("vault was unlocked read-only")

// ErrHeaderChanged means another process changed the header since this one
// read it; the operation was not done and can be retried.
var ErrHeaderChanged = errors.New("the vault header was changed by another process meanwhile; try again")
