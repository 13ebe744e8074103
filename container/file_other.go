//go:build !linux

package container

import (
	"errors"
	"fmt"
	"os"
)

// The pure layers (header, kdf, cipher, container) build for other systems
// too, so that the format can be read and written there; serving and
// mounting vaults is Linux only. These are the portable stand-ins of
// file_linux.go.

// rename moves the finished vault into place: replacing an existing file
// with force, and never replacing one without (a hard link fails if the name
// exists).
func rename(from, to string, force bool) error {
	if force {
		return os.Rename(from, to)
	}
	if err := os.Link(from, to); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s: %w", to, ErrExists)
		}
		return err
	}
	return os.Remove(from)
}

// writeBehind does nothing: there is no portable sync_file_range.
func writeBehind(f *os.File, off, n int64) {}

// fdatasync makes f durable (fsync).
func fdatasync(f *os.File) error { return f.Sync() }

// punchHole is not available: discard is refused.
func punchHole(f *os.File, off, n int64) error {
	return fmt.Errorf("discard: %w", errors.ErrUnsupported)
}

// Direct reads are Linux only here: ReadAtDirect is ReadAt.
func directAligned([]byte, int64) bool      { return false }
func openDirect(*os.File) *os.File          { return nil }
func cachedAll(*os.File, int64, int64) bool { return true }
