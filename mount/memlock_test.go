package mount

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pageBuffers returns n buffers of the given pages each, page-aligned, in
// one mapping of their own (so that nothing else of the process shares
// their pages), unmapped at the end of the test.
func pageBuffers(t *testing.T, n, pages int) [][]byte {
	t.Helper()
	size := int(pageSize) * pages
	// A guard page between buffers keeps them from touching.
	mem, err := unix.Mmap(-1, 0, n*(size+int(pageSize)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	var bufs [][]byte
	for i := range n {
		off := i * (size + int(pageSize))
		bufs = append(bufs, mem[off:off+size])
	}
	return bufs
}

func TestBufferLockerBudget(t *testing.T) {
	var logs []string
	var mu sync.Mutex
	log := func(f string, a ...any) { mu.Lock(); logs = append(logs, fmt.Sprintf(f, a...)); mu.Unlock() }
	used := lockedBytes()
	// A budget of 10 pages: two buffers of 4 pages fit, a third does not.
	l := newBufferLocker(used+lockReserve+uint64(10*pageSize), log)
	if got := l.Budget(); got != 10*pageSize {
		t.Fatalf("budget %d, want %d", got, 10*pageSize)
	}
	bufs := pageBuffers(t, 3, 4)
	before := lockedBytes()
	l.Lock(bufs[0])
	l.Lock(bufs[1])
	// Other parts of the process (memguard) may lock pages meanwhile.
	if got := lockedBytes() - before; got < uint64(8*pageSize) {
		t.Errorf("VmLck grew by %d after two buffers of 4 pages, want at least %d", got, 8*pageSize)
	}
	if l.Budget() != 10*pageSize || l.budget != 2*pageSize {
		t.Errorf("budget left %d of %d, want %d of %d", l.budget, l.Budget(), 2*pageSize, 10*pageSize)
	}
	l.Lock(bufs[0][100:200]) // inside a locked buffer: nothing to do
	l.Lock(bufs[2])
	if l.budget != 2*pageSize || len(l.spans) != 2 {
		t.Errorf("budget left %d, spans %v: the third buffer is over the budget", l.budget, l.spans)
	}
	// What still fits is locked: one page of it.
	l.Lock(bufs[2][:10])
	if l.budget != pageSize || len(l.spans) != 3 {
		t.Errorf("budget left %d, spans %v: one page of the third buffer fits", l.budget, l.spans)
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "RLIMIT_MEMLOCK is used up") {
		t.Errorf("logged %q, want one line saying the limit is used up", logs)
	}
	if l.missed != 4*pageSize {
		t.Errorf("missed %d bytes, want %d", l.missed, 4*pageSize)
	}
	for _, b := range bufs {
		unix.Munlock(b)
	}
}

func TestBufferLockerSpans(t *testing.T) {
	l := &bufferLocker{budget: 1 << 30, log: func(string, ...any) {}}
	bufs := pageBuffers(t, 1, 12)
	b := bufs[0]
	defer unix.Munlock(b)
	p := uintptr(unsafe.Pointer(&b[0]))
	pg := int(pageSize)
	// Lock pages 2-3, then 6-7, then 1-8 (filling the gaps around them),
	// then an unaligned slice that starts inside page 8 and ends in 10.
	l.Lock(b[2*pg : 4*pg])
	l.Lock(b[6*pg : 8*pg])
	if len(l.spans) != 2 {
		t.Fatalf("spans %v, want 2", l.spans)
	}
	l.Lock(b[1*pg : 9*pg])
	if len(l.spans) != 1 || l.spans[0] != (span{p + pageSize, p + 9*pageSize}) {
		t.Fatalf("spans %v, want pages 1-8 merged", l.spans)
	}
	l.Lock(b[8*pg+100 : 10*pg+1])
	if len(l.spans) != 1 || l.spans[0] != (span{p + pageSize, p + 11*pageSize}) {
		t.Fatalf("spans %v, want pages 1-10", l.spans)
	}
	if used := 1<<30 - l.budget; used != 10*pageSize {
		t.Errorf("charged %d bytes, want %d: no page twice", used, 10*pageSize)
	}
	for _, c := range []struct {
		lo, hi int
		want   bool
	}{{pg, 11 * pg, true}, {5 * pg, 5*pg + 1, true}, {0, pg, false}, {10 * pg, 12 * pg, false}} {
		s := span{p + uintptr(c.lo), p + uintptr(c.hi)}
		if got := l.covered(s); got != c.want {
			t.Errorf("covered(pages %d-%d) = %v, want %v", c.lo/pg, (c.hi-1)/pg, got, c.want)
		}
	}
	// Concurrent use: pages 0-11 in overlapping buffers of 4 pages, each
	// page charged once.
	var wg sync.WaitGroup
	for i := range 9 {
		wg.Go(func() { l.Lock(b[i*pg : (i+4)*pg]) })
	}
	wg.Wait()
	if len(l.spans) != 1 || l.spans[0] != (span{p, p + 12*pageSize}) {
		t.Errorf("spans %v after concurrent locks, want all 12 pages", l.spans)
	}
	if used := 1<<30 - l.budget; used != 12*pageSize {
		t.Errorf("charged %d bytes, want %d", used, 12*pageSize)
	}
}
