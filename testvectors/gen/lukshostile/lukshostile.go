// Package lukshostile generates hostile LUKS1 and LUKS2 volumes: damaged,
// truncated, tampered and out-of-bounds variants of a healthy base volume,
// in the spirit of cryptsetup's tests/luks2-validation-test and
// tests/generators. Each Case copies a base volume and changes bytes of it —
// fixing the LUKS2 checksums where the case needs a copy that passes them —
// and says what package luks must make of it: read it or refuse it, open it
// with the base passphrase or refuse the passphrase, and place its data or
// refuse to; always with an error that names the problem, never with a panic,
// a hang or a large allocation.
//
// The bases are written here, not by the code under test where it can be
// avoided: MakeBase1 writes a LUKS1 volume from the specification with
// x/crypto's XTS and its own anti-forensic splitter (cryptsetup checks it in
// the tests of package luks); MakeBase2 uses luks.Create, whose output
// cryptsetup checks as well.
//
// The tests of package luks run every case; testvectors/README.md describes
// them.
package lukshostile

import (
	"fmt"
	"os"

	"github.com/cryptvol/cryptvol/testvectors/gen/internal/sparse"
)

// Outcome is what one step on a hostile volume must give.
type Outcome int

const (
	// OK: Read succeeds, Unlock opens with the base passphrase (to the base's
	// volume key), Geometry places the data.
	OK Outcome = iota
	// Refused: an error matching luks.ErrDamaged or luks.ErrUnsupported
	// (exit 4).
	Refused
	// WrongPassphrase: Unlock fails with luks.ErrWrongPassphrase (exit 3).
	WrongPassphrase
	// NotLUKS: Read fails with luks.ErrNotLUKS.
	NotLUKS
)

func (o Outcome) String() string {
	return [...]string{"ok", "refused", "wrong passphrase", "not LUKS"}[o]
}

// Case is one hostile volume.
type Case struct {
	Name    string
	Version int // the base it is made from: 1 or 2
	// Read is the outcome of luks.Read: OK, Refused or NotLUKS.
	Read Outcome
	// Unlock is the outcome of Header.Unlock with the base passphrase when
	// Read is OK: OK, WrongPassphrase or Refused.
	Unlock Outcome
	// Data is the outcome of Header.Geometry for the volume as its own data
	// device when Read is OK: OK or Refused.
	Data Outcome
	// Degraded: Read is OK but reports a LUKS2 metadata copy as damaged,
	// missing or older than the other.
	Degraded bool
	// Message is a regular expression the first error (Read's, else
	// Unlock's, else Geometry's) must match.
	Message string
	mutate  func(m *mutator) error
}

// Base is a healthy volume the cases are made from.
type Base struct {
	Path       string
	Version    int
	Passphrase []byte
	VolumeKey  []byte
	Size       int64
}

// Make writes the case's volume to path: a sparse copy of the base, changed.
func (c *Case) Make(b Base, path string) error {
	if b.Version != c.Version {
		return fmt.Errorf("hostile case %s needs a LUKS%d base, got LUKS%d", c.Name, c.Version, b.Version)
	}
	if err := sparse.Copy(b.Path, path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	m := &mutator{f: f, base: b, hdrSize: base2HdrSize}
	if err := c.mutate(m); err != nil {
		return fmt.Errorf("hostile case %s: %w", c.Name, err)
	}
	return f.Close()
}
