package fusefile

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Read-ahead of decrypted data, for the loop path (Cache DirectIO).
//
// A filesystem on the loop device reading a file sequentially with direct
// I/O, or one request at a time, sends the next request only when the last
// one is answered. Without read-ahead each request then waits for the vault
// file to be read and decrypted, while a plain loop-mounted file is served
// from the page cache that the kernel's read-ahead fills in the background.
// So when large reads follow each other, the next raDepth chunks of the
// volume are read and decrypted ahead, each on its own goroutine, into
// locked buffers of the server's (buffer); a request they cover is answered
// from them with no copy (raResult). A cryptvol volume fills them with
// direct reads of the vault file (directReader): a few of those in flight
// keep the disk busier than the kernel's read-ahead of a buffered file.
//
// Coherence: when a write returns it has dropped every chunk it overlaps,
// those still being filled included, so a read that starts after a write
// has returned never sees data from before it. A read that overlaps a
// write in time may see either, as on any disk. The chunks hold plaintext
// only in the server's memory, at most raDepth+3 of them per volume, and
// are cleared when dropped (SECURITY.md, "Limits of memory hygiene").
const (
	raChunk = 1 << 20 // the unit of read-ahead, aligned on the volume
	raDepth = 4       // chunks read ahead of a sequential reader
	// raMin is the smallest read that counts towards a sequential stream
	// (small reads are filesystem metadata, or random).
	raMin = 128 << 10
	// raSlack is how far a read may start from where the last large one
	// ended and still continue it: requests in flight together arrive in
	// any order.
	raSlack = 2 * raChunk
	// raFree is how many dropped chunks' buffers are kept for the next
	// fills: a steady reader drops one as it takes a new one.
	raFree = 2
	// raIdle is how long chunks nobody reads are kept: then they are
	// dropped, with the spare buffers, and an idle server holds no
	// plaintext read ahead.
	raIdle = time.Second
)

type readAhead struct {
	dev   Device
	size  int64
	mlock bool // lock each buffer: the server's memory is not all locked

	mu        sync.Mutex
	chunks    map[int64]*raBuf // by volume offset, a multiple of raChunk
	lastEnd   int64
	free      [][]byte // cleared buffers for the next fills
	closed    bool
	fills     sync.WaitGroup
	hits      atomic.Int64 // requests answered from chunks (for tests)
	idle      *time.Timer  // drops everything after idleAfter without a read
	idleAfter time.Duration
}

// raBuf is one chunk, being filled or filled. Replies hold references on it
// until the kernel has its bytes; when it has been dropped and the last
// reference is gone, its buffer is cleared and kept spare or unmapped.
type raBuf struct {
	off     int64
	buf     []byte
	done    chan struct{} // closed when the fill has ended
	ok      bool          // the fill succeeded and no write overlapped it
	dropped bool          // out of chunks: nobody new may use it
	refs    int           // readers, plus one for the fill while it runs
	served  int64         // bytes of it answered: it is dropped when all were
}

func newReadAhead(dev Device, mlock bool) *readAhead {
	return &readAhead{dev: dev, size: dev.Size(), mlock: mlock, chunks: make(map[int64]*raBuf), idleAfter: raIdle}
}

