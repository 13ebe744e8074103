package kdf

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// physicalMemory returns the machine's physical memory in bytes, or 0 if
// unknown.
func physicalMemory() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

// availableMemory is how much memory a derivation may use now without making
// the machine or this process's cgroup swap or run out (see memoryHeadroom).
func availableMemory() (uint64, string) { return memoryHeadroom("/") }

// allocArgonMemory maps n blocks of Argon2 working memory outside the Go heap:
// excluded from core dumps, and locked (as it is touched) where the process
// may lock that much. release gives it back to the system; the caller wipes
// what it wrote first (wiping pages never touched would only fault them in).
func allocArgonMemory(n int) (mem []argonBlock, release func(), err error) {
	size := n * argonBlockBytes
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, fmt.Errorf("mapping %d MiB for argon2: %w", size>>20, err)
	}
	unix.Madvise(b, unix.MADV_DONTDUMP)
	// mlock2(MLOCK_ONFAULT): lock the pages as Argon2 first touches them,
	// so nothing is faulted in twice. Without the privilege or the limit for
	// it (an ordinary user's RLIMIT_MEMLOCK is a few MiB) it fails, and the
	// memory may be swapped: SECURITY.md says so.
	unix.Syscall(unix.SYS_MLOCK2, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(size), unix.MLOCK_ONFAULT)
	mem = unsafe.Slice((*argonBlock)(unsafe.Pointer(unsafe.SliceData(b))), n)
	return mem, func() { unix.Munmap(b) }, nil
}
