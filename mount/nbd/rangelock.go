package nbd

import (
	"slices"
	"sync"
)

// rangeLocks orders requests that touch the same sectors of the Device.
//
// NBD clients may have overlapping requests in flight, on one connection or
// several, and this server runs requests in parallel. A Device, like any
// io.WriterAt, need only support parallel calls on ranges that do not overlap;
// and an encrypting Device works in whole sectors, so two unaligned writes that
// share a sector but not a byte would race in its read-modify-write and lose
// one of them. So every READ takes a shared lock, and every WRITE, WRITE_ZEROES
// and TRIM an exclusive one, on the range rounded out to whole sectors.
//
// Locks are enqueued by a connection's reader in arrival order and a request
// waits only for earlier conflicting ones, so overlapping requests run in the
// order they arrived on a connection, nothing starves, and there is no cycle to
// deadlock on. A request holds its lock only while the Device works for it, not
// while its reply is sent, so a client that stops reading replies cannot hold up
// another connection's requests through this lock.
type rangeLocks struct {
	mu      sync.Mutex
	changed *sync.Cond
	queue   []*rangeLock // waiting and held, in arrival order
}

type rangeLock struct {
	start, end int64 // sector-aligned byte range
	exclusive  bool
}

func newRangeLocks() *rangeLocks {
	l := &rangeLocks{}
	l.changed = sync.NewCond(&l.mu)
	return l
}

func (a *rangeLock) conflicts(b *rangeLock) bool {
	return (a.exclusive || b.exclusive) && a.start < b.end && b.start < a.end
}

// enqueue registers a request on [start, end) without waiting.
func (l *rangeLocks) enqueue(start, end int64, exclusive bool) *rangeLock {
	r := &rangeLock{start: start, end: end, exclusive: exclusive}
	l.mu.Lock()
	l.queue = append(l.queue, r)
	l.mu.Unlock()
	return r
}

// wait blocks until no request enqueued before r conflicts with it.
func (l *rangeLocks) wait(r *rangeLock) {
	l.mu.Lock()
	for l.blocked(r) {
		l.changed.Wait()
	}
	l.mu.Unlock()
}

func (l *rangeLocks) blocked(r *rangeLock) bool {
	for _, q := range l.queue {
		if q == r {
			return false
		}
		if q.conflicts(r) {
			return true
		}
	}
	return false
}

// release removes r, whether it was held or still waiting.
func (l *rangeLocks) release(r *rangeLock) {
	l.mu.Lock()
	if i := slices.Index(l.queue, r); i >= 0 {
		l.queue = slices.Delete(l.queue, i, i+1)
	}
	l.changed.Broadcast()
	l.mu.Unlock()
}