// lookup returns the chunks read ahead that hold [off, off+n), or nil when
// they do not (then the caller reads the Device), and starts reading ahead
// when large reads follow each other. The result holds a reference on the
// chunks until its Done.
func (r *readAhead) lookup(off int64, n int) *raResult {
	end := off + int64(n)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	if r.idle == nil {
		r.idle = time.AfterFunc(r.idleAfter, r.dropAll)
	} else {
		r.idle.Reset(r.idleAfter)
	}
	res := &raResult{r: r, off: off, size: n}
	// A request of up to raChunk spans at most two chunks.
	hit := n > 0 && n <= raChunk && end <= r.size
	for c := off / raChunk * raChunk; hit && c < end; c += raChunk {
		b := r.chunks[c]
		if b == nil {
			hit = false
			break
		}
		res.bufs[res.n] = b
		res.n++
	}
	if hit {
		for _, b := range res.bufs[:res.n] {
			b.refs++
		}
	}
	if n >= raMin {
		if off >= r.lastEnd-raSlack && off <= r.lastEnd+raSlack {
			r.ahead(off, end)
		}
		r.lastEnd = end
	}
	r.mu.Unlock()
	if !hit {
		return nil
	}
	ok := true
	for _, b := range res.bufs[:res.n] {
		<-b.done
		ok = ok && b.ok
	}
	if !ok {
		res.Done()
		return nil
	}
	r.hits.Add(1)
	// A chunk answered in full is done with: a sequential reader does not
	// come back for it.
	r.mu.Lock()
	for _, b := range res.bufs[:res.n] {
		b.served += min(end, b.off+int64(len(b.buf))) - max(off, b.off)
		if b.served >= int64(len(b.buf)) {
			r.drop(b)
		}
	}
	r.mu.Unlock()
	return res
}

// raResult is a FUSE READ reply from chunks read ahead: go-fuse writes
// their bytes to the kernel with writev (Slices), with no copy, and calls
// Done after, which lets the chunks go.
type raResult struct {
	r    *readAhead
	off  int64
	size int
	bufs [2]*raBuf
	n    int
}

// Slices returns the parts of the chunks that make the reply.
func (res *raResult) Slices() ([][]byte, fuse.Status) {
	s := make([][]byte, 0, 2)
	end := res.off + int64(res.size)
	for _, b := range res.bufs[:res.n] {
		lo, hi := max(res.off, b.off), min(end, b.off+int64(len(b.buf)))
		s = append(s, b.buf[lo-b.off:hi-b.off])
	}
	return s, fuse.OK
}

// Bytes copies the reply into buf.
func (res *raResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	buf = buf[:res.size]
	s, _ := res.Slices()
	n := 0
	for _, p := range s {
		n += copy(buf[n:], p)
	}
	return buf, fuse.OK
}

// Size is the reply's length.
func (res *raResult) Size() int { return res.size }

// Done lets the chunks go. It is called once.
func (res *raResult) Done() {
	res.r.mu.Lock()
	for _, b := range res.bufs[:res.n] {
		res.r.unref(b)
	}
	res.n = 0
	res.r.mu.Unlock()
}

// ahead keeps the chunks from the one holding end to raDepth chunks past it
// read or being read, and drops the chunks more than one before the one
// holding off or more than one past those. The caller holds mu.
//
// The one past is kept because requests in flight together arrive in any
// order: when the second half of a MiB comes before the first, the first
// half's window ends a chunk short of the second's, and dropping the chunk
// the second half has just started reading would read every MiB twice.
func (r *readAhead) ahead(off, end int64) {
	first := off / raChunk * raChunk
	from := end / raChunk * raChunk
	to := min(from+raDepth*raChunk, r.size)
	for c, b := range r.chunks {
		if c < first-raChunk || c > to {
			r.drop(b)
		}
	}
	for c := from; c < to; c += raChunk {
		if r.chunks[c] == nil {
			r.fill(c)
		}
	}
}

// fill starts reading the chunk at c. The caller holds mu.
func (r *readAhead) fill(c int64) {
	buf := r.buffer(int(min(raChunk, r.size-c)))
	if buf == nil {
		return // no memory: the reads go to the Device
	}
	b := &raBuf{off: c, buf: buf, done: make(chan struct{}), refs: 1}
	r.chunks[c] = b
	r.fills.Add(1)
	go func() {
		defer r.fills.Done()
		n, err := readAheadAt(r.dev, b.buf, c)
		r.mu.Lock()
		b.ok = err == nil && n == len(b.buf) && !b.dropped
		if !b.ok {
			r.drop(b)
		}
		close(b.done)
		r.unref(b)
		r.mu.Unlock()
	}()
}

