package nbd

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/pojntfx/go-nbd/pkg/protocol"
)

// The handshake and option haggling of proto.md "Fixed newstyle negotiation".
// go-nbd's server.Handle does this too, but fused with its transmission loop and
// without bounds on option data, NBD_OPT_EXPORT_NAME or NO_ZEROES, so this is
// our own, on go-nbd's wire structures.

// Negotiation reads the connection directly, without a buffer: nothing the
// client sent after an option is read before that option is answered, so no
// plaintext sent after NBD_OPT_STARTTLS can be taken as if it came inside TLS,
// and a connection that never gets to transmission costs no read buffer.

var (
	errBadMagic      = errors.New("bad magic")
	errUnknownExport = errors.New("unknown export name")
	errTLSRequired   = errors.New("TLS is required")
)

// negotiate runs the handshake. It returns true when the client entered the
// transmission phase, false with a nil error when it ended the session
// cleanly (NBD_OPT_ABORT, or hanging up between options).
func (c *nbdConn) negotiate() (bool, error) {
	if err := c.writeAll(protocol.NegotiationNewstyleHeader{
		OldstyleMagic:  nbdMagic,
		OptionMagic:    nbdOptMagic,
		HandshakeFlags: nbdFlagFixedNewstyle | nbdFlagNoZeroes,
	}); err != nil {
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			return false, nil // gone before the greeting: a probe, not an error
		}
		return false, fmt.Errorf("sending handshake: %w", err)
	}
	var cf [4]byte
	if _, err := io.ReadFull(c.conn, cf[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return false, nil // a probe, or a client that gave up
		}
		return false, fmt.Errorf("reading client flags: %w", err)
	}
	clientFlags := binary.BigEndian.Uint32(cf[:])
	if unknown := clientFlags &^ (nbdFlagCFixedNewstyle | nbdFlagCNoZeroes); unknown != 0 {
		// proto.md: the server MUST drop the connection.
		return false, fmt.Errorf("unknown client flags %#x", unknown)
	}
	noZeroes := clientFlags&nbdFlagCNoZeroes != 0
	tlsRequired := c.srv.opts.TLS != nil
	if tlsRequired && clientFlags&nbdFlagCFixedNewstyle == 0 {
		// proto.md: without fixed newstyle the server must operate in
		// NOTLS mode, and this one serves only over TLS.
		return false, fmt.Errorf("client did not set NBD_FLAG_C_FIXED_NEWSTYLE, without which there is no TLS: %w", errTLSRequired)
	}

	for {
		var h [nbdOptionHeaderSize]byte
		if _, err := io.ReadFull(c.conn, h[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, fmt.Errorf("reading option: %w", err)
		}
		hdr := protocol.NegotiationOptionHeader{
			OptionMagic: binary.BigEndian.Uint64(h[0:]),
			ID:          binary.BigEndian.Uint32(h[8:]),
			Length:      binary.BigEndian.Uint32(h[12:]),
		}
		if hdr.OptionMagic != nbdOptMagic {
			return false, fmt.Errorf("option magic %#x: %w", hdr.OptionMagic, errBadMagic)
		}
		if hdr.Length > nbdMaxOptionLen {
			return false, fmt.Errorf("option %d has %d bytes of data, over the limit of %d", hdr.ID, hdr.Length, nbdMaxOptionLen)
		}
		data := make([]byte, hdr.Length)
		if _, err := io.ReadFull(c.conn, data); err != nil {
			return false, fmt.Errorf("reading option %d: %w", hdr.ID, noEOF(err))
		}

		if tlsRequired && !c.tls && hdr.ID != nbdOptStartTLS && hdr.ID != nbdOptAbort {
			// proto.md FORCEDTLS: every other option before TLS gets
			// NBD_REP_ERR_TLS_REQD; NBD_OPT_EXPORT_NAME, which cannot
			// fail, ends the session.
			if hdr.ID == nbdOptExportName {
				return false, fmt.Errorf("NBD_OPT_EXPORT_NAME before NBD_OPT_STARTTLS: %w", errTLSRequired)
			}
			if err := c.optError(hdr.ID, nbdRepErrTLSReqd, "TLS is required: send NBD_OPT_STARTTLS first"); err != nil {
				return false, fmt.Errorf("replying to option %d: %w", hdr.ID, err)
			}
			continue
		}

		var err error
		switch hdr.ID {
		case nbdOptStartTLS:
			switch {
			case !tlsRequired:
				err = c.optError(hdr.ID, nbdRepErrPolicy, "TLS is not configured on this server")
			case c.tls:
				err = c.optError(hdr.ID, nbdRepErrInvalid, "TLS is already in use")
			case len(data) != 0:
				err = c.optError(hdr.ID, nbdRepErrInvalid, "NBD_OPT_STARTTLS takes no data")
			default:
				if err = c.optReply(hdr.ID, nbdRepAck, nil); err == nil {
					if err := c.startTLS(); err != nil {
						return false, err
					}
				}
			}

		case nbdOptExportName:
			if !c.srv.exportMatches(data) {
				// This option cannot return an error: proto.md says to
				// terminate the session.
				return false, fmt.Errorf("NBD_OPT_EXPORT_NAME %q: %w", truncate(data), errUnknownExport)
			}
			c.flags, c.minBlock = c.srv.flags, 1
			reply := make([]byte, 10, 10+124)
			binary.BigEndian.PutUint64(reply[0:], uint64(c.srv.size))
			binary.BigEndian.PutUint16(reply[8:], c.flags)
			if !noZeroes {
				reply = reply[:10+124]
			}
			if _, err := c.conn.Write(reply); err != nil {
				return false, fmt.Errorf("sending export: %w", err)
			}
			return true, nil

		case nbdOptAbort:
			// proto.md: reply, but the client may already be gone.
			c.optReply(hdr.ID, nbdRepAck, nil)
			return false, nil

		case nbdOptList:
			if len(data) != 0 {
				err = c.optError(hdr.ID, nbdRepErrInvalid, "NBD_OPT_LIST takes no data")
				break
			}
			name := []byte(c.srv.opts.Name)
			b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
			b = append(b, name...)
			b = append(b, c.srv.opts.Description...)
			if err = c.optReply(hdr.ID, nbdRepServer, b); err == nil {
				err = c.optReply(hdr.ID, nbdRepAck, nil)
			}

		case nbdOptInfo, nbdOptGo:
			var entered bool
			entered, err = c.infoOrGo(hdr.ID, data)
			if err == nil && entered {
				return true, nil
			}

		default:
			// NBD_OPT_STRUCTURED_REPLY, the meta context options and
			// anything newer or unknown.
			err = c.optError(hdr.ID, nbdRepErrUnsup, "option not supported by this server")
		}
		if err != nil {
			return false, fmt.Errorf("replying to option %d: %w", hdr.ID, err)
		}
	}
}

