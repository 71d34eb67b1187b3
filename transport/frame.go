package transport

import "encoding/binary"

// Aeron frame codec (aeron-wire.md §1). All integers are little-endian.
// The wire enums below are append-only: never renumber them.
//
// Common header (8 bytes):
//
//	0               1               2               3
//	+---------------+---------------+---------------+---------------+
//	|                    frame_length (int32)                       |
//	+---------------+---------------+---------------+---------------+
//	|  version (0)  |     flags     |          type (int16)         |
//	+---------------+---------------+---------------+---------------+
//
// DATA / PAD header (32 bytes), payload follows:
//
//	 8 term_offset  12 session_id  16 stream_id  20 term_id  24 reserved_value (int64)
//
// SETUP (40): 8 term_offset 12 session_id 16 stream_id 20 initial_term_id
// 24 active_term_id 28 term_length 32 mtu 36 ttl.
//
// SM (36 or 44): 8 session_id 12 stream_id 16 consumption_term_id
// 20 consumption_term_offset 24 receiver_window 28 receiver_id (int64)
// [36 group_tag int64 when frame_length == 44].
//
// NAK (28): 8 session_id 12 stream_id 16 term_id 20 term_offset 24 length.
//
// RTTM (40): 8 session_id 12 stream_id 16 echo_timestamp 24 reception_delta 32 receiver_id.
//
// ERR (40 + text): 8 session_id 12 stream_id 16 receiver_id 24 group_tag
// 32 error_code 36 error_length 40 text.
//
// RSP_SETUP (20): 8 session_id 12 stream_id 16 response_session_id.

// Frame types (append-only).
const (
	typePad      int16 = 0
	typeData     int16 = 1
	typeNAK      int16 = 2
	typeSM       int16 = 3
	typeErr      int16 = 4
	typeSetup    int16 = 5
	typeRTTM     int16 = 6
	typeRes      int16 = 7
	typeRspSetup int16 = 0x0B
	typeExt      int16 = -1
)

// Frame flags.
const (
	flagBegin   uint8 = 0x80
	flagEnd     uint8 = 0x40
	flagEOS     uint8 = 0x20
	flagsUnfrag       = flagBegin | flagEnd

	smFlagSetup uint8 = 0x80 // SM: "send SETUP" (unknown session)
	smFlagEOS   uint8 = 0x40 // SM: receiver is draining / leaving

	rttmFlagReply uint8 = 0x80
	errFlagGroup  uint8 = 0x08
)

// Sizes.
const (
	frameAlign     = 32
	hdrLen         = 32 // DATA/PAD header length
	setupLen       = 40
	smLen          = 36
	smLenGroupTag  = 44
	nakLen         = 28
	rttmLen        = 40
	errHdrLen      = 40
	errMaxText     = 1023
	rspSetupLen    = 20
	maxUDPPayload  = 65504
	minTermLength  = 64 * 1024
	maxTermLength  = 1 << 30
	maxMessageCap  = 16 * 1024 * 1024
	heartbeatLen   = 32
	frameVersion   = 0
	errCodeRejectd = 13
)

var le = binary.LittleEndian

func align32(n int) int { return (n + frameAlign - 1) &^ (frameAlign - 1) }

// frame is a decoded frame of any type. Only the fields of its Type are
// meaningful. It is used by the codec tests, the fuzzer and the slow paths;
// hot paths read fields in place with the get* helpers below.
type frame struct {
	Type        int16
	Version     uint8
	Flags       uint8
	FrameLength int32

	TermOffset int32 // DATA, PAD, SETUP, NAK
	SessionID  int32
	StreamID   int32
	TermID     int32 // DATA, PAD, NAK; SM consumption_term_id
	Reserved   int64 // DATA reserved_value

	InitialTermID int32 // SETUP
	ActiveTermID  int32
	TermLength    int32
	MTU           int32
	TTL           int32

	ConsumptionOffset int32 // SM
	ReceiverWindow    int32
	ReceiverID        int64 // SM, RTTM, ERR
	GroupTag          int64 // SM (frame_length 44), ERR
	HasGroupTag       bool

	Length int32 // NAK

	EchoTimestamp  int64 // RTTM
	ReceptionDelta int64

	ErrorCode int32 // ERR
	ErrorText []byte

	ResponseSessionID int32 // RSP_SETUP

	// Payload is the DATA payload (FrameLength-32 bytes); nil for PAD and
	// heartbeats.
	Payload []byte
}

