package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/mount/nbd/nbdtest"
)

// Fuzz targets feed arbitrary client bytes to ServeConn over an in-memory
// connection. Whatever the bytes, the server must not panic, must finish once
// the input ends, and must not allocate in proportion to any length the client
// sent: buffers come from a 1 MiB pool and requests are capped at 64 KiB (the
// same code paths as 32 MiB, smaller numbers so each run is fast).

const (
	fuzzMaxRequest = 64 << 10
	fuzzPool       = 1 << 20
	fuzzDevice     = 256 << 10
	// fuzzAllocLimit bounds what one run may allocate: the pool, the device
	// and its durable copy, the connection's 64 KiB reader, and slack.
	fuzzAllocLimit = fuzzPool + 2*fuzzDevice + 64<<10 + 1<<20
)

// Mode bits, the first byte of a FuzzNBDTransmission input.
const (
	fuzzBlockSizes = 1 << iota // NBD_OPT_GO asks for NBD_INFO_BLOCK_SIZE
	fuzzReadOnly
	fuzzDiscard
	fuzzExportName // enter transmission with NBD_OPT_EXPORT_NAME
	fuzzSector4096
)

func FuzzNBDNegotiation(f *testing.F) {
	for _, seed := range negotiationSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		serveBytes(t, 0, input)
	})
}

func FuzzNBDTransmission(f *testing.F) {
	for _, seed := range transmissionSeeds() {
		f.Add(seed.mode, seed.stream)
	}
	f.Fuzz(func(t *testing.T, mode byte, stream []byte) {
		serveBytes(t, mode, append(negotiationPrefix(mode), stream...))
	})
}

// TestNBDFuzzSeeds runs every seed, so plain `go test` covers them, and makes
// sure the seed sets cannot silently become empty.
func TestNBDFuzzSeeds(t *testing.T) {
	neg, trans := negotiationSeeds(), transmissionSeeds()
	if len(neg) < 5 || len(trans) < 5 {
		t.Fatalf("only %d negotiation and %d transmission seeds", len(neg), len(trans))
	}
	for _, s := range neg {
		serveBytes(t, 0, s)
	}
	for _, s := range trans {
		out := serveBytes(t, s.mode, append(negotiationPrefix(s.mode), s.stream...))
		if got := countSimpleReplies(out); got < s.replies {
			t.Errorf("seed %q: %d replies, want at least %d", s.name, got, s.replies)
		}
	}
}

// serveBytes serves input as everything a client sends and returns what the
// server sent back.
func serveBytes(t *testing.T, mode byte, input []byte) []byte {
	sector := 512
	if mode&fuzzSector4096 != 0 {
		sector = 4096
	}
	mem := nbdtest.New(fuzzDevice, sector)
	opts := Options{Name: "vol", ReadOnly: mode&fuzzReadOnly != 0, AllowDiscard: mode&fuzzDiscard != 0}
	var dev Device = mem
	if opts.AllowDiscard {
		dev = nbdtest.Discarding{Device: mem}
	}
	srv, err := NewServer(dev, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.maxRequest = fuzzMaxRequest
	srv.bufs = newBufferPool(fuzzPool)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	conn := &fuzzConn{in: bytes.NewReader(input)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeConn(context.Background(), conn)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("ServeConn still running 20s after its input ended:\n%s", stacks())
	}
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("Close still running after 20s:\n%s", stacks())
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > fuzzAllocLimit {
		t.Fatalf("serving %d bytes of input allocated %d bytes", len(input), n)
	}
	if held := srv.bufs.heldBytes(); held > fuzzPool {
		t.Fatalf("pool holds %d bytes", held)
	}
	return conn.output()
}

func stacks() []byte {
	buf := make([]byte, 1<<20)
	return buf[:runtime.Stack(buf, true)]
}

// fuzzConn is a net.Conn whose peer sends a fixed byte string and then
// hangs up. The first 64 KiB the server writes are kept (enough for the seeds'
// checks, small enough not to count against fuzzAllocLimit).
type fuzzConn struct {
	in *bytes.Reader

	mu     sync.Mutex
	out    bytes.Buffer
	closed bool
}

func (c *fuzzConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	return c.in.Read(p)
}

func (c *fuzzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.out.Len() < 64<<10 {
		c.out.Write(p[:min(len(p), 64<<10-c.out.Len())])
	}
	return len(p), nil
}

func (c *fuzzConn) output() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.out.Bytes()...)
}

func (c *fuzzConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *fuzzConn) LocalAddr() net.Addr              { return nil }
func (c *fuzzConn) RemoteAddr() net.Addr             { return nil }
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// negotiationPrefix is what a client sends to enter transmission in mode.
func negotiationPrefix(mode byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, nbdFlagCFixedNewstyle|nbdFlagCNoZeroes)
	if mode&fuzzExportName != 0 {
		return appendOption(b, nbdOptExportName, []byte("vol"))
	}
	infos := []uint16{nbdInfoName}
	if mode&fuzzBlockSizes != 0 {
		infos = append(infos, nbdInfoBlockSize)
	}
	return appendOption(b, nbdOptGo, infoRequest("", infos...))
}

