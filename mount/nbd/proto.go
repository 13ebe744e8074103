package nbd

import (
	"encoding/binary"

	"github.com/pojntfx/go-nbd/pkg/protocol"
)

// Wire constants of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md), named
// after the spec: nbdOptGo is NBD_OPT_GO, nbdRepErrUnsup is NBD_REP_ERR_UNSUP and
// so on. Where go-nbd's pkg/protocol has the value it is taken from there; the
// rest (marked "not in go-nbd") are defined here from proto.md's "Values" section.
const (
	// Handshake magics.
	nbdMagic         = protocol.NEGOTIATION_MAGIC_OLDSTYLE // 'NBDMAGIC' (INIT_PASSWD)
	nbdOptMagic      = protocol.NEGOTIATION_MAGIC_OPTION   // 'IHAVEOPT'
	nbdOptReplyMagic = protocol.NEGOTIATION_MAGIC_REPLY

	// Handshake flags (server) and client flags.
	nbdFlagFixedNewstyle  = protocol.NEGOTIATION_HANDSHAKE_FLAG_FIXED_NEWSTYLE
	nbdFlagNoZeroes       = uint16(1 << 1) // not in go-nbd
	nbdFlagCFixedNewstyle = uint32(1 << 0) // not in go-nbd
	nbdFlagCNoZeroes      = uint32(1 << 1) // not in go-nbd

	// Option types.
	nbdOptExportName      = uint32(1) // not in go-nbd
	nbdOptAbort           = protocol.NEGOTIATION_ID_OPTION_ABORT
	nbdOptList            = protocol.NEGOTIATION_ID_OPTION_LIST
	nbdOptStartTLS        = uint32(5) // not in go-nbd
	nbdOptInfo            = protocol.NEGOTIATION_ID_OPTION_INFO
	nbdOptGo              = protocol.NEGOTIATION_ID_OPTION_GO
	nbdOptStructuredReply = uint32(8)  // not in go-nbd
	nbdOptListMetaContext = uint32(9)  // not in go-nbd
	nbdOptSetMetaContext  = uint32(10) // not in go-nbd

	// Option reply types.
	nbdRepAck        = protocol.NEGOTIATION_TYPE_REPLY_ACK
	nbdRepServer     = protocol.NEGOTIATION_TYPE_REPLY_SERVER
	nbdRepInfo       = protocol.NEGOTIATION_TYPE_REPLY_INFO
	nbdRepErrUnsup   = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNSUPPORTED
	nbdRepErrPolicy  = uint32(1<<31 + 2) // not in go-nbd
	nbdRepErrInvalid = uint32(1<<31 + 3) // not in go-nbd
	nbdRepErrUnknown = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNKNOWN
	nbdRepErrTLSReqd = uint32(1<<31 + 5) // not in go-nbd

	// Information types of NBD_REP_INFO.
	nbdInfoExport      = protocol.NEGOTIATION_TYPE_INFO_EXPORT
	nbdInfoName        = protocol.NEGOTIATION_TYPE_INFO_NAME
	nbdInfoDescription = protocol.NEGOTIATION_TYPE_INFO_DESCRIPTION
	nbdInfoBlockSize   = protocol.NEGOTIATION_TYPE_INFO_BLOCKSIZE

	// Transmission flags.
	nbdFlagHasFlags        = protocol.NEGOTIATION_REPLY_FLAGS_HAS_FLAGS
	nbdFlagReadOnly        = uint16(1 << 1) // not in go-nbd
	nbdFlagSendFlush       = uint16(1 << 2) // not in go-nbd
	nbdFlagSendFUA         = uint16(1 << 3) // not in go-nbd
	nbdFlagSendTrim        = uint16(1 << 5) // not in go-nbd
	nbdFlagSendWriteZeroes = uint16(1 << 6) // not in go-nbd
	nbdFlagCanMultiConn    = protocol.NEGOTIATION_REPLY_FLAGS_CAN_MULTI_CONN

	// Transmission magics.
	nbdRequestMagic     = protocol.TRANSMISSION_MAGIC_REQUEST
	nbdSimpleReplyMagic = protocol.TRANSMISSION_MAGIC_REPLY

	// Request types.
	nbdCmdRead        = protocol.TRANSMISSION_TYPE_REQUEST_READ
	nbdCmdWrite       = protocol.TRANSMISSION_TYPE_REQUEST_WRITE
	nbdCmdDisc        = protocol.TRANSMISSION_TYPE_REQUEST_DISC
	nbdCmdFlush       = uint16(3) // not in go-nbd
	nbdCmdTrim        = uint16(4) // not in go-nbd
	nbdCmdWriteZeroes = uint16(6) // not in go-nbd

	// Command flags.
	nbdCmdFlagFUA    = uint16(1 << 0) // not in go-nbd
	nbdCmdFlagNoHole = uint16(1 << 1) // not in go-nbd

	// Error values.
	nbdEPERM  = protocol.TRANSMISSION_ERROR_EPERM
	nbdEIO    = uint32(5) // not in go-nbd
	nbdEINVAL = protocol.TRANSMISSION_ERROR_EINVAL
	nbdENOSPC = uint32(28) // not in go-nbd
)

// Sizes of fixed wire structures.
const (
	nbdRequestSize      = 28 // magic, flags, type, handle, offset, length
	nbdSimpleReplySize  = 16 // magic, error, handle
	nbdOptionHeaderSize = 16 // magic, option, length
	nbdOptReplyHdrSize  = 20 // magic, option, type, length
)

// Limits this server advertises and enforces.
const (
	// nbdMaxBlock is the largest READ, WRITE or WRITE_ZEROES length served, and
	// the maximum block size advertised: proto.md's "Block size constraints" say
	// 2^25 SHOULD NOT be treated as a denial of service.
	nbdMaxBlock = 32 << 20

	// nbdMaxString is proto.md's hard limit on strings (export names).
	nbdMaxString = 4096

	// nbdMaxOptionLen bounds the data of one option. The largest option served
	// (NBD_OPT_GO/INFO) is a name of at most nbdMaxString bytes, 6 bytes of
	// counts and a list of 16-bit information requests; 8 KiB leaves room for
	// 2045 of those. A longer option is treated as a denial of service and ends
	// the session (proto.md allows a hard disconnect for that): skipping it would
	// mean reading up to 4 GiB the client chose.
	nbdMaxOptionLen = 8 << 10
)

// decodeRequest parses a request header. It does not validate anything.
func decodeRequest(b *[nbdRequestSize]byte) protocol.TransmissionRequestHeader {
	return protocol.TransmissionRequestHeader{
		RequestMagic: binary.BigEndian.Uint32(b[0:]),
		CommandFlags: binary.BigEndian.Uint16(b[4:]),
		Type:         binary.BigEndian.Uint16(b[6:]),
		Handle:       binary.BigEndian.Uint64(b[8:]),
		Offset:       binary.BigEndian.Uint64(b[16:]),
		Length:       binary.BigEndian.Uint32(b[24:]),
	}
}

// encodeSimpleReply fills b with a simple reply header.
func encodeSimpleReply(b *[nbdSimpleReplySize]byte, r protocol.TransmissionReplyHeader) {
	binary.BigEndian.PutUint32(b[0:], r.ReplyMagic)
	binary.BigEndian.PutUint32(b[4:], r.Error)
	binary.BigEndian.PutUint64(b[8:], r.Handle)
}
