package nbd

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
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

// Mode bits, the first argument of a FuzzNBDNegotiation input.
const (
	fuzzNegTLS     = 1 << iota // the server requires TLS (FORCEDTLS)
	fuzzNegUpgrade             // after its plaintext the client sends NBD_OPT_STARTTLS, runs the TLS handshake and sends inTLS through it
	fuzzNegVerify              // the server verifies client certificates (the client has one)
)

// FuzzNBDNegotiation feeds the handshake and option haggling arbitrary
// bytes: in plaintext, to a server with or without TLS, and, with
// fuzzNegUpgrade, inside a TLS session a real client set up after them. An
// input is a mode byte, the length of the plaintext part (16 bits, big
// endian), the plaintext, and what goes inside TLS (see negotiationInput).
// One []byte rather than three arguments keeps the fuzz caches of the
// earlier, plaintext-only target usable.
func FuzzNBDNegotiation(f *testing.F) {
	for _, seed := range negotiationSeeds() {
		f.Add(negotiationInput(0, nil, seed))
	}
	for _, seed := range tlsNegotiationSeeds() {
		f.Add(negotiationInput(seed.mode, seed.plain, seed.inTLS))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		mode, plain, inTLS := splitNegotiationInput(input)
		serveNegotiation(t, mode, plain, inTLS)
	})
}

// negotiationInput encodes a FuzzNBDNegotiation input.
func negotiationInput(mode byte, plain, inTLS []byte) []byte {
	b := binary.BigEndian.AppendUint16([]byte{mode}, uint16(len(plain)))
	return append(append(b, plain...), inTLS...)
}

// splitNegotiationInput decodes any byte string as a FuzzNBDNegotiation
// input: what is missing is empty, a plaintext length past the end takes the
// rest.
func splitNegotiationInput(input []byte) (mode byte, plain, inTLS []byte) {
	if len(input) < 3 {
		return 0, nil, input
	}
	n := min(int(binary.BigEndian.Uint16(input[1:])), len(input)-3)
	return input[0], input[3 : 3+n], input[3+n:]
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
	neg, tlsNeg, trans := negotiationSeeds(), tlsNegotiationSeeds(), transmissionSeeds()
	if len(neg) < 5 || len(tlsNeg) < 5 || len(trans) < 5 {
		t.Fatalf("only %d negotiation, %d TLS negotiation and %d transmission seeds", len(neg), len(tlsNeg), len(trans))
	}
	for _, s := range neg {
		serveBytes(t, 0, s)
	}
	for _, s := range tlsNeg {
		upgraded, out := serveNegotiation(t, s.mode, s.plain, s.inTLS)
		if upgraded != s.upgrades {
			t.Errorf("seed %q: TLS set up: %v, want %v", s.name, upgraded, s.upgrades)
		}
		if got := countSimpleReplies(out); got < s.replies {
			t.Errorf("seed %q: %d replies inside TLS, want at least %d", s.name, got, s.replies)
		}
	}
	for _, s := range trans {
		out := serveBytes(t, s.mode, append(negotiationPrefix(s.mode), s.stream...))
		if got := countSimpleReplies(out); got < s.replies {
			t.Errorf("seed %q: %d replies, want at least %d", s.name, got, s.replies)
		}
	}
}

// fuzzServer makes a server for one fuzz run: small requests and pool, the
// export options of mode (FuzzNBDTransmission's bits), TLS if cfg is set.
func fuzzServer(t *testing.T, mode byte, cfg *tls.Config) *Server {
	sector := 512
	if mode&fuzzSector4096 != 0 {
		sector = 4096
	}
	mem := nbdtest.New(fuzzDevice, sector)
	opts := Options{Name: "vol", ReadOnly: mode&fuzzReadOnly != 0, AllowDiscard: mode&fuzzDiscard != 0, TLS: cfg,
		HandshakeTimeout: 500 * time.Millisecond}
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
	return srv
}

// runFuzz runs serve, which serves one connection of srv, then closes srv,
// and checks that both end in time and that they allocated within bounds.
func runFuzz(t *testing.T, srv *Server, inputLen int, serve func()) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve()
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
		t.Fatalf("serving %d bytes of input allocated %d bytes", inputLen, n)
	}
	if held := srv.bufs.heldBytes(); held > fuzzPool {
		t.Fatalf("pool holds %d bytes", held)
	}
}

// serveBytes serves input as everything a client sends and returns what the
// server sent back.
func serveBytes(t *testing.T, mode byte, input []byte) []byte {
	return serveBytesTLS(t, mode, input, nil)
}

func serveBytesTLS(t *testing.T, mode byte, input []byte, cfg *tls.Config) []byte {
	srv := fuzzServer(t, mode, cfg)
	conn := &fuzzConn{in: bytes.NewReader(input)}
	runFuzz(t, srv, len(input), func() { srv.ServeConn(context.Background(), conn) })
	return conn.output()
}