// startTLS runs the TLS handshake as the server after NBD_OPT_STARTTLS was
// acknowledged; everything after it goes through TLS. It is bounded by the
// handshake deadline and stopped by shutdown, both set on the raw
// connection. A failed handshake ends the session (proto.md: too late to
// go on without TLS).
func (c *nbdConn) startTLS() error {
	tc := tls.Server(c.raw, c.srv.opts.TLS)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.conn, c.tls = tc, true
	return nil
}

// infoOrGo answers NBD_OPT_INFO or NBD_OPT_GO. It returns true when an
// NBD_OPT_GO succeeded and the transmission phase begins.
func (c *nbdConn) infoOrGo(opt uint32, data []byte) (bool, error) {
	// Data: 32-bit name length, name, 16-bit count, count 16-bit requests.
	if len(data) < 6 {
		return false, c.optError(opt, nbdRepErrInvalid, "option data too short")
	}
	nameLen := binary.BigEndian.Uint32(data)
	if uint64(nameLen) > uint64(len(data)-6) {
		return false, c.optError(opt, nbdRepErrInvalid, "export name longer than the option data")
	}
	name := data[4 : 4+nameLen]
	rest := data[4+nameLen:]
	count := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) != 2*count {
		return false, c.optError(opt, nbdRepErrInvalid, "information request count does not match the option length")
	}
	if !c.srv.exportMatches(name) {
		return false, c.optError(opt, nbdRepErrUnknown, "no such export")
	}
	var wantName, wantDescription, wantBlockSize bool
	for i := 0; i < count; i++ {
		switch binary.BigEndian.Uint16(rest[2*i:]) {
		case nbdInfoName:
			wantName = true
		case nbdInfoDescription:
			wantDescription = true
		case nbdInfoBlockSize:
			wantBlockSize = true
		}
	}

	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, protocol.NegotiationReplyInfo{
		Type:              nbdInfoExport,
		Size:              uint64(c.srv.size),
		TransmissionFlags: c.srv.flags,
	})
	if err := c.optReply(opt, nbdRepInfo, b.Bytes()); err != nil {
		return false, err
	}
	if wantName {
		b.Reset()
		binary.Write(&b, binary.BigEndian, protocol.NegotiationReplyNameHeader{Type: nbdInfoName})
		b.WriteString(c.srv.opts.Name)
		if err := c.optReply(opt, nbdRepInfo, b.Bytes()); err != nil {
			return false, err
		}
	}
	if wantDescription && c.srv.opts.Description != "" {
		b.Reset()
		binary.Write(&b, binary.BigEndian, protocol.NegotiationReplyDescriptionHeader{Type: nbdInfoDescription})
		b.WriteString(c.srv.opts.Description)
		if err := c.optReply(opt, nbdRepInfo, b.Bytes()); err != nil {
			return false, err
		}
	}
	// Sent whether asked for or not (proto.md lets the server volunteer
	// information); enforced only if asked for in NBD_OPT_GO.
	b.Reset()
	binary.Write(&b, binary.BigEndian, protocol.NegotiationReplyBlockSize{
		Type:               nbdInfoBlockSize,
		MinimumBlockSize:   uint32(c.srv.sector),
		PreferredBlockSize: uint32(max(4096, c.srv.sector)),
		MaximumBlockSize:   uint32(c.srv.maxRequest),
	})
	if err := c.optReply(opt, nbdRepInfo, b.Bytes()); err != nil {
		return false, err
	}
	if err := c.optReply(opt, nbdRepAck, nil); err != nil {
		return false, err
	}
	if opt != nbdOptGo {
		return false, nil
	}
	c.flags, c.minBlock = c.srv.flags, 1
	if wantBlockSize {
		c.minBlock = c.srv.sector
	}
	return true, nil
}

// optReply sends one option reply.
func (c *nbdConn) optReply(opt, typ uint32, data []byte) error {
	b := make([]byte, nbdOptReplyHdrSize, nbdOptReplyHdrSize+len(data))
	binary.BigEndian.PutUint64(b[0:], nbdOptReplyMagic)
	binary.BigEndian.PutUint32(b[8:], opt)
	binary.BigEndian.PutUint32(b[12:], typ)
	binary.BigEndian.PutUint32(b[16:], uint32(len(data)))
	_, err := c.conn.Write(append(b, data...))
	return err
}

// optError sends an error reply with a message for humans.
func (c *nbdConn) optError(opt, typ uint32, msg string) error {
	return c.optReply(opt, typ, []byte(msg))
}

// writeAll writes a fixed-size go-nbd structure in network byte order.
func (c *nbdConn) writeAll(v any) error {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.BigEndian, v); err != nil {
		return err
	}
	_, err := c.conn.Write(b.Bytes())
	return err
}

// noEOF turns an EOF inside a message into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// truncate shortens client-supplied text for an error message.
func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
