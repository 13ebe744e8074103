// Package nbd serves a block Device over the Network Block Device protocol, as
// specified by NetworkBlockDevice/nbd doc/proto.md, to userspace clients
// (nbdinfo, nbdcopy, qemu) and to the kernel's /dev/nbdN (kernel_linux.go). It
// imports nothing from cryptvol but needs only the small Device interface, so
// it could be published on its own.
//
// Implemented from proto.md:
//   - Fixed newstyle handshake, with NBD_FLAG_NO_ZEROES/NBD_FLAG_C_NO_ZEROES;
//     unknown client flags end the session. A client that does not set
//     NBD_FLAG_C_FIXED_NEWSTYLE is served as fixed newstyle anyway.
//   - Options NBD_OPT_EXPORT_NAME, NBD_OPT_GO, NBD_OPT_INFO, NBD_OPT_LIST,
//     NBD_OPT_ABORT and NBD_OPT_STARTTLS; information NBD_INFO_EXPORT,
//     NBD_INFO_NAME, NBD_INFO_DESCRIPTION and NBD_INFO_BLOCK_SIZE. Every other
//     option (NBD_OPT_STRUCTURED_REPLY, the meta context options, extended
//     headers, ...) gets NBD_REP_ERR_UNSUP. Option data is bounded
//     (nbdMaxOptionLen); a longer option ends the session.
//   - TLS: with Options.TLS the FORCEDTLS mode of proto.md "TLS support",
//     otherwise NOTLS (NBD_OPT_STARTTLS gets NBD_REP_ERR_POLICY). See tls.go.
//   - One export: the empty (default) name and Options.Name both select it.
//   - Simple replies; commands READ, WRITE, DISC, FLUSH, TRIM (only with
//     Options.AllowDiscard; whole sectors inside the range are discarded)
//     and WRITE_ZEROES (always an encrypted write of zeroes, never a hole, so
//     NBD_CMD_FLAG_NO_HOLE is always honoured; not capped at 32 MiB, as it
//     needs no buffer of that size); command flags NBD_CMD_FLAG_FUA and
//     NBD_CMD_FLAG_NO_HOLE. Transmission flags HAS_FLAGS, SEND_FLUSH,
//     SEND_FUA, CAN_MULTI_CONN, SEND_WRITE_ZEROES (not when read-only),
//     READ_ONLY and SEND_TRIM as configured.
//   - Block size constraints: NBD_INFO_BLOCK_SIZE advertises minimum =
//     Device.SectorSize(), preferred = max(4096, sector size), maximum = 32 MiB,
//     and is always sent. Alignment to the minimum is enforced (NBD_EINVAL) only
//     for a client that requested NBD_INFO_BLOCK_SIZE in its NBD_OPT_GO (and for
//     the kernel, which is told the block size); other clients may send
//     unaligned requests, which the Device serves by read-modify-write.
//   - Errors as replies, never as a dropped connection, where the protocol lets
//     the stream continue: NBD_EPERM (write or trim on a read-only export),
//     NBD_EINVAL (unknown command or flag, bad alignment, read or trim beyond
//     the end, a READ over 32 MiB), NBD_ENOSPC (write beyond the end; also a
//     Device ENOSPC, EDQUOT or EFBIG), NBD_EIO (any other Device error). A READ
//     is read from the Device completely before its reply header is sent, so a
//     failed read is reported as NBD_EIO with no payload.
//   - Hard disconnect on: bad request or option magic, a WRITE longer than
//     32 MiB (its payload cannot be skipped safely), an unknown export with
//     NBD_OPT_EXPORT_NAME (which cannot return an error), an oversized option.
//
// Ordering and durability (proto.md "Ordering of messages and writes"): requests
// of a connection run in parallel (up to Options.MaxInFlight) and are replied
// to out of order. A WRITE is replied to only after Device.WriteAt returned, so a
// FLUSH, which calls Device.Sync when it is processed, covers every write that
// was replied to before the FLUSH arrived, on this connection or any other: all
// connections share one Device, hence NBD_FLAG_CAN_MULTI_CONN. A FLUSH does not
// wait for writes still in flight; proto.md does not ask it to, and a client
// that wants them covered waits for their replies first. A WRITE, WRITE_ZEROES
// or TRIM with NBD_CMD_FLAG_FUA calls Device.Sync before its reply. Requests
// that touch the same sectors are ordered by rangeLocks. NBD_CMD_DISC waits for
// the requests in flight, then syncs; so does the end of any connection that
// wrote. A read-only export never calls Sync.
//
// Limits (Options): a connection holds at most its share of the buffer pool;
// negotiation, TLS handshake included, must end within HandshakeTimeout; a
// reply whose client takes no bytes for WriteTimeout ends the connection; an
// IdleTimeout can end connections that send nothing; Serve serves at most
// MaxConnections at once. Before transmission a connection has no read
// buffer, so one that connects and stops costs a goroutine and a socket. The
// kernel's connections (AttachKernel) have no timeouts.
//
// Not implemented: SELECTIVETLS; structured replies, and with them
// block status, meta contexts and NBD_CMD_FLAG_DF; extended headers;
// NBD_CMD_CACHE and NBD_CMD_RESIZE (answered with NBD_EINVAL); fast zero
// (NBD_FLAG_SEND_FAST_ZERO is not advertised, NBD_CMD_FLAG_FAST_ZERO gets
// NBD_EINVAL); NBD_FLAG_ROTATIONAL; oldstyle negotiation. On Close a
// connection in option haggling is dropped rather than answered with
// NBD_REP_ERR_SHUTDOWN, and a connection in transmission stops reading, finishes
// the requests it has, and is dropped rather than answering NBD_ESHUTDOWN.
package nbd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrServerClosed is returned by Serve and ServeConn after Close.
var ErrServerClosed = errors.New("nbd: server closed")