// serveNegotiation runs one FuzzNBDNegotiation input. It reports whether a
// TLS session was set up, and returns what the server sent inside it.
func serveNegotiation(t *testing.T, mode byte, plain, inTLS []byte) (bool, []byte) {
	var serverCfg, clientCfg *tls.Config
	if mode&(fuzzNegTLS|fuzzNegUpgrade) != 0 {
		serverCfg, clientCfg = fuzzTLSConfigs(t, mode&fuzzNegVerify != 0)
	}
	if mode&fuzzNegTLS == 0 {
		serverCfg = nil
	}
	if mode&fuzzNegUpgrade == 0 {
		serveBytesTLS(t, 0, append(append([]byte(nil), plain...), inTLS...), serverCfg)
		return false, nil
	}
	srv := fuzzServer(t, 0, serverCfg)
	var upgraded bool
	var out []byte
	runFuzz(t, srv, len(plain)+len(inTLS), func() {
		s, c := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeConn(context.Background(), s)
		}()
		upgraded, out = fuzzTLSClient(c, plain, inTLS, clientCfg)
		c.Close()
		<-done
	})
	return upgraded, out
}

var (
	fuzzTLSOnce                     sync.Once
	fuzzServerTLS, fuzzServerVerify *tls.Config
	fuzzClientTLS                   *tls.Config
)

// fuzzTLSConfigs returns the server's TLS configuration (verifying clients
// or not) and a client's with a certificate the server accepts. They are
// made once per process, from files in the first run's temporary directory
// (gone after it: the configurations keep what they read), so that a fuzz
// worker that is killed leaves nothing behind.
func fuzzTLSConfigs(t *testing.T, verify bool) (server, client *tls.Config) {
	fuzzTLSOnce.Do(func() {
		dir := t.TempDir()
		pki, err := nbdtest.NewPKI("fuzz CA")
		if err != nil {
			t.Fatal(err)
		}
		if err := pki.WriteAll(dir, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		if fuzzServerTLS, err = TLSConfig(dir, false); err != nil {
			t.Fatal(err)
		}
		if fuzzServerVerify, err = TLSConfig(dir, true); err != nil {
			t.Fatal(err)
		}
		fuzzClientTLS = clientTLS(t, dir)
	})
	if verify {
		return fuzzServerVerify, fuzzClientTLS
	}
	return fuzzServerTLS, fuzzClientTLS
}

// fuzzTLSClient sends plain and NBD_OPT_STARTTLS, reading the server's
// plaintext replies; on an NBD_REP_ACK to NBD_OPT_STARTTLS it runs the TLS
// handshake, sends inTLS through it and closes its writing side. It returns
// whether the handshake succeeded and the first 64 KiB the server sent inside
// TLS. If plain does not end where an option ends, the server would wait for
// the rest of it (and after NBD_OPT_EXPORT_NAME, for the rest of a request):
// then plain alone is sent, and the connection closed.
func fuzzTLSClient(c net.Conn, plain, inTLS []byte, cfg *tls.Config) (bool, []byte) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	starts, whole := startTLSCount(plain)
	if !whole {
		go io.Copy(io.Discard, c)
		c.Write(plain)
		return false, nil
	}
	acked := make(chan bool, 1)
	go func() { acked <- readUntilStartTLSAck(c, starts+1) }()
	msg := appendOption(append([]byte(nil), plain...), nbdOptStartTLS, nil)
	_, werr := c.Write(msg)
	if ok := <-acked; !ok || werr != nil {
		return false, nil
	}
	tc := tls.Client(c, cfg)
	if err := tc.Handshake(); err != nil {
		return false, nil
	}
	out := make(chan []byte, 1)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, io.LimitReader(tc, 64<<10))
		io.Copy(io.Discard, tc)
		out <- b.Bytes()
	}()
	if _, err := tc.Write(inTLS); err == nil {
		tc.CloseWrite()
	}
	got := <-out
	return true, got
}

// startTLSCount reads plain as the server does, client flags and then whole
// options, and counts the NBD_OPT_STARTTLS among them; whole is false if
// plain ends inside one, or has an NBD_OPT_EXPORT_NAME.
func startTLSCount(plain []byte) (n int, whole bool) {
	if len(plain) < 4 {
		return 0, false
	}
	for b := plain[4:]; len(b) > 0; {
		if len(b) < nbdOptionHeaderSize {
			return 0, false
		}
		l := binary.BigEndian.Uint32(b[12:])
		if uint64(len(b)-nbdOptionHeaderSize) < uint64(l) {
			return 0, false
		}
		switch binary.BigEndian.Uint32(b[8:]) {
		case nbdOptStartTLS:
			n++
		case nbdOptExportName:
			return 0, false // its reply is no option reply; transmission may follow
		}
		b = b[nbdOptionHeaderSize+int(l):]
	}
	return n, true
}