func (f *frame) isHeartbeat() bool { return f.Type == typeData && f.FrameLength == 0 }

// dropReason classifies an invalid datagram. Values index Stats counters.
type dropReason uint8

const (
	dropNone      dropReason = iota
	dropShort                // under 8 bytes, or a frame shorter than its type's minimum
	dropVersion              // version != 0
	dropUnknown              // unknown or unsupported frame type
	dropTruncated            // frame_length beyond the datagram
	dropOversized            // datagram longer than 65504, or frame_length absurd
	dropBadLength            // frame_length inconsistent with its type
	numDropReasons
)

func (r dropReason) String() string {
	switch r {
	case dropNone:
		return "ok"
	case dropShort:
		return "short"
	case dropVersion:
		return "version"
	case dropUnknown:
		return "unknown-type"
	case dropTruncated:
		return "truncated"
	case dropOversized:
		return "oversized"
	case dropBadLength:
		return "bad-length"
	}
	return "?"
}

// In-place field access.
func getFrameLength(b []byte) int32 { return int32(le.Uint32(b[0:])) }
func getVersion(b []byte) uint8     { return b[4] }
func getFlags(b []byte) uint8       { return b[5] }
func getType(b []byte) int16        { return int16(le.Uint16(b[6:])) }
func getI32(b []byte, off int) int32 {
	return int32(le.Uint32(b[off:]))
}
func getI64(b []byte, off int) int64 { return int64(le.Uint64(b[off:])) }
func putI32(b []byte, off int, v int32) {
	le.PutUint32(b[off:], uint32(v))
}
func putI64(b []byte, off int, v int64) { le.PutUint64(b[off:], uint64(v)) }

func putCommon(b []byte, length int32, flags uint8, typ int16) {
	putI32(b, 0, length)
	b[4] = frameVersion
	b[5] = flags
	le.PutUint16(b[6:], uint16(typ))
}

// putDataHeader writes a DATA/PAD header into b[:32].
func putDataHeader(b []byte, length int32, flags uint8, typ int16, termOffset, sessionID, streamID, termID int32, reserved int64) {
	putI32(b, 4, 0) // version, flags, type written below; frame_length last
	b[4] = frameVersion
	b[5] = flags
	le.PutUint16(b[6:], uint16(typ))
	putI32(b, 8, termOffset)
	putI32(b, 12, sessionID)
	putI32(b, 16, streamID)
	putI32(b, 20, termID)
	putI64(b, 24, reserved)
	putI32(b, 0, length)
}

func encodeHeartbeat(b []byte, flags uint8, termOffset, sessionID, streamID, termID int32) []byte {
	b = b[:heartbeatLen]
	putDataHeader(b, 0, flags, typeData, termOffset, sessionID, streamID, termID, 0)
	return b
}

func encodeSetup(b []byte, termOffset, sessionID, streamID, initialTermID, activeTermID, termLength, mtu, ttl int32) []byte {
	b = b[:setupLen]
	putCommon(b, setupLen, 0, typeSetup)
	putI32(b, 8, termOffset)
	putI32(b, 12, sessionID)
	putI32(b, 16, streamID)
	putI32(b, 20, initialTermID)
	putI32(b, 24, activeTermID)
	putI32(b, 28, termLength)
	putI32(b, 32, mtu)
	putI32(b, 36, ttl)
	return b
}

