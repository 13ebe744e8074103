//go:build !linux

package container

import "os"

// Open-file-description locks (docs/FORMAT.md §9 "Locking") are Linux's. On
// other systems the vault is not locked: nothing stops two processes from
// opening it at once, so do not.

const (
	headerLockByte = 0
	dataLockByte   = 1
)

func lockByte(f *os.File, b int64, exclusive, wait bool) error { return nil }

func unlockByte(f *os.File, b int64) {}

// InUse cannot tell without locks: it reports false.
func InUse(path string) (bool, error) { return false, nil }

// holdReplaced cannot lock: it returns no file.
func holdReplaced(path string) (*os.File, error) { return nil, nil }
