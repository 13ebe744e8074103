package nbd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/pojntfx/go-nbd/pkg/protocol"
)

// The transmission phase. One goroutine (the caller of transmit) reads requests
// and WRITE payloads; each valid request then runs in its own goroutine, at most
// MaxInFlight per connection, with its buffer from the server's bufferPool.
// Replies are written under one mutex, header and payload in one writev.

// errDisc ends the request loop when the client sends NBD_CMD_DISC.
var errDisc = errors.New("NBD_CMD_DISC")

// errIdle ends a connection that was idle for Options.IdleTimeout.
var errIdle = errors.New("idle")

// transmitReadBuffer is the reader's buffer in the transmission phase: many
// request headers, or a small WRITE with its payload, per read.
const transmitReadBuffer = 64 << 10

// writeChunk is the most of a reply written under one write deadline: with
// Options.WriteTimeout, a client must take a chunk per timeout, not a whole
// 32 MiB reply.
const writeChunk = 1 << 20

// zeroChunk is the largest buffer one WRITE_ZEROES request uses; longer ones
// are written a chunk at a time.
const zeroChunk = 1 << 20

// transmit serves requests until the client disconnects or the connection is
// shut down, then waits for the requests in flight and syncs if anything was
// written.
func (c *nbdConn) transmit() error {
	c.r = bufio.NewReaderSize(c.conn, transmitReadBuffer)
	c.slots = make(chan struct{}, c.srv.opts.MaxInFlight)
	err := c.readRequests()
	c.inflight.Wait()
	if errors.Is(err, errDisc) {
		err = nil
	}
	if c.wrote {
		if serr := c.srv.dev.Sync(); serr != nil {
			serr = fmt.Errorf("sync at end of connection: %w", serr)
			c.srv.report(serr)
			err = errors.Join(err, serr)
		}
	}
	return err
}

func (c *nbdConn) readRequests() error {
	for {
		var b [nbdRequestSize]byte
		if err := c.readHeader(b[:]); err != nil {
			if werr := c.replyErr(); werr != nil {
				return werr // the reply writer closed the connection
			}
			if c.stopping() || errors.Is(err, io.EOF) {
				return nil // shut down, or the client hung up between requests
			}
			if errors.Is(err, errIdle) {
				return fmt.Errorf("no request for %v: %w", c.idleTimeout, err)
			}
			return fmt.Errorf("reading request: %w", err)
		}
		req := decodeRequest(&b)
		if req.RequestMagic != nbdRequestMagic {
			return fmt.Errorf("request magic %#x: %w", req.RequestMagic, errBadMagic)
		}
		if req.Type == nbdCmdDisc {
			return errDisc
		}
		if err := c.dispatch(req); err != nil {
			if c.stopping() {
				return nil
			}
			return err
		}
	}
}

// readHeader reads the next request header. With an idle timeout, a
// connection that has nothing in flight and sends nothing for that long ends
// with errIdle; one that stops in the middle of a header ends with the
// timeout.
func (c *nbdConn) readHeader(b []byte) error {
	if c.idleTimeout <= 0 {
		_, err := io.ReadFull(c.r, b)
		return err
	}
	for {
		c.setReadDeadline(time.Now().Add(c.idleTimeout))
		n, err := io.ReadFull(c.r, b)
		if err == nil {
			return nil
		}
		var ne net.Error
		if n > 0 || !errors.As(err, &ne) || !ne.Timeout() || c.stopping() {
			return err
		}
		if c.active.Load() == 0 {
			return errIdle
		}
	}
}