// readUntilStartTLSAck reads the server's greeting and option replies until
// an NBD_REP_ACK to NBD_OPT_STARTTLS and returns true, having read exactly up
// to where TLS begins. It returns false when the server answered all starts
// NBD_OPT_STARTTLS options without it, entered transmission, or said
// something else; then it reads the rest in the background until the
// connection is closed, so that the server never waits for a reader.
func readUntilStartTLSAck(c net.Conn, starts int) bool {
	if readStartTLSReplies(c, starts) {
		return true
	}
	go io.Copy(io.Discard, c)
	return false
}

func readStartTLSReplies(c net.Conn, starts int) bool {
	var greeting [18]byte
	if _, err := io.ReadFull(c, greeting[:]); err != nil {
		return false
	}
	for {
		var h [nbdOptReplyHdrSize]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return false
		}
		n := binary.BigEndian.Uint32(h[16:])
		if binary.BigEndian.Uint64(h[0:]) != nbdOptReplyMagic || n > 1<<16 {
			return false // NBD_OPT_EXPORT_NAME's reply, or garbage
		}
		if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
			return false
		}
		opt, typ := binary.BigEndian.Uint32(h[8:]), binary.BigEndian.Uint32(h[12:])
		switch {
		case opt == nbdOptStartTLS && typ == nbdRepAck:
			return true
		case opt == nbdOptStartTLS:
			if starts--; starts == 0 {
				return false
			}
		case typ == nbdRepAck && (opt == nbdOptGo || opt == nbdOptAbort):
			return false
		}
	}
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

type tlsNegotiationSeed struct {
	name         string
	mode         byte
	plain, inTLS []byte
	upgrades     bool // the TLS handshake succeeds
	replies      int  // at least this many simple replies come back inside TLS
}

func tlsNegotiationSeeds() []tlsNegotiationSeed {
	hello := binary.BigEndian.AppendUint32(nil, nbdFlagCFixedNewstyle|nbdFlagCNoZeroes)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	opt := func(o uint32, data []byte) []byte { return appendOption(nil, o, data) }
	p := bytes.Repeat([]byte{0x5a}, 512)
	rw := appendRequest(nil, nbdCmdWrite, 0, 1, 0, 512, p)
	rw = appendRequest(rw, nbdCmdRead, 0, 2, 0, 512, nil)
	rw = appendRequest(rw, nbdCmdFlush, 0, 3, 0, 0, nil)
	rw = appendRequest(rw, nbdCmdDisc, 0, 4, 0, 0, nil)
	return []tlsNegotiationSeed{
		{"transfer inside TLS, client verified", fuzzNegTLS | fuzzNegUpgrade | fuzzNegVerify,
			hello, cat(opt(nbdOptGo, infoRequest("", nbdInfoBlockSize)), rw), true, 3},
		{"options refused before TLS, served inside", fuzzNegTLS | fuzzNegUpgrade,
			cat(hello, opt(nbdOptGo, infoRequest("")), opt(nbdOptList, nil), opt(nbdOptInfo, infoRequest("vol")), opt(nbdOptStructuredReply, nil)),
			cat(opt(nbdOptList, nil), opt(nbdOptInfo, infoRequest("vol", nbdInfoDescription)), opt(nbdOptStartTLS, nil),
				opt(nbdOptGo, infoRequest("vol")), rw), true, 3},
		{"export name inside TLS", fuzzNegTLS | fuzzNegUpgrade, hello, cat(opt(nbdOptExportName, []byte("vol")), rw), true, 3},
		{"abort inside TLS", fuzzNegTLS | fuzzNegUpgrade | fuzzNegVerify, hello, opt(nbdOptAbort, nil), true, 0},
		{"abort before TLS", fuzzNegTLS | fuzzNegUpgrade, cat(hello, opt(nbdOptAbort, nil)), nil, false, 0},
		{"STARTTLS with data", fuzzNegTLS | fuzzNegUpgrade, cat(hello, opt(nbdOptStartTLS, []byte("x"))), opt(nbdOptAbort, nil), true, 0},
		{"not fixed newstyle", fuzzNegTLS | fuzzNegUpgrade, make([]byte, 4), nil, false, 0},
		{"server without TLS", fuzzNegUpgrade, hello, opt(nbdOptGo, infoRequest("")), false, 0},
		{"export name before TLS", fuzzNegTLS, cat(hello, opt(nbdOptExportName, nil)), nil, false, 0},
		{"garbage for a handshake", fuzzNegTLS, cat(hello, opt(nbdOptStartTLS, nil)), []byte("\x16\x03\x01\x00\x05hello"), false, 0},
	}
}
