package nbd

import (
	"errors"
	"math/bits"
	"slices"
	"sync"
)

// Request buffers: every READ reply and WRITE payload lives in a buffer from the
// server's bufferPool, which keeps the bytes of all its buffers, in use or idle,
// within one limit. A reader that cannot get a buffer waits, which stops it
// reading further requests: that is the back-pressure, and memory stays flat
// under any load.

// errStopped is returned by waits abandoned because the connection or server is
// shutting down.
var errStopped = errors.New("stopped")

const (
	minBufferShift = 12 // 4 KiB, the smallest buffer handed out
	maxBufferShift = 25 // nbdMaxBlock
	bufferClasses  = maxBufferShift - minBufferShift + 1
)

// bufferPool recycles buffers in power-of-two size classes. Buffers returned
// with put stay idle for reuse; when a new buffer would exceed the limit, idle
// buffers of other sizes are dropped first, and only if that is not enough does
// the caller wait, in FIFO order so a large request is not starved by small ones.
type bufferPool struct {
	mu      sync.Mutex
	limit   int64
	held    int64 // bytes of buffers in use or idle
	idle    [bufferClasses][][]byte
	waiters []*bufferWaiter
}

type bufferWaiter struct {
	class int
	ready chan struct{} // closed when buf or a reservation was granted
	buf   []byte        // nil with a reservation: the waiter allocates
}

func newBufferPool(limit int64) *bufferPool {
	return &bufferPool{limit: limit}
}

// sizeClass returns the class index for n bytes (1 <= n <= 1<<maxBufferShift).
func sizeClass(n int) int {
	if n <= 1<<minBufferShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufferShift
}

func classSize(c int) int { return 1 << (c + minBufferShift) }

// get returns a buffer of length n (1 <= n <= nbdMaxBlock) with unspecified
// contents, waiting until it fits in the limit or stop is closed.
func (p *bufferPool) get(n int, stop <-chan struct{}) ([]byte, error) {
	c := sizeClass(n)
	p.mu.Lock()
	if len(p.waiters) == 0 {
		if b, ok := p.take(c); ok {
			p.mu.Unlock()
			return p.ready(b, c, n), nil
		}
	}
	w := &bufferWaiter{class: c, ready: make(chan struct{})}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()

	select {
	case <-w.ready:
		return p.ready(w.buf, c, n), nil
	case <-stop:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-w.ready: // granted while we were stopping: give it back
		if w.buf != nil {
			p.idle[c] = append(p.idle[c], w.buf)
		} else {
			p.held -= int64(classSize(c))
		}
	default:
		if i := slices.Index(p.waiters, w); i >= 0 {
			p.waiters = slices.Delete(p.waiters, i, i+1)
		}
	}
	p.grant()
	return nil, errStopped
}

// ready turns what take granted (a buffer, or nil for a reservation) into a
// buffer of length n. Allocation happens outside the lock.
func (p *bufferPool) ready(b []byte, c, n int) []byte {
	if b == nil {
		b = make([]byte, classSize(c))
	}
	return b[:n]
}

// take grants a buffer of class c: an idle one, or a reservation (nil, true)
// once the bytes fit, dropping idle buffers of other classes to make room.
// p.mu is held.
func (p *bufferPool) take(c int) ([]byte, bool) {
	if k := len(p.idle[c]); k > 0 {
		b := p.idle[c][k-1]
		p.idle[c][k-1] = nil
		p.idle[c] = p.idle[c][:k-1]
		return b, true
	}
	size := int64(classSize(c))
	for i := range p.idle {
		for p.held+size > p.limit && len(p.idle[i]) > 0 {
			k := len(p.idle[i])
			p.idle[i][k-1] = nil // garbage now; the GC takes it back
			p.idle[i] = p.idle[i][:k-1]
			p.held -= int64(classSize(i))
		}
	}
	if p.held+size > p.limit {
		return nil, false
	}
	p.held += size
	return nil, true
}

// put returns a buffer obtained from get.
func (p *bufferPool) put(b []byte) {
	b = b[:cap(b)]
	c := sizeClass(len(b))
	p.mu.Lock()
	p.idle[c] = append(p.idle[c], b)
	p.grant()
	p.mu.Unlock()
}

// grant serves waiters in order while their buffers fit. p.mu is held.
func (p *bufferPool) grant() {
	for len(p.waiters) > 0 {
		w := p.waiters[0]
		b, ok := p.take(w.class)
		if !ok {
			return
		}
		w.buf = b
		close(w.ready)
		p.waiters = slices.Delete(p.waiters, 0, 1)
	}
}

// heldBytes reports the bytes of all buffers in use or idle (for tests).
func (p *bufferPool) heldBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// connShare bounds the buffer bytes one connection holds (Options.ConnBufferBytes),
// counted in size classes as the pool counts them. Only the connection's reader
// acquires; the goroutines finishing its requests release. A connection at its
// share waits here, before the pool's queue, so the pool stays free for others:
// a client that sends large READs and never reads the replies stalls only itself.
type connShare struct {
	mu    sync.Mutex
	limit int64
	held  int64
	wake  chan struct{} // closed by release while the reader waits; nil otherwise
}

// acquire waits until n more bytes fit in the share, or stop is closed.
func (s *connShare) acquire(n int64, stop <-chan struct{}) error {
	for {
		s.mu.Lock()
		if s.held+n <= s.limit {
			s.held += n
			s.mu.Unlock()
			return nil
		}
		if s.wake == nil {
			s.wake = make(chan struct{})
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-stop:
			return errStopped
		}
	}
}

// release gives back n bytes taken with acquire.
func (s *connShare) release(n int64) {
	s.mu.Lock()
	s.held -= n
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
	s.mu.Unlock()
}