func encodeSM(b []byte, flags uint8, sessionID, streamID, termID, termOffset, window int32, receiverID int64) []byte {
	b = b[:smLen]
	putCommon(b, smLen, flags, typeSM)
	putI32(b, 8, sessionID)
	putI32(b, 12, streamID)
	putI32(b, 16, termID)
	putI32(b, 20, termOffset)
	putI32(b, 24, window)
	putI64(b, 28, receiverID)
	return b
}

func encodeNAK(b []byte, sessionID, streamID, termID, termOffset, length int32) []byte {
	b = b[:nakLen]
	putCommon(b, nakLen, 0, typeNAK)
	putI32(b, 8, sessionID)
	putI32(b, 12, streamID)
	putI32(b, 16, termID)
	putI32(b, 20, termOffset)
	putI32(b, 24, length)
	return b
}

func encodeRTTM(b []byte, flags uint8, sessionID, streamID int32, echo, delta, receiverID int64) []byte {
	b = b[:rttmLen]
	putCommon(b, rttmLen, flags, typeRTTM)
	putI32(b, 8, sessionID)
	putI32(b, 12, streamID)
	putI64(b, 16, echo)
	putI64(b, 24, delta)
	putI64(b, 32, receiverID)
	return b
}

// appendFrame encodes f (as decoded by parseDatagram) onto dst, including
// alignment padding for DATA frames, so that re-encoding a decoded datagram
// reproduces it byte for byte.
func appendFrame(dst []byte, f *frame) []byte {
	start := len(dst)
	grow := func(n int) []byte {
		for len(dst) < start+n {
			dst = append(dst, 0)
		}
		return dst[start : start+n]
	}
	switch f.Type {
	case typeData, typePad:
		n := hdrLen
		if f.Type == typeData && f.FrameLength > hdrLen {
			n = align32(int(f.FrameLength))
		}
		b := grow(n)
		putDataHeader(b, f.FrameLength, f.Flags, f.Type, f.TermOffset, f.SessionID, f.StreamID, f.TermID, f.Reserved)
		b[4] = f.Version
		copy(b[hdrLen:], f.Payload)
	case typeSetup:
		b := grow(setupLen)
		encodeSetup(b, f.TermOffset, f.SessionID, f.StreamID, f.InitialTermID, f.ActiveTermID, f.TermLength, f.MTU, f.TTL)
		b[5] = f.Flags
		putI32(b, 0, f.FrameLength)
	case typeSM:
		n := smLen
		if f.HasGroupTag {
			n = smLenGroupTag
		}
		b := grow(n)
		encodeSM(b, f.Flags, f.SessionID, f.StreamID, f.TermID, f.ConsumptionOffset, f.ReceiverWindow, f.ReceiverID)
		if f.HasGroupTag {
			putI64(b, 36, f.GroupTag)
		}
		putI32(b, 0, f.FrameLength)
	case typeNAK:
		b := grow(nakLen)
		encodeNAK(b, f.SessionID, f.StreamID, f.TermID, f.TermOffset, f.Length)
		b[5] = f.Flags
		putI32(b, 0, f.FrameLength)
	case typeRTTM:
		b := grow(rttmLen)
		encodeRTTM(b, f.Flags, f.SessionID, f.StreamID, f.EchoTimestamp, f.ReceptionDelta, f.ReceiverID)
		putI32(b, 0, f.FrameLength)
	case typeErr:
		b := grow(errHdrLen + len(f.ErrorText))
		putCommon(b, f.FrameLength, f.Flags, typeErr)
		putI32(b, 8, f.SessionID)
		putI32(b, 12, f.StreamID)
		putI64(b, 16, f.ReceiverID)
		putI64(b, 24, f.GroupTag)
		putI32(b, 32, f.ErrorCode)
		putI32(b, 36, int32(len(f.ErrorText)))
		copy(b[errHdrLen:], f.ErrorText)
	case typeRspSetup:
		b := grow(rspSetupLen)
		putCommon(b, f.FrameLength, f.Flags, typeRspSetup)
		putI32(b, 8, f.SessionID)
		putI32(b, 12, f.StreamID)
		putI32(b, 16, f.ResponseSessionID)
	}
	if f.Type != typeData && f.Type != typePad && int(f.FrameLength) > len(dst)-start {
		grow(int(f.FrameLength)) // control frame longer than its fields
	}
	return dst
}