// directReader is implemented by a Device that can read data it will not be
// asked for again around the page cache (cryptvol's volumes: the ciphertext
// of a chunk read ahead goes from the disk straight into the chunk).
type directReader interface {
	ReadAtDirect(p []byte, off int64) (int, error)
}

// readAheadAt fills a chunk from dev.
func readAheadAt(dev Device, p []byte, off int64) (int, error) {
	if d, ok := dev.(directReader); ok {
		return d.ReadAtDirect(p, off)
	}
	return dev.ReadAt(p, off)
}

// buffer returns a cleared buffer of n bytes, or nil if there is no memory
// for one. The caller holds mu.
//
// The buffers are mappings of their own, not Go heap: unmapped when let go,
// they give their memory back at once. Go's heap cannot, in a server whose
// memory is locked (madvise refuses locked pages), so each chunk it ever
// held would stay resident for the server's life (bench/scale.sh vaults: 4
// MiB more per idle server). Their pages are allocated when they are mapped
// (MAP_POPULATE): a direct read into pages never touched is served through
// the page cache on btrfs (kernel 6.18), which would undo what the direct
// read is for. Under mlockall they are locked then too; else they are locked
// here, as far as the limit allows. They are left out of core dumps.
func (r *readAhead) buffer(n int) []byte {
	if k := len(r.free); k > 0 && n == raChunk {
		b := r.free[k-1]
		r.free = r.free[:k-1]
		return b
	}
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil
	}
	unix.Madvise(b, unix.MADV_DONTDUMP)
	if r.mlock {
		unix.Mlock(b)
	}
	return b
}

// release clears b and unmaps it. The caller holds mu.
func release(b []byte) {
	clear(b)
	raUnmap(b)
}

// raUnmap unmaps a buffer (tests look at it first).
var raUnmap = unix.Munmap

// drop takes b out of the chunks: no reader will start using it. The caller
// holds mu.
func (r *readAhead) drop(b *raBuf) {
	if b.dropped {
		return
	}
	b.dropped = true
	if r.chunks[b.off] == b {
		delete(r.chunks, b.off)
	}
	if b.refs == 0 {
		r.recycle(b)
	}
}

// unref ends one use of b. The caller holds mu.
func (r *readAhead) unref(b *raBuf) {
	b.refs--
	if b.refs == 0 && b.dropped {
		r.recycle(b)
	}
}

// recycle clears b's plaintext and keeps its buffer for a later fill, or
// unmaps it. The caller holds mu.
func (r *readAhead) recycle(b *raBuf) {
	if len(b.buf) == raChunk && len(r.free) < raFree && !r.closed {
		clear(b.buf)
		r.free = append(r.free, b.buf)
	} else {
		release(b.buf)
	}
	b.buf = nil
}

// invalidate drops every chunk that overlaps [off, off+n), including those
// still being filled, whose data then is never used. A write calls it when
// the Device has it.
func (r *readAhead) invalidate(off, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := off / raChunk * raChunk; c < off+n; c += raChunk {
		if b := r.chunks[c]; b != nil {
			r.drop(b)
		}
	}
}

// dropAll drops every chunk and the spare buffers, when no read came for
// idleAfter.
func (r *readAhead) dropAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.chunks {
		r.drop(b)
	}
	r.releaseFree()
}

// releaseFree unmaps the spare buffers. The caller holds mu.
func (r *readAhead) releaseFree() {
	for _, b := range r.free {
		release(b)
	}
	r.free = nil
}

// close drops every chunk and waits for the fills still running; later
// reads go straight to the Device.
func (r *readAhead) close() {
	r.mu.Lock()
	r.closed = true
	if r.idle != nil {
		r.idle.Stop()
	}
	for _, b := range r.chunks {
		r.drop(b)
	}
	r.releaseFree()
	r.mu.Unlock()
	r.fills.Wait()
}
