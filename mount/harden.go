package mount

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// Harden applies the memory policy of a process that holds keys and serves
// plaintext (SECURITY.md "Memory"): no core dumps (RLIMIT_CORE 0 and not
// dumpable, which also keeps other users' ptrace out), and, where the process
// may lock memory, every page locked so decrypted data is never swapped. It
// returns warnings for what it could not do; an error only if no core-dump
// protection could be applied.
//
// ioFlusher marks the process as part of the block I/O path (PR_SET_IO_FLUSHER,
// Linux 5.6): a server behind a loop or NBD device must not block on memory
// reclaim that waits on its own device.
func Harden(ioFlusher bool) (warnings []string, err error) {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return nil, fmt.Errorf("disabling core dumps: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("disabling core dumps: %w", err)
	}
	if err := lockAllMemory(); err != nil {
		warnings = append(warnings, err.Error())
	} else if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(lockedGCPercent)
	}
	if ioFlusher {
		if err := unix.Prctl(unix.PR_SET_IO_FLUSHER, 1, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			warnings = append(warnings, fmt.Sprintf("cannot mark the server as an I/O flusher (%v): under heavy memory pressure it may stall", err))
		}
	}
	return warnings, nil
}

// lockedGCPercent is the garbage collector's GOGC once all memory is locked.
// The default, 100, lets the heap grow to twice what is live before a
// collection; every page it grows into becomes locked RAM, and the resident
// size follows the largest heap the collector ever allowed. Buffers the
// servers take from sync.Pools (go-fuse's, for FUSE requests) are dropped at
// each collection and allocated anew, so that target kept rising: the loop
// server grew from 18 to 76 MiB over thirty passes of bench/run.sh mem. At 25
// it stayed between 20 and 31 MiB, the NBD server at 21 instead of 27, and
// throughput did not change measurably: the heaps are a few MiB of buffers,
// quick to mark. A GOGC in the environment still wins.
const lockedGCPercent = 25

// lockAllMemory locks current and future pages (as they are touched, so the
// Go runtime's reserved address space costs nothing). With a limited
// RLIMIT_MEMLOCK, locking future pages would make later allocations fail, so
// it is only done when the limit allows it (root, or an unlimited limit).
func lockAllMemory() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return fmt.Errorf("cannot lock memory: %v: decrypted data could be swapped out", err)
	}
	if unix.Geteuid() != 0 && lim.Cur != unix.RLIM_INFINITY {
		return fmt.Errorf("cannot lock memory (RLIMIT_MEMLOCK is %d KiB; run as root or raise it with `ulimit -l unlimited`): decrypted data could be swapped out", lim.Cur/1024)
	}
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
		return fmt.Errorf("cannot lock memory (%v): decrypted data could be swapped out", err)
	}
	return nil
}