// walkDatagram validates a datagram and calls visit for every frame in it,
// in order, with the frame's bytes as they are on the wire (for a PAD only
// its 32-byte header; for a DATA frame frame_length bytes). It returns
// dropNone when the whole datagram is well formed; otherwise nothing at all
// is visited and the reason is returned (a datagram is accepted or dropped
// as a whole, so a receiver never acts on half of a bad datagram).
//
// Rules (aeron-wire.md §1, §9): datagrams under 8 bytes or over 65504 are
// dropped; every frame must have version 0; DATA/PAD need 32 bytes, SETUP
// 40, SM 36 (and frame_length ≤ datagram), NAK 28, RTTM 40. DATA frames are
// walked back to back at 32-byte alignment until fewer than 8 bytes remain
// or a frame_length ≤ 0 is met; a heartbeat is a 32-byte datagram with
// frame_length 0. A PAD is the last frame of its datagram and may claim more
// than the datagram holds. Control frames are one per datagram.
func walkDatagram(b []byte, visit func(typ int16, f []byte)) dropReason {
	if r := checkDatagram(b); r != dropNone {
		return r
	}
	if visit == nil {
		return dropNone
	}
	forEachChecked(b, visit)
	return dropNone
}

func checkDatagram(b []byte) dropReason {
	n := len(b)
	if n < 8 {
		return dropShort
	}
	if n > maxUDPPayload {
		return dropOversized
	}
	off := 0
	frames := 0
	for n-off >= 8 {
		f := b[off:]
		if getVersion(f) != frameVersion {
			return dropVersion
		}
		fl := getFrameLength(f)
		typ := getType(f)
		if frames > 0 && fl <= 0 {
			return dropNone // end of the batched frames
		}
		switch typ {
		case typeData, typePad:
			if len(f) < hdrLen {
				if frames > 0 {
					return dropNone // trailing bytes after whole frames
				}
				return dropShort
			}
			if fl == 0 && typ == typeData {
				if frames == 0 && n == heartbeatLen {
					return dropNone // heartbeat
				}
				if frames == 0 {
					return dropBadLength
				}
				return dropNone
			}
			if fl < 0 {
				if frames == 0 {
					return dropBadLength
				}
				return dropNone
			}
			if fl < hdrLen {
				return dropBadLength
			}
			if typ == typePad {
				if fl > maxTermLength {
					return dropOversized
				}
				return dropNone // PAD ends the datagram
			}
			if int(fl) > len(f) {
				return dropTruncated
			}
			frames++
			off += align32(int(fl))
		case typeSetup, typeSM, typeNAK, typeRTTM, typeErr, typeRspSetup:
			if frames > 0 {
				return dropBadLength // control frames never follow data
			}
			return checkControl(typ, fl, f)
		default:
			if frames == 0 {
				return dropUnknown
			}
			return dropUnknown
		}
	}
	return dropNone
}

func checkControl(typ int16, fl int32, f []byte) dropReason {
	min := 0
	switch typ {
	case typeSetup:
		min = setupLen
	case typeSM:
		min = smLen
	case typeNAK:
		min = nakLen
	case typeRTTM:
		min = rttmLen
	case typeErr:
		min = errHdrLen
	case typeRspSetup:
		min = rspSetupLen
	}
	if len(f) < min {
		return dropShort
	}
	if fl < int32(min) {
		return dropBadLength
	}
	if int(fl) > len(f) {
		return dropTruncated
	}
	if typ == typeErr {
		el := getI32(f, 36)
		if el < 0 || el > errMaxText || int(errHdrLen+el) > len(f) {
			return dropBadLength
		}
	}
	return dropNone
}

