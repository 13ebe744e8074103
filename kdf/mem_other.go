//go:build !linux

package kdf

// physicalMemory returns 0 (unknown) where there is no Linux sysinfo: the
// format's bounds still apply, only the check against this machine's memory
// is skipped.
func physicalMemory() uint64 { return 0 }
