package container

import (
	"fmt"
	"os"

	"github.com/cryptvol/cryptvol/header"
)

// Info is what a vault's header tells without a passphrase. Nothing in it is
// secret; it is authenticated only once the vault is unlocked (the MAC), so a
// tool that shows it must not present it as verified.
type Info struct {
	Path     string
	FileSize int64
	Header   header.Header // the winning copy
	Primary  CopyStatus
	Backup   CopyStatus
}

// CopyStatus describes one header copy.
type CopyStatus struct {
	Offset   int64  // -1 if unknown
	Sequence uint64 // 0 if the copy is not valid
	// Problem is empty for a valid copy identical to the winner, otherwise
	// says what is wrong ("older", or why it is unusable).
	Problem string
}

// Inspect reads the vault's header copies without unlocking (and without
// changing the file). It fails with ErrDamaged if no copy is valid.
func Inspect(path string) (*Info, error) {
	l, err := readLayoutOf(path)
	if err != nil {
		return nil, err
	}
	return &Info{
		Path: path, FileSize: l.fileSize, Header: *l.winner.h,
		Primary: l.status(&l.primary), Backup: l.status(&l.backup),
	}, nil
}

func (l *layout) status(c *headerCopy) CopyStatus {
	s := CopyStatus{Offset: c.offset}
	if c.valid() {
		s.Sequence = c.h.Sequence
	}
	switch {
	case !c.valid() && c.err != nil:
		s.Problem = c.err.Error()
	case !c.valid():
		s.Problem = "missing"
	case c.h.Sequence < l.winner.h.Sequence:
		s.Problem = fmt.Sprintf("older (sequence %d, current %d)", c.h.Sequence, l.winner.h.Sequence)
	case l.stale(c):
		s.Problem = "differs from the other copy with the same sequence number"
	}
	return s
}

// readLayoutOf reads the header copies of the vault at path, read-only and
// under a shared header lock, so that no header update is seen half-written.
func readLayoutOf(path string) (*layout, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := lockByte(f, headerLockByte, false, true); err != nil {
		return nil, err
	}
	l, err := readLayout(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}
