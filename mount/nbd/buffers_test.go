package nbd

import (
	"errors"
	"testing"
	"time"
)

func TestSizeClass(t *testing.T) {
	for _, tc := range []struct{ n, class int }{
		{1, 0}, {4096, 0}, {4097, 1}, {8192, 1}, {8193, 2}, {1 << 20, 8}, {32 << 20, bufferClasses - 1},
	} {
		if c := sizeClass(tc.n); c != tc.class || classSize(c) < tc.n {
			t.Errorf("sizeClass(%d) = %d (size %d), want %d", tc.n, c, classSize(c), tc.class)
		}
	}
}

func TestBufferPoolLimit(t *testing.T) {
	p := newBufferPool(64 << 10)
	never := make(chan struct{})
	a, err := p.get(32<<10, never)
	if err != nil || len(a) != 32<<10 {
		t.Fatal(len(a), err)
	}
	b, err := p.get(20<<10, never) // a 32 KiB class: the pool is full
	if err != nil || cap(b) != 32<<10 {
		t.Fatal(cap(b), err)
	}
	if h := p.heldBytes(); h != 64<<10 {
		t.Fatalf("held %d", h)
	}

	// A third buffer waits until one comes back, and is that one.
	got := make(chan []byte)
	go func() {
		c, _ := p.get(30<<10, never)
		got <- c
	}()
	select {
	case <-got:
		t.Fatal("got a buffer over the limit")
	case <-time.After(20 * time.Millisecond):
	}
	p.put(a)
	if c := <-got; &c[:1][0] != &a[:1][0] {
		t.Fatal("buffer not reused")
	}

	// A smaller class evicts idle buffers of another class instead of waiting.
	p.put(b)
	small, err := p.get(4096, never)
	if err != nil || p.heldBytes() > 64<<10 {
		t.Fatalf("held %d after eviction: %v", p.heldBytes(), err)
	}
	p.put(small)
}

func TestBufferPoolStop(t *testing.T) {
	p := newBufferPool(8192)
	never := make(chan struct{})
	a, _ := p.get(8192, never)
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := p.get(4096, stop)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	close(stop)
	if err := <-done; !errors.Is(err, errStopped) {
		t.Fatalf("stopped get: %v", err)
	}
	p.put(a)
	if b, err := p.get(8192, never); err != nil || len(b) != 8192 {
		t.Fatalf("after a stopped waiter: %d %v", len(b), err)
	}
}

// TestBufferPoolFIFO: a large request waiting is not overtaken by small ones.
func TestBufferPoolFIFO(t *testing.T) {
	p := newBufferPool(16 << 10)
	never := make(chan struct{})
	a, _ := p.get(8192, never)
	big := make(chan struct{})
	go func() {
		p.get(16<<10, never)
		close(big)
	}()
	time.Sleep(10 * time.Millisecond)
	small := make(chan struct{})
	go func() {
		p.get(4096, never) // would fit, but the big one is first in line
		close(small)
	}()
	select {
	case <-small:
		t.Fatal("small request overtook the waiting large one")
	case <-time.After(20 * time.Millisecond):
	}
	p.put(a)
	<-big
}