// Discarder is implemented by a Device that can release the storage of
// sectors. The NBD server calls it for NBD_CMD_TRIM when Options.AllowDiscard
// is set, with off and length multiples of SectorSize.
//
// Discard leaks information: every sector of an encrypted volume looks random,
// but a discarded one typically becomes a hole or zeroes in the vault file, so
// anyone who can read the vault learns which sectors the filesystem considers
// free, and from that its kind and how full it is (as with dm-crypt's
// allow_discards). It is off by default for that reason.
type Discarder interface {
	// Discard declares [off, off+length) no longer needed. Its contents are
	// undefined until written again; they need not read back as zeroes.
	Discard(off, length int64) error
}

// Options configures a Server. The zero value serves a writable export
// named "" without TLS, with the default limits.
type Options struct {
	// Name is the export's canonical name. The empty name, the "default
	// export" of proto.md, always selects the export too.
	Name string
	// Description is sent to clients that ask for NBD_INFO_DESCRIPTION (and
	// in NBD_OPT_LIST). Whoever can negotiate reads it: it should not say
	// more than the export's name does.
	Description string
	// ReadOnly advertises NBD_FLAG_READ_ONLY and fails every write with NBD_EPERM.
	ReadOnly bool
	// AllowDiscard advertises NBD_FLAG_SEND_TRIM and passes trims of whole
	// sectors to the Device, which must implement Discarder. See Discarder for
	// what that reveals. Ignored when ReadOnly.
	AllowDiscard bool
	// TLS, if set, makes every connection that Serve or ServeConn negotiates
	// upgrade to TLS with NBD_OPT_STARTTLS before anything else: proto.md's
	// FORCEDTLS mode (see tls.go). TLSConfig builds one the way nbdkit and
	// qemu-nbd do. The kernel attach never negotiates and ignores it.
	TLS *tls.Config
	// MaxInFlight bounds the requests of one connection being served at once
	// (default 16).
	MaxInFlight int
	// BufferBytes bounds the memory of request buffers across all connections
	// (default 128 MiB; at least 32 MiB, the largest request).
	BufferBytes int64
	// ConnBufferBytes bounds the request buffers one connection holds at once
	// (default a quarter of BufferBytes, at least 32 MiB), so that a client
	// that sends large READs and does not read the replies cannot take the
	// whole pool from the others.
	ConnBufferBytes int64
	// MaxConnections bounds the connections Serve serves at once, from accept
	// to close, across all its listeners (default 100, as qemu's NBD server
	// since CVE-2024-7409). A connection over it is closed at once.
	MaxConnections int
	// HandshakeTimeout bounds the time from accepting a connection to its
	// transmission phase, TLS handshake included (default 10 s, as qemu-nbd's
	// --handshake-limit; negative: none). A client that has not finished
	// negotiating by then is dropped.
	HandshakeTimeout time.Duration
	// IdleTimeout, if positive, drops a connection in transmission that has
	// no request in flight and sends none for this long (default 0: never; a
	// VM or an nbdfuse mount may rightly send nothing for hours, and most
	// clients do not reconnect).
	IdleTimeout time.Duration
	// WriteTimeout drops a connection whose client takes no bytes of a reply
	// for this long (default 30 s; negative: none), which gives its request
	// buffers back to the pool.
	WriteTimeout time.Duration
	// OnError, if set, is told about errors no client sees in full: a Device
	// error (the client gets NBD_EIO), and a connection accepted by Serve that
	// ended with a protocol violation or an I/O error, or was refused over
	// MaxConnections. It may be called from several goroutines at once.
	OnError func(error)
}