func appendOption(b []byte, opt uint32, data []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, nbdOptMagic)
	b = binary.BigEndian.AppendUint32(b, opt)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

func appendRequest(b []byte, typ, flags uint16, handle, off uint64, length uint32, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, nbdRequestMagic)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, handle)
	b = binary.BigEndian.AppendUint64(b, off)
	b = binary.BigEndian.AppendUint32(b, length)
	return append(b, payload...)
}

func negotiationSeeds() [][]byte {
	hello := binary.BigEndian.AppendUint32(nil, nbdFlagCFixedNewstyle|nbdFlagCNoZeroes)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	return [][]byte{
		nil,
		hello,
		appendOption(hello, nbdOptGo, infoRequest("", nbdInfoBlockSize, nbdInfoName, nbdInfoDescription)),
		cat(appendOption(hello, nbdOptInfo, infoRequest("vol", nbdInfoBlockSize)), appendOption(nil, nbdOptGo, infoRequest("vol"))),
		cat(appendOption(hello, nbdOptList, nil), appendOption(nil, nbdOptAbort, nil)),
		appendOption(binary.BigEndian.AppendUint32(nil, 0), nbdOptExportName, nil),
		cat(appendOption(hello, nbdOptStartTLS, nil), appendOption(nil, nbdOptStructuredReply, nil),
			appendOption(nil, nbdOptSetMetaContext, []byte("\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x0fbase:allocation"))),
		appendOption(hello, nbdOptGo, []byte{0xff, 0xff, 0xff, 0xff, 0, 0}),
		appendOption(hello, nbdOptExportName, []byte("nonexistent")),
		binary.BigEndian.AppendUint32(nil, 0xffffffff),
	}
}

type transmissionSeed struct {
	name    string
	mode    byte
	stream  []byte
	replies int // at least this many simple replies come back
}

func transmissionSeeds() []transmissionSeed {
	// Small payloads keep the seeds short, which keeps minimisation fast.
	rw := func(page int) []byte {
		p := bytes.Repeat([]byte{0x5a}, page)
		b := appendRequest(nil, nbdCmdWrite, 0, 1, 0, uint32(page), p)
		b = appendRequest(b, nbdCmdRead, 0, 2, 0, uint32(page), nil)
		b = appendRequest(b, nbdCmdWrite, nbdCmdFlagFUA, 3, uint64(2*page), uint32(page), p)
		b = appendRequest(b, nbdCmdFlush, 0, 4, 0, 0, nil)
		b = appendRequest(b, nbdCmdWriteZeroes, nbdCmdFlagNoHole, 5, uint64(page), uint32(2*page), nil)
		b = appendRequest(b, nbdCmdTrim, 0, 6, 0, uint32(page), nil)
		return appendRequest(b, nbdCmdDisc, 0, 7, 0, 0, nil)
	}
	small := bytes.Repeat([]byte{0xa5}, 512)

	unaligned := appendRequest(nil, nbdCmdWrite, 0, 1, 100, 300, small[:300])
	unaligned = appendRequest(unaligned, nbdCmdRead, 0, 2, 3, 5000, nil)

	bad := appendRequest(nil, nbdCmdRead, 0, 1, 1<<63, 512, nil)
	bad = appendRequest(bad, nbdCmdWrite, 0, 2, fuzzDevice, 512, small)
	bad = appendRequest(bad, 99, 0, 3, 0, 0, nil)
	bad = appendRequest(bad, nbdCmdRead, 1<<9, 4, 0, 512, nil)
	bad = appendRequest(bad, nbdCmdRead, 0, 5, 0, fuzzMaxRequest+4096, nil)

	var many []byte
	for i := range 24 {
		many = appendRequest(many, nbdCmdWrite, 0, uint64(i), uint64(i%8)*512, 512, small)
		many = appendRequest(many, nbdCmdRead, 0, uint64(i+24), uint64(i%5)*512, 1024, nil)
	}

	return []transmissionSeed{
		{"read write flush zero trim disc", fuzzDiscard, rw(512), 6},
		{"same with 4096-byte blocks", fuzzDiscard | fuzzBlockSizes | fuzzSector4096, rw(4096), 6},
		{"read-only", fuzzReadOnly | fuzzExportName, rw(512), 6},
		{"unaligned without block sizes", fuzzSector4096, unaligned, 2},
		{"unaligned with block sizes", fuzzBlockSizes | fuzzSector4096, unaligned, 2},
		{"invalid requests", fuzzBlockSizes, bad, 5},
		{"many in flight", 0, many, 48},
		{"truncated write", 0, appendRequest(nil, nbdCmdWrite, 0, 1, 0, 4096, small[:100]), 0},
		{"bad magic", 0, append(appendRequest(nil, nbdCmdFlush, 0, 1, 0, 0, nil), make([]byte, 28)...), 1},
		{"oversized write", 0, appendRequest(nil, nbdCmdWrite, 0, 1, 0, 0xffffffff, nil), 0},
	}
}

// countSimpleReplies counts the simple reply headers in a server's output
// after the handshake (a rough count: payloads are skipped by magic search).
func countSimpleReplies(out []byte) int {
	magic := binary.BigEndian.AppendUint32(nil, nbdSimpleReplyMagic)
	return bytes.Count(out, magic)
}
