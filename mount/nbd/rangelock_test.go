package nbd

import (
	"testing"
	"time"
)

func TestRangeLocks(t *testing.T) {
	l := newRangeLocks()
	w1 := l.enqueue(0, 4096, true)
	r1 := l.enqueue(8192, 12288, false)
	r2 := l.enqueue(0, 8192, false) // conflicts with w1
	r3 := l.enqueue(8192, 12288, false)
	w2 := l.enqueue(8192, 16384, true) // conflicts with r1, r3

	waitFor := func(r *rangeLock) chan struct{} {
		ch := make(chan struct{})
		go func() { l.wait(r); close(ch) }()
		return ch
	}
	blocked := func(ch chan struct{}) bool {
		select {
		case <-ch:
			return false
		case <-time.After(20 * time.Millisecond):
			return true
		}
	}
	for _, r := range []*rangeLock{w1, r1, r3} {
		if blocked(waitFor(r)) {
			t.Fatalf("%+v waits with nothing before it in conflict", *r)
		}
	}
	c2, cw2 := waitFor(r2), waitFor(w2)
	if !blocked(c2) || !blocked(cw2) {
		t.Fatal("conflicting requests did not wait")
	}
	l.release(w1)
	if blocked(c2) {
		t.Fatal("read still waits after the write before it was released")
	}
	l.release(r1)
	if !blocked(cw2) {
		t.Fatal("write went ahead of an earlier read still held")
	}
	l.release(r3)
	if blocked(cw2) {
		t.Fatal("write still waits with nothing before it")
	}
	l.release(r2)
	l.release(w2)
	if len(l.queue) != 0 {
		t.Fatalf("queue not empty: %d", len(l.queue))
	}
}