const (
	defaultMaxInFlight      = 16
	defaultBufferBytes      = 128 << 20
	defaultMaxConnections   = 100
	defaultHandshakeTimeout = 10 * time.Second
	defaultWriteTimeout     = 30 * time.Second
	// shutdownGrace is how long Close lets a connection write the replies of
	// the requests it is finishing before giving up on a client that does not
	// read them.
	defaultShutdownGrace = 10 * time.Second
)

// Server serves one Device as one NBD export, to any number of connections.
// It is safe for concurrent use.
type Server struct {
	dev       Device
	size      int64
	sector    int64
	discarder Discarder // nil unless discard is allowed
	flags     uint16    // transmission flags
	opts      Options

	bufs  *bufferPool
	locks *rangeLocks

	maxRequest    int           // nbdMaxBlock; tests lower it to fuzz faster
	shutdownGrace time.Duration // defaultShutdownGrace; tests lower it

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*nbdConn]struct{}
	wg        sync.WaitGroup // Serve calls and connections
	accepted  int            // connections of Serve now open, bounded by MaxConnections
	refusing  bool           // a connection over MaxConnections was reported and none ended since

	closeOnce sync.Once
	closeErr  error
}

// NewServer returns a server for dev. It checks that dev's geometry can be
// advertised and that opts are consistent.
func NewServer(dev Device, opts Options) (*Server, error) {
	sector := int64(dev.SectorSize())
	if sector < 512 || sector > 1<<16 || sector&(sector-1) != 0 {
		return nil, fmt.Errorf("nbd: sector size %d is not a power of two from 512 to 65536", sector)
	}
	size := dev.Size()
	if size < 0 || size%sector != 0 {
		return nil, fmt.Errorf("nbd: device size %d is not a whole number of %d-byte sectors", size, sector)
	}
	if len(opts.Name) > nbdMaxString {
		return nil, fmt.Errorf("nbd: export name is %d bytes, over the protocol's %d", len(opts.Name), nbdMaxString)
	}
	if len(opts.Description) > nbdMaxString {
		return nil, fmt.Errorf("nbd: export description is %d bytes, over the protocol's %d", len(opts.Description), nbdMaxString)
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = defaultMaxInFlight
	}
	if opts.BufferBytes <= 0 {
		opts.BufferBytes = defaultBufferBytes
	}
	if opts.BufferBytes < nbdMaxBlock {
		return nil, fmt.Errorf("nbd: buffer budget of %d bytes is below the largest request, %d", opts.BufferBytes, nbdMaxBlock)
	}
	if opts.ConnBufferBytes <= 0 {
		opts.ConnBufferBytes = max(opts.BufferBytes/4, nbdMaxBlock)
	}
	if opts.ConnBufferBytes < nbdMaxBlock || opts.ConnBufferBytes > opts.BufferBytes {
		return nil, fmt.Errorf("nbd: a connection's buffer share of %d bytes is not between the largest request, %d, and the budget, %d",
			opts.ConnBufferBytes, nbdMaxBlock, opts.BufferBytes)
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = defaultMaxConnections
	}
	switch {
	case opts.HandshakeTimeout == 0:
		opts.HandshakeTimeout = defaultHandshakeTimeout
	case opts.HandshakeTimeout < 0:
		opts.HandshakeTimeout = 0
	}
	switch {
	case opts.WriteTimeout == 0:
		opts.WriteTimeout = defaultWriteTimeout
	case opts.WriteTimeout < 0:
		opts.WriteTimeout = 0
	}
	opts.IdleTimeout = max(opts.IdleTimeout, 0)
	if opts.TLS != nil {
		opts.TLS = opts.TLS.Clone()
	}
	s := &Server{
		dev:           dev,
		size:          size,
		sector:        sector,
		flags:         nbdFlagHasFlags | nbdFlagSendFlush | nbdFlagSendFUA | nbdFlagCanMultiConn,
		opts:          opts,
		bufs:          newBufferPool(opts.BufferBytes),
		locks:         newRangeLocks(),
		maxRequest:    nbdMaxBlock,
		shutdownGrace: defaultShutdownGrace,
		listeners:     make(map[net.Listener]struct{}),
		conns:         make(map[*nbdConn]struct{}),
	}
	switch {
	case opts.ReadOnly:
		s.flags |= nbdFlagReadOnly
	case opts.AllowDiscard:
		d, ok := dev.(Discarder)
		if !ok {
			return nil, fmt.Errorf("nbd: discard allowed but the device (%T) cannot discard", dev)
		}
		s.discarder = d
		s.flags |= nbdFlagSendWriteZeroes | nbdFlagSendTrim
	default:
		s.flags |= nbdFlagSendWriteZeroes
	}
	return s, nil
}

