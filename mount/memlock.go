package mount

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Locking memory under a limit (SECURITY.md "Memory").
//
// Root, or a user whose RLIMIT_MEMLOCK is unlimited, locks the whole server
// (Harden: mlockall of current and future pages). Anyone else may lock only
// RLIMIT_MEMLOCK bytes, 8 MiB by default, and mlockall cannot be made to
// stop at a limit: MCL_CURRENT fails outright when the process's whole
// address space (the Go runtime reserves hundreds of MiB of it) exceeds the
// limit, and MCL_FUTURE makes every later mmap that would cross it fail,
// which the Go runtime takes as out of memory and dies of. So such a server
// locks what holds secrets, and only that:
//
//   - the keys, in memguard's locked pages (container), as always;
//   - the buffers decrypted data passes through: each buffer a FUSE request
//     brings is locked (mlock of its pages) the first time it is seen, in
//     bufferLocker.Lock. The buffers come from pools and are reused, so after
//     the first requests nothing new needs locking; pages stay locked when a
//     pool lets a buffer go, since the heap reuses them for the next buffers.
//
// What does not fit the limit (less a reserve for memguard, which panics
// when it cannot lock) is not locked, and the server says so once in its
// log. What is never locked: transient copies the Go runtime makes, the
// vault's own 1 MiB buffers for unaligned I/O (plaintext only during one
// call, cleared or encrypted in place before it returns), and the memory of
// the filesystem driver (fuse2fs, fusefat), which caches decrypted blocks
// and file names and which cryptvol cannot make lock itself.

// lockReserve is kept out of the buffer budget for memguard's own pages.
const lockReserve = 256 << 10

// memlockPolicy says whether Harden locks all memory (root, or an unlimited
// RLIMIT_MEMLOCK), and else the limit in bytes.
func memlockPolicy() (all bool, limit uint64) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return false, 0
	}
	if unix.Geteuid() == 0 || lim.Cur == unix.RLIM_INFINITY {
		return true, 0
	}
	return false, lim.Cur
}

// bufferLocker locks the pages of buffers that hold decrypted data, within a
// budget. It is safe for concurrent use.
type bufferLocker struct {
	mu     sync.RWMutex
	spans  []span  // locked page ranges, sorted, disjoint, not adjacent
	budget uintptr // bytes it may still lock
	missed uintptr // bytes it could not lock
	log    func(format string, args ...any)
}

// span is [start, end) in bytes, page-aligned.
type span struct{ start, end uintptr }

// newBufferLocker returns a locker whose budget is what the limit leaves
// after what is locked already (memguard's pages) and lockReserve.
func newBufferLocker(limit uint64, log func(string, ...any)) *bufferLocker {
	used := lockedBytes()
	var budget uintptr
	if limit > used+lockReserve {
		budget = uintptr(limit - used - lockReserve)
	}
	return &bufferLocker{budget: budget, log: log}
}

// Budget is how many bytes of buffers it may lock in all.
func (l *bufferLocker) Budget() uintptr {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n := l.budget
	for _, s := range l.spans {
		n += s.end - s.start
	}
	return n
}

var pageSize = uintptr(os.Getpagesize())

// Lock locks the pages of b unless they are locked already. When the budget
// does not allow it, b stays unlocked, and the first time that happens the
// server's log says so.
func (l *bufferLocker) Lock(b []byte) {
	if len(b) == 0 {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	s := span{p &^ (pageSize - 1), (p + uintptr(len(b)) + pageSize - 1) &^ (pageSize - 1)}
	l.mu.RLock()
	done := l.covered(s)
	l.mu.RUnlock()
	if done {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, gap := range l.gaps(s) {
		n := gap.end - gap.start
		if n > l.budget {
			if l.missed == 0 {
				l.log("warning: RLIMIT_MEMLOCK is used up: buffers of decrypted data from now on are not locked and could be swapped out (raise the limit with `ulimit -l`, or use encrypted swap)")
			}
			l.missed += n
			continue
		}
		// mlock takes the pages that the part of b in the gap touches:
		// the gap's pages.
		i, j := max(gap.start, p)-p, min(gap.end, p+uintptr(len(b)))-p
		if err := unix.Mlock(b[i:j]); err != nil {
			if l.missed == 0 {
				l.log("warning: cannot lock a buffer of decrypted data (%v): it could be swapped out", err)
			}
			l.missed += n
			continue
		}
		l.budget -= n
		l.add(gap)
	}
}

// covered reports whether s lies inside one locked span.
func (l *bufferLocker) covered(s span) bool {
	i, _ := slices.BinarySearchFunc(l.spans, s.start, func(x span, t uintptr) int {
		switch {
		case x.end <= t:
			return -1
		case x.start > t:
			return 1
		}
		return 0
	})
	return i < len(l.spans) && l.spans[i].start <= s.start && s.end <= l.spans[i].end
}

// gaps returns the parts of s not locked yet.
func (l *bufferLocker) gaps(s span) []span {
	var out []span
	at := s.start
	for _, x := range l.spans {
		if x.end <= at {
			continue
		}
		if x.start >= s.end {
			break
		}
		if x.start > at {
			out = append(out, span{at, x.start})
		}
		at = max(at, x.end)
	}
	if at < s.end {
		out = append(out, span{at, s.end})
	}
	return out
}

// add records s as locked, merging it with its neighbours.
func (l *bufferLocker) add(s span) {
	i, _ := slices.BinarySearchFunc(l.spans, s.start, func(x span, t uintptr) int {
		if x.start < t {
			return -1
		}
		if x.start > t {
			return 1
		}
		return 0
	})
	l.spans = slices.Insert(l.spans, i, s)
	// Merge with the previous and the next span where they touch.
	if i > 0 && l.spans[i-1].end >= l.spans[i].start {
		l.spans[i-1].end = max(l.spans[i-1].end, l.spans[i].end)
		l.spans = slices.Delete(l.spans, i, i+1)
		i--
	}
	for i+1 < len(l.spans) && l.spans[i].end >= l.spans[i+1].start {
		l.spans[i].end = max(l.spans[i].end, l.spans[i+1].end)
		l.spans = slices.Delete(l.spans, i+1, i+2)
	}
}

// lockedBytes is this process's locked memory (VmLck), 0 if unknown.
func lockedBytes() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmLck:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// memlockWarning is what a server that locks only its keys and buffers says
// once, at open.
func memlockWarning(limit uint64, budget uintptr) string {
	return fmt.Sprintf("memory locking is limited to %s (RLIMIT_MEMLOCK): the server locks its keys and up to %s of buffers of decrypted data, not all its memory, "+
		"and the filesystem driver's memory is not locked; what is not locked could be swapped out (see SECURITY.md: raise the limit, or use encrypted swap)",
		humanKiB(limit), humanKiB(uint64(budget)))
}

func humanKiB(n uint64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
