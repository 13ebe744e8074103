//go:build !linux

package kdf

// physicalMemory returns 0 (unknown) where there is no Linux sysinfo: the
// format's bounds still apply, only the check against this machine's memory
// is skipped.
func physicalMemory() uint64 { return 0 }

// availableMemory returns 0 (unknown) outside Linux.
func availableMemory() (uint64, string) { return 0, "" }

// allocArgonMemory takes Argon2's working memory from the Go heap where
// there is no mmap to map it outside; the caller wipes it, and the garbage
// collector takes it back.
func allocArgonMemory(n int) ([]argonBlock, func(), error) {
	return make([]argonBlock, n), func() {}, nil
}