// dispatch validates a request, reads its payload and starts it. An invalid
// request is answered here with its error. A non-nil result ends the connection.
func (c *nbdConn) dispatch(req protocol.TransmissionRequestHeader) error {
	if req.Type == nbdCmdWrite && req.Length > uint32(c.srv.maxRequest) {
		// Skipping the payload would mean reading up to 4 GiB the client
		// chose; proto.md allows a hard disconnect for that.
		return fmt.Errorf("WRITE of %d bytes is over the limit of %d", req.Length, c.srv.maxRequest)
	}
	if errno := c.check(req); errno != 0 {
		if req.Type == nbdCmdWrite {
			if _, err := io.CopyN(io.Discard, c.r, int64(req.Length)); err != nil {
				return fmt.Errorf("skipping WRITE payload: %w", noEOF(err))
			}
		}
		return c.reply(req.Handle, errno, nil)
	}

	select {
	case c.slots <- struct{}{}:
	case <-c.stop:
		return errStopped
	}
	buf, err := c.buffer(req)
	if err != nil {
		<-c.slots
		return err
	}
	if req.Type == nbdCmdWrite && len(buf) > 0 {
		if c.idleTimeout > 0 {
			c.setReadDeadline(time.Now().Add(c.idleTimeout))
		}
		if _, err := io.ReadFull(c.r, buf); err != nil {
			c.putBuffer(buf)
			<-c.slots
			return fmt.Errorf("reading WRITE payload: %w", noEOF(err))
		}
	}

	var lock *rangeLock
	if req.Length > 0 && req.Type != nbdCmdFlush {
		s := c.srv.sector
		start := int64(req.Offset) / s * s
		end := (int64(req.Offset) + int64(req.Length) + s - 1) / s * s
		lock = c.srv.locks.enqueue(start, end, req.Type != nbdCmdRead)
	}
	if req.Type != nbdCmdRead {
		c.wrote = true
	}
	c.inflight.Add(1)
	c.active.Add(1)
	go c.run(req, buf, lock)
	return nil
}

// buffer returns the buffer a request needs, or nil.
func (c *nbdConn) buffer(req protocol.TransmissionRequestHeader) ([]byte, error) {
	n := 0
	switch req.Type {
	case nbdCmdRead, nbdCmdWrite:
		n = int(req.Length)
	case nbdCmdWriteZeroes:
		n = int(min(req.Length, zeroChunk))
	}
	if n == 0 {
		return nil, nil
	}
	// The connection's share first, then the pool: a connection at its
	// share waits without holding a place in the pool's queue.
	share := int64(classSize(sizeClass(n)))
	if err := c.share.acquire(share, c.stop); err != nil {
		return nil, err
	}
	b, err := c.srv.bufs.get(n, c.stop)
	if err != nil {
		c.share.release(share)
	}
	return b, err
}

// putBuffer gives back a buffer from buffer, to the pool and to the share.
func (c *nbdConn) putBuffer(b []byte) {
	c.srv.bufs.put(b)
	c.share.release(int64(classSize(sizeClass(cap(b)))))
}

// check validates a request against the export and the negotiated flags and
// returns the NBD error for it, or 0. The order follows proto.md "Error values".
func (c *nbdConn) check(req protocol.TransmissionRequestHeader) uint32 {
	allowed := uint16(0)
	if c.flags&nbdFlagSendFUA != 0 {
		allowed |= nbdCmdFlagFUA // valid on every command
	}
	switch req.Type {
	case nbdCmdRead, nbdCmdWrite:
	case nbdCmdFlush:
		if c.flags&nbdFlagSendFlush == 0 || req.CommandFlags&^allowed != 0 {
			return nbdEINVAL
		}
		// Offset and length are reserved; the kernel does not always
		// zero them, so they are ignored.
		return 0
	case nbdCmdTrim:
		if c.flags&nbdFlagReadOnly != 0 {
			return nbdEPERM
		}
		if c.flags&nbdFlagSendTrim == 0 {
			return nbdEINVAL
		}
	case nbdCmdWriteZeroes:
		if c.flags&nbdFlagReadOnly != 0 {
			return nbdEPERM
		}
		if c.flags&nbdFlagSendWriteZeroes == 0 {
			return nbdEINVAL
		}
		allowed |= nbdCmdFlagNoHole
	default:
		return nbdEINVAL // unknown command, or one not advertised
	}
	if req.CommandFlags&^allowed != 0 {
		return nbdEINVAL
	}
	write := req.Type != nbdCmdRead
	if write && c.flags&nbdFlagReadOnly != 0 {
		return nbdEPERM
	}
	size, off, n := uint64(c.srv.size), req.Offset, uint64(req.Length)
	if off > size || n > size-off {
		if req.Type == nbdCmdWrite || req.Type == nbdCmdWriteZeroes {
			return nbdENOSPC
		}
		return nbdEINVAL
	}
	if m := uint64(c.minBlock); off%m != 0 || n%m != 0 {
		return nbdEINVAL
	}
	if req.Type == nbdCmdRead && n > uint64(c.srv.maxRequest) {
		return nbdEINVAL
	}
	return 0
}

