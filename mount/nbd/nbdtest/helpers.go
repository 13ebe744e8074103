package nbdtest

import (
	"sync"
	"sync/atomic"
	"time"
)

// Scribbling is a Device with a WriteAtInPlace that overwrites the caller's
// buffer after writing it, as an encrypting device does; InPlace counts its
// calls.
type Scribbling struct {
	*Device
	inPlace atomic.Int64
}

// WriteAtInPlace writes p, then fills it with 0xee.
func (d *Scribbling) WriteAtInPlace(p []byte, off int64) (int, error) {
	d.inPlace.Add(1)
	n, err := d.Device.WriteAt(p, off)
	for i := range p {
		p[i] = 0xee
	}
	return n, err
}

// InPlace counts the WriteAtInPlace calls so far.
func (d *Scribbling) InPlace() int64 { return d.inPlace.Load() }

// Gate holds the calls that pass through it until want of them are inside
// at once (or a generous deadline passes: the test fails, it does not hang)
// and records the most it saw at once. Tests wrap a Device's methods with
// Hold to prove that requests reach it in parallel.
type Gate struct {
	want    int
	arrived chan struct{} // closed when want calls are inside

	mu     sync.Mutex
	inside int
	most   int
}

// NewGate returns a Gate that opens once want calls are inside.
func NewGate(want int) *Gate { return &Gate{want: want, arrived: make(chan struct{})} }

// Hold waits until want calls are inside (at most 10 s).
func (g *Gate) Hold() {
	g.mu.Lock()
	g.inside++
	g.most = max(g.most, g.inside)
	if g.inside == g.want {
		close(g.arrived)
	}
	g.mu.Unlock()
	select {
	case <-g.arrived:
	case <-time.After(10 * time.Second):
	}
	g.mu.Lock()
	g.inside--
	g.mu.Unlock()
}

// MostInside is the most calls the gate held at once.
func (g *Gate) MostInside() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.most
}