// Serve accepts connections on l and serves each in its own goroutine, until
// ctx is done or Close is called: then it stops accepting, lets its connections
// finish the requests they have read, and returns nil. If l fails for good
// (it was closed by someone else), Serve returns that error once its
// connections have ended. Either way it closes l, and no goroutine it started
// outlives it. Errors of single connections go to Options.OnError.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	var conns sync.WaitGroup
	defer conns.Wait()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	var delay time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("nbd: accept: %w", err)
			}
			// Out of file descriptors and the like: back off and retry,
			// as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
			}
			continue
		}
		delay = 0
		if !s.admit(conn) {
			continue
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer s.leave()
			if err := s.ServeConn(ctx, conn); err != nil && !errors.Is(err, ErrServerClosed) {
				s.report(fmt.Errorf("nbd: %s: %w", connName(conn), err))
			}
		}()
	}
}

// admit counts a connection Serve accepted against MaxConnections, or closes
// it if there is no room. The first refusal is reported; the next only after
// a connection has ended, so that a flood does not flood OnError too.
func (s *Server) admit(conn net.Conn) bool {
	s.mu.Lock()
	if s.accepted < s.opts.MaxConnections {
		s.accepted++
		s.mu.Unlock()
		return true
	}
	report := !s.refusing
	s.refusing = true
	s.mu.Unlock()
	conn.Close()
	if report {
		s.report(fmt.Errorf("nbd: %s refused: %d connections are open, the limit", connName(conn), s.opts.MaxConnections))
	}
	return false
}

func (s *Server) leave() {
	s.mu.Lock()
	s.accepted--
	s.refusing = false
	s.mu.Unlock()
}

// ServeConn serves one client connection, from the handshake to its end, and
// closes conn. It returns nil when the client ends the session (NBD_OPT_ABORT,
// NBD_CMD_DISC or hanging up between messages) or when ctx is done or Close is
// called; otherwise an error saying why the session was dropped.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) error {
	c, err := s.track(conn)
	if err != nil {
		return err
	}
	defer s.untrack(c)
	c.writeTimeout, c.idleTimeout = s.opts.WriteTimeout, s.opts.IdleTimeout
	stop := context.AfterFunc(ctx, c.shutdown)
	defer stop()

	if s.opts.HandshakeTimeout > 0 {
		c.setDeadline(time.Now().Add(s.opts.HandshakeTimeout))
	}
	ok, err := c.negotiate()
	if err != nil || !ok {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && !c.stopping() {
			err = fmt.Errorf("negotiation not finished within %v: %w", s.opts.HandshakeTimeout, err)
		}
		return c.finish(err)
	}
	c.setDeadline(time.Time{})
	return c.finish(c.transmit())
}

// Close stops every Serve and connection: listeners stop accepting,
// connections stop reading and finish the requests they have read. Then it
// syncs the Device and returns that error. Close does not close the Device.
// Later calls return the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		for l := range s.listeners {
			l.Close()
		}
		for c := range s.conns {
			c.shutdown()
		}
		s.mu.Unlock()
		s.wg.Wait()
		if !s.opts.ReadOnly {
			if err := s.dev.Sync(); err != nil {
				s.closeErr = fmt.Errorf("nbd: sync on close: %w", err)
			}
		}
	})
	return s.closeErr
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) report(err error) {
	if s.opts.OnError != nil {
		s.opts.OnError(err)
	}
}