// run executes a dispatched request and replies to it.
func (c *nbdConn) run(req protocol.TransmissionRequestHeader, buf []byte, lock *rangeLock) {
	defer c.inflight.Done()
	defer c.active.Add(-1)
	defer func() { <-c.slots }()
	if lock != nil {
		c.srv.locks.wait(lock)
	}
	errno := c.srv.execute(req, buf)
	if lock != nil {
		c.srv.locks.release(lock)
	}
	var payload []byte
	if req.Type == nbdCmdRead && errno == 0 {
		payload = buf
	}
	c.reply(req.Handle, errno, payload) // a failed write ends the reader too
	if buf != nil {
		c.putBuffer(buf)
	}
}

// execute performs a validated request on the Device and returns its NBD error.
func (s *Server) execute(req protocol.TransmissionRequestHeader, buf []byte) uint32 {
	off := int64(req.Offset)
	n := int64(req.Length)
	fua := req.CommandFlags&nbdCmdFlagFUA != 0
	var err error
	var op string
	switch req.Type {
	case nbdCmdRead:
		op = "read"
		if len(buf) > 0 {
			var got int
			got, err = s.dev.ReadAt(buf, off)
			if err == io.EOF && got == len(buf) {
				err = nil
			}
		}
	case nbdCmdWrite:
		op = "write"
		if len(buf) > 0 {
			err = s.write(buf, off)
		}
	case nbdCmdWriteZeroes:
		// Always an encrypted write of zeroes, never a discard: a
		// Discarder need not read back zeroes, and zeroes must be
		// indistinguishable from data in the vault.
		op = "write zeroes"
		for done := int64(0); done < n && err == nil; {
			chunk := buf[:min(int64(len(buf)), n-done)]
			clear(chunk) // WriteAt may have encrypted in place
			err = s.write(chunk, off+done)
			done += int64(len(chunk))
		}
	case nbdCmdTrim:
		op = "discard"
		start := (off + s.sector - 1) / s.sector * s.sector
		end := (off + n) / s.sector * s.sector
		if end > start {
			err = s.discarder.Discard(start, end-start)
		} else {
			fua = false // nothing was written
		}
	case nbdCmdFlush:
		op, off, n = "flush", 0, 0
		if !s.opts.ReadOnly {
			err = s.dev.Sync()
		}
	}
	if err == nil && fua && req.Type != nbdCmdRead && req.Type != nbdCmdFlush {
		op = op + " (FUA sync)"
		err = s.dev.Sync()
	}
	if err == nil {
		return 0
	}
	s.report(fmt.Errorf("nbd: %s of %d bytes at offset %d: %w", op, n, off, err))
	return errnoFor(err)
}

// write hands a request's own buffer to the Device. The buffer is not used
// again before it returns to the pool, so an in-place writer may clobber it.
func (s *Server) write(p []byte, off int64) error {
	_, err := writeOwned(s.dev, p, off)
	return err
}

func (c *nbdConn) replyErr() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.werr
}

// errnoFor maps a Device error to an NBD error (proto.md "Error values").
func errnoFor(err error) uint32 {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) {
		return nbdENOSPC
	}
	return nbdEIO
}

// reply sends a simple reply, with payload for a successful READ. Replies from
// concurrent requests never interleave. After one fails, the connection is
// closed (which also ends the reader) and every later reply fails at once.
func (c *nbdConn) reply(handle uint64, errno uint32, payload []byte) error {
	var h [nbdSimpleReplySize]byte
	encodeSimpleReply(&h, protocol.TransmissionReplyHeader{
		ReplyMagic: nbdSimpleReplyMagic,
		Error:      errno,
		Handle:     handle,
	})
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if err := c.writeReply(h[:], payload); err != nil {
		c.werr = fmt.Errorf("sending reply: %w", err)
		c.raw.Close()
	}
	return c.werr
}

// writeReply writes a reply header and its payload. With a write timeout,
// the client must take each writeChunk of it within the timeout.
func (c *nbdConn) writeReply(h, payload []byte) error {
	if c.writeTimeout <= 0 {
		if len(payload) == 0 {
			_, err := c.conn.Write(h)
			return err
		}
		bufs := net.Buffers{h, payload}
		_, err := bufs.WriteTo(c.conn)
		return err
	}
	first := min(len(payload), writeChunk)
	c.setWriteDeadline(time.Now().Add(c.writeTimeout))
	bufs := net.Buffers{h, payload[:first]}
	if _, err := bufs.WriteTo(c.conn); err != nil {
		return err
	}
	for p := payload[first:]; len(p) > 0; {
		n := min(len(p), writeChunk)
		c.setWriteDeadline(time.Now().Add(c.writeTimeout))
		if _, err := c.conn.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}