// forEachChecked walks a datagram already accepted by checkDatagram.
func forEachChecked(b []byte, visit func(typ int16, f []byte)) {
	n := len(b)
	off := 0
	for n-off >= 8 {
		f := b[off:]
		fl := getFrameLength(f)
		typ := getType(f)
		if off > 0 && fl <= 0 {
			return
		}
		switch typ {
		case typeData, typePad:
			if len(f) < hdrLen {
				return
			}
			if fl == 0 && typ == typeData && off == 0 && n == heartbeatLen {
				visit(typ, f[:hdrLen])
				return
			}
			if fl <= 0 {
				return
			}
			if typ == typePad {
				visit(typ, f[:hdrLen])
				return
			}
			visit(typ, f[:fl])
			off += align32(int(fl))
		default:
			visit(typ, f[:fl])
			return
		}
	}
}

// decodeFrame decodes one frame as visited by walkDatagram.
func decodeFrame(typ int16, b []byte) frame {
	f := frame{Type: typ, Version: getVersion(b), Flags: getFlags(b), FrameLength: getFrameLength(b)}
	switch typ {
	case typeData, typePad:
		f.TermOffset = getI32(b, 8)
		f.SessionID = getI32(b, 12)
		f.StreamID = getI32(b, 16)
		f.TermID = getI32(b, 20)
		f.Reserved = getI64(b, 24)
		if typ == typeData && f.FrameLength > hdrLen {
			f.Payload = b[hdrLen:f.FrameLength]
		}
	case typeSetup:
		f.TermOffset = getI32(b, 8)
		f.SessionID = getI32(b, 12)
		f.StreamID = getI32(b, 16)
		f.InitialTermID = getI32(b, 20)
		f.ActiveTermID = getI32(b, 24)
		f.TermLength = getI32(b, 28)
		f.MTU = getI32(b, 32)
		f.TTL = getI32(b, 36)
	case typeSM:
		f.SessionID = getI32(b, 8)
		f.StreamID = getI32(b, 12)
		f.TermID = getI32(b, 16)
		f.ConsumptionOffset = getI32(b, 20)
		f.ReceiverWindow = getI32(b, 24)
		f.ReceiverID = getI64(b, 28)
		if f.FrameLength >= smLenGroupTag && len(b) >= smLenGroupTag {
			f.GroupTag = getI64(b, 36)
			f.HasGroupTag = true
		}
	case typeNAK:
		f.SessionID = getI32(b, 8)
		f.StreamID = getI32(b, 12)
		f.TermID = getI32(b, 16)
		f.TermOffset = getI32(b, 20)
		f.Length = getI32(b, 24)
	case typeRTTM:
		f.SessionID = getI32(b, 8)
		f.StreamID = getI32(b, 12)
		f.EchoTimestamp = getI64(b, 16)
		f.ReceptionDelta = getI64(b, 24)
		f.ReceiverID = getI64(b, 32)
	case typeErr:
		f.SessionID = getI32(b, 8)
		f.StreamID = getI32(b, 12)
		f.ReceiverID = getI64(b, 16)
		f.GroupTag = getI64(b, 24)
		f.ErrorCode = getI32(b, 32)
		el := getI32(b, 36)
		f.ErrorText = b[errHdrLen : errHdrLen+el]
	case typeRspSetup:
		f.SessionID = getI32(b, 8)
		f.StreamID = getI32(b, 12)
		f.ResponseSessionID = getI32(b, 16)
	}
	return f
}

// parseDatagram decodes every frame of a datagram, or returns the reason it
// is dropped.
func parseDatagram(b []byte) ([]frame, dropReason) {
	var out []frame
	r := walkDatagram(b, func(typ int16, f []byte) { out = append(out, decodeFrame(typ, f)) })
	if r != dropNone {
		return nil, r
	}
	return out, dropNone
}