// nbdUnixSendBuffer is the send buffer asked for on a Unix socket connection
// (SO_SNDBUF; the kernel doubles it and caps it at net.core.wmem_max). The
// default, about 208 KiB, is less than one 256 KiB READ reply of nbdcopy or
// qemu: a reply then goes out in two or more writes with a wait for the
// client in between, and Go parks the goroutine on every EAGAIN. 1 MiB
// removes most of those waits (4 MiB measured no better; docs/PERFORMANCE.md
// "NBD"). TCP is left alone: setting SO_SNDBUF there turns off the kernel's
// buffer autotuning.
const nbdUnixSendBuffer = 1 << 20

// track registers a connection so that Close can stop it.
func (s *Server) track(conn net.Conn) (*nbdConn, error) {
	if uc, ok := conn.(*net.UnixConn); ok {
		uc.SetWriteBuffer(nbdUnixSendBuffer) // best effort: only speed depends on it
	}
	c := &nbdConn{
		srv:      s,
		raw:      conn,
		conn:     conn,
		stop:     make(chan struct{}),
		minBlock: 1,
		share:    connShare{limit: s.opts.ConnBufferBytes},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		conn.Close()
		return nil, ErrServerClosed
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c, nil
}

func (s *Server) untrack(c *nbdConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// exportMatches reports whether a client's export name selects our export.
func (s *Server) exportMatches(name []byte) bool {
	return len(name) == 0 || string(name) == s.opts.Name
}

// connName describes a connection for an error message: by its peer, or for
// an unnamed Unix socket peer, by the socket it came in on.
func connName(conn net.Conn) string {
	if a := conn.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return "connection from " + a.String()
	}
	if a := conn.LocalAddr(); a != nil && a.String() != "" {
		return "connection on " + a.String()
	}
	return "connection"
}

// nbdConn is one client connection.
type nbdConn struct {
	srv  *Server
	raw  net.Conn      // as accepted: deadlines go to it
	conn net.Conn      // the protocol's stream: raw, or a *tls.Conn over it after NBD_OPT_STARTTLS
	r    *bufio.Reader // over conn, from the transmission phase on

	stop      chan struct{} // closed by shutdown
	stopOnce  sync.Once
	stopWrite time.Time // the write deadline once stopping; set before stop is closed

	// Limits of a negotiated connection; zero (none) for the kernel's.
	writeTimeout time.Duration
	idleTimeout  time.Duration
	share        connShare

	// Set by negotiation (or by the kernel attach).
	tls      bool   // TLS was initiated
	flags    uint16 // transmission flags
	minBlock int64  // alignment enforced; 1 unless block sizes were negotiated

	// Transmission.
	slots    chan struct{} // one token per request in flight
	inflight sync.WaitGroup
	active   atomic.Int32 // requests in flight, for the idle timeout
	wrote    bool         // a write-type request was dispatched; only the reader touches it
	wmu      sync.Mutex
	werr     error // first error writing a reply; under wmu
}

// shutdown makes the connection stop reading: a blocked read returns at once.
// Replies still being written get shutdownGrace.
func (c *nbdConn) shutdown() {
	c.stopOnce.Do(func() {
		c.stopWrite = time.Now().Add(c.srv.shutdownGrace)
		close(c.stop)
		c.raw.SetReadDeadline(time.Now())
		c.raw.SetWriteDeadline(c.stopWrite)
	})
}

func (c *nbdConn) stopping() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// setReadDeadline, setWriteDeadline and setDeadline set the connection's
// deadlines (zero: none) without undoing shutdown's: once stopping, reads end
// at once and writes by stopWrite.
func (c *nbdConn) setReadDeadline(t time.Time) {
	c.raw.SetReadDeadline(t)
	if c.stopping() {
		c.raw.SetReadDeadline(time.Now())
	}
}

func (c *nbdConn) setWriteDeadline(t time.Time) {
	c.raw.SetWriteDeadline(t)
	if c.stopping() && (t.IsZero() || t.After(c.stopWrite)) {
		c.raw.SetWriteDeadline(c.stopWrite)
	}
}

func (c *nbdConn) setDeadline(t time.Time) {
	c.setReadDeadline(t)
	c.setWriteDeadline(t)
}

// finish closes the connection and turns the way it ended into ServeConn's
// result: an end caused by shutdown is not an error. Over TLS, Close sends
// close_notify first (proto.md: shut down the TLS session, then the
// connection), under a deadline of crypto/tls's own.
func (c *nbdConn) finish(err error) error {
	c.conn.Close()
	if err != nil && c.stopping() {
		return nil
	}
	return err
}
