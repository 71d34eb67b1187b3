package cnc

// Log buffers: one file per publication (and per network image) holding
// three term partitions followed by a metadata page. See docs/aeron-cnc.md §5.
//
// Log metadata (at 3 × term_length, 4096 bytes):
//
//	  0 term tail counters [3] (int64 each: term_id<<32 | term_offset)
//	 24 active term count (int32)
//	128 end-of-stream position (int64)
//	136 is_connected (int32)
//	140 active transport count (int32)
//	256 correlation id (int64)        264 initial term id (int32)
//	268 default frame header length   272 mtu            276 term length
//	280 page size                     284 publication window
//	288 receiver window               292..312 socket buffer lengths (7 × int32)
//	316 max resend
//	320 default frame header (128 bytes; 32 used)
//	448 entity tag (int64)  456 response correlation id  464 linger ns
//	472 untethered window limit timeout ns   480 untethered resting timeout ns
//	488 group, is_response, rejoin, reliable, sparse, signal_eos,
//	    spies_simulate_connection, tether (one byte each)

import "math/bits"

const (
	PartitionCount       = 3
	LogMetadataLength    = 4096
	TermMinLength        = 64 * 1024
	TermMaxLength        = 1 << 30
	PageMinSize          = 4096
	PageMaxSize          = 1 << 30
	FrameAlignment       = 32
	DataHeaderLength     = 32
	MaxUDPPayload        = 65504
	defaultHeaderMaxSize = 128

	LogOffTailCounters     = 0
	LogOffActiveTermCount  = 24
	LogOffEndOfStream      = 128
	LogOffIsConnected      = 136
	LogOffActiveTransports = 140
	LogOffCorrelationID    = 256
	LogOffInitialTermID    = 264
	LogOffDefaultHdrLen    = 268
	LogOffMTU              = 272
	LogOffTermLength       = 276
	LogOffPageSize         = 280
	LogOffPublicationWin   = 284
	LogOffReceiverWin      = 288
	LogOffSocketSndbuf     = 292
	LogOffOSDefaultSndbuf  = 296
	LogOffOSMaxSndbuf      = 300
	LogOffSocketRcvbuf     = 304
	LogOffOSDefaultRcvbuf  = 308
	LogOffOSMaxRcvbuf      = 312
	LogOffMaxResend        = 316
	LogOffDefaultHeader    = 320
	LogOffEntityTag        = 448
	LogOffResponseCorrID   = 456
	LogOffLingerNs         = 464
	LogOffUntetheredWinNs  = 472
	LogOffUntetheredRestNs = 480
	LogOffFlags            = 488 // 8 single-byte booleans
)

// Data frame header (32 bytes, little-endian):
//
//	0 frame_length (int32, stored last, negative while being written)
//	4 version (u8)  5 flags (u8: 0x80 begin, 0x40 end, 0x20 eos)  6 type (u16: 0 pad, 1 data)
//	8 term_offset  12 session_id  16 stream_id  20 term_id  24 reserved_value (int64)
const (
	FrameTypePad  = 0
	FrameTypeData = 1
	FlagBegin     = 0x80
	FlagEnd       = 0x40
	FlagEOS       = 0x20
	FlagsUnfrag   = FlagBegin | FlagEnd

	FrameOffLength   = 0
	FrameOffVersion  = 4
	FrameOffFlags    = 5
	FrameOffType     = 6
	FrameOffTermOff  = 8
	FrameOffSession  = 12
	FrameOffStream   = 16
	FrameOffTermID   = 20
	FrameOffReserved = 24
)

// LogLength is the file length of a log with the given term length and
// page size.
func LogLength(termLength, pageSize int) int {
	return align(PartitionCount*termLength+LogMetadataLength, pageSize)
}

// Log is a validated view of a mapped log buffer.
type Log struct {
	Terms      [PartitionCount][]byte
	Meta       []byte // the metadata page
	TermLength int
	// Copied from the metadata at open; the driver never changes them.
	InitialTermID int32
	MTU           int
	PageSize      int
	bitsToShift   uint
}

// OpenLog validates a log buffer image and returns its view. Lengths are
// taken from the file size and cross-checked with the metadata.
func OpenLog(b []byte) (*Log, error) {
	if !aligned8(b) {
		return nil, malformed("log buffer not 8-byte aligned")
	}
	if len(b) < PartitionCount*TermMinLength+LogMetadataLength {
		return nil, malformed("log buffer %d bytes too short", len(b))
	}
	// The metadata sits right after the three terms; the file may be page
	// padded beyond it, so derive the term length from the metadata and
	// check it against the file.
	termLength := -1
	for t := TermMinLength; t <= TermMaxLength && PartitionCount*t+LogMetadataLength <= len(b); t <<= 1 {
		off := PartitionCount * t
		if int(int32(le.Uint32(b[off+LogOffTermLength:]))) == t {
			termLength = t
			break
		}
	}
	if termLength < 0 {
		return nil, malformed("log buffer of %d bytes: no metadata with a matching term length", len(b))
	}
	meta := b[PartitionCount*termLength : PartitionCount*termLength+LogMetadataLength]
	l := &Log{
		Meta:          meta,
		TermLength:    termLength,
		InitialTermID: int32(le.Uint32(meta[LogOffInitialTermID:])),
		MTU:           int(int32(le.Uint32(meta[LogOffMTU:]))),
		PageSize:      int(int32(le.Uint32(meta[LogOffPageSize:]))),
	}
	if !isPow2(l.PageSize) || l.PageSize < PageMinSize || l.PageSize > PageMaxSize {
		return nil, malformed("log page size %d", l.PageSize)
	}
	if LogLength(termLength, l.PageSize) > len(b) {
		return nil, malformed("log file %d bytes < %d for term length %d", len(b), LogLength(termLength, l.PageSize), termLength)
	}
	if l.MTU < DataHeaderLength+FrameAlignment || l.MTU > MaxUDPPayload || l.MTU%FrameAlignment != 0 {
		return nil, malformed("log mtu %d", l.MTU)
	}
	if h := int(int32(le.Uint32(meta[LogOffDefaultHdrLen:]))); h != DataHeaderLength {
		return nil, malformed("default frame header length %d", h)
	}
	for i := range l.Terms {
		l.Terms[i] = b[i*termLength : (i+1)*termLength : (i+1)*termLength]
	}
	for s := uint(0); 1<<s < termLength; s++ {
		l.bitsToShift = s + 1
	}
	return l, nil
}

// PositionBitsToShift is log2(term length).
func (l *Log) PositionBitsToShift() uint { return l.bitsToShift }

// RawTail is an acquire load of partition i's tail counter.
func (l *Log) RawTail(i int) int64 { return LoadInt64(l.Meta, LogOffTailCounters+8*i) }

// ActiveTermCount is an acquire load of the active term count.
func (l *Log) ActiveTermCount() int32 { return LoadInt32(l.Meta, LogOffActiveTermCount) }

// IsConnected reports the driver's connected flag for the publication.
func (l *Log) IsConnected() bool { return LoadInt32(l.Meta, LogOffIsConnected) == 1 }

// EndOfStreamPosition is an acquire load of the end-of-stream position.
func (l *Log) EndOfStreamPosition() int64 { return LoadInt64(l.Meta, LogOffEndOfStream) }

// DefaultHeader returns the 32-byte default data header.
func (l *Log) DefaultHeader() []byte {
	return l.Meta[LogOffDefaultHeader : LogOffDefaultHeader+DataHeaderLength]
}

// TermID and TermOffset split a raw tail; the offset is capped at the term
// length (a tail may run past the end while a publisher pads).
func TermID(rawTail int64) int32 { return int32(rawTail >> 32) }

// TermOffset is the term offset of a raw tail, capped at termLength.
func TermOffset(rawTail int64, termLength int) int {
	o := rawTail & 0xffffffff
	if o > int64(termLength) {
		return termLength
	}
	return int(o)
}

// Position computes a stream position.
func (l *Log) Position(termID int32, termOffset int) int64 {
	return int64(termID-l.InitialTermID)<<l.bitsToShift + int64(termOffset)
}

// Frame is one frame found in a term.
type Frame struct {
	Offset     int
	Length     int // frame_length (unaligned)
	Flags      uint8
	Type       uint16
	TermOffset int32
	SessionID  int32
	StreamID   int32
	TermID     int32
	Reserved   int64
	Payload    []byte
}

// ReadFrame decodes the frame at off in term. ok is false if no complete
// frame is there yet (length <= 0). A length that cannot be right
// (shorter than a header, past the term end, misaligned offset) is
// ErrMalformed.
func ReadFrame(term []byte, off int) (Frame, bool, error) {
	if off < 0 || off%FrameAlignment != 0 || off+DataHeaderLength > len(term) {
		return Frame{}, false, malformed("frame offset %d in term of %d", off, len(term))
	}
	n := int(LoadInt32(term, off))
	if n <= 0 {
		return Frame{}, false, nil
	}
	if n < DataHeaderLength || off+align(n, FrameAlignment) > len(term) {
		return Frame{}, false, malformed("frame length %d at offset %d (term %d)", n, off, len(term))
	}
	h := term[off:]
	return Frame{
		Offset:     off,
		Length:     n,
		Flags:      h[FrameOffFlags],
		Type:       le.Uint16(h[FrameOffType:]),
		TermOffset: int32(le.Uint32(h[FrameOffTermOff:])),
		SessionID:  int32(le.Uint32(h[FrameOffSession:])),
		StreamID:   int32(le.Uint32(h[FrameOffStream:])),
		TermID:     int32(le.Uint32(h[FrameOffTermID:])),
		Reserved:   int64(le.Uint64(h[FrameOffReserved:])),
		Payload:    term[off+DataHeaderLength : off+n],
	}, true, nil
}

// ScanTerm returns the complete frames of term from offset 0 up to the
// first gap.
func ScanTerm(term []byte) ([]Frame, error) {
	var out []Frame
	for off := 0; off < len(term); {
		f, ok, err := ReadFrame(term, off)
		if err != nil {
			return out, err
		}
		if !ok {
			break
		}
		out = append(out, f)
		off += align(f.Length, FrameAlignment)
	}
	return out, nil
}

// LogParams describe a new log buffer (driver side).
type LogParams struct {
	TermLength, PageSize, MTU int
	InitialTermID             int32
	SessionID, StreamID       int32
	CorrelationID             int64
	// TermWindow is recorded as the publication window.
	TermWindow int
	// Connected seeds the is-connected flag (IPC: a subscriber exists).
	Connected bool
	// StartPosition is where the log starts (a 32-aligned position; 0
	// for a fresh stream): the active term count and its tail counter
	// point there, as Aeron's driver lays out a publication created with
	// init-term-id, term-id and term-offset.
	StartPosition int64
}

// InitLog lays out a fresh log buffer in b (zeroed, LogLength bytes):
// metadata, default header and the initial tail counters, so that a
// publisher's first rotation into each partition finds the term id it
// expects.
func InitLog(b []byte, p LogParams) (*Log, error) {
	if !isPow2(p.TermLength) || p.TermLength < TermMinLength || p.TermLength > TermMaxLength {
		return nil, malformed("term length %d", p.TermLength)
	}
	if len(b) < LogLength(p.TermLength, p.PageSize) {
		return nil, malformed("log buffer %d bytes < %d", len(b), LogLength(p.TermLength, p.PageSize))
	}
	meta := b[PartitionCount*p.TermLength:]
	le.PutUint64(meta[LogOffCorrelationID:], uint64(p.CorrelationID))
	le.PutUint32(meta[LogOffInitialTermID:], uint32(p.InitialTermID))
	le.PutUint32(meta[LogOffDefaultHdrLen:], DataHeaderLength)
	le.PutUint32(meta[LogOffMTU:], uint32(p.MTU))
	le.PutUint32(meta[LogOffTermLength:], uint32(p.TermLength))
	le.PutUint32(meta[LogOffPageSize:], uint32(p.PageSize))
	le.PutUint32(meta[LogOffPublicationWin:], uint32(p.TermWindow))
	le.PutUint64(meta[LogOffEndOfStream:], 1<<63-1)
	le.PutUint32(meta[LogOffActiveTransports:], 0)
	h := meta[LogOffDefaultHeader:]
	h[FrameOffVersion] = 0
	h[FrameOffFlags] = FlagsUnfrag
	le.PutUint16(h[FrameOffType:], FrameTypeData)
	le.PutUint32(h[FrameOffSession:], uint32(p.SessionID))
	le.PutUint32(h[FrameOffStream:], uint32(p.StreamID))
	le.PutUint32(h[FrameOffTermID:], uint32(p.InitialTermID))
	shift := uint(bits.TrailingZeros(uint(p.TermLength)))
	if p.StartPosition < 0 || p.StartPosition%FrameAlignment != 0 || p.StartPosition>>shift > 1<<31-1 {
		return nil, malformed("start position %d", p.StartPosition)
	}
	count := int32(p.StartPosition >> shift)
	active := int(count % PartitionCount)
	termID := p.InitialTermID + count
	startOff := p.StartPosition & int64(p.TermLength-1)
	le.PutUint64(meta[LogOffTailCounters+8*active:], uint64(int64(termID)<<32|startOff))
	for i := 1; i < PartitionCount; i++ {
		// The partition after the active one expects the term id three
		// terms before the one it will hold next.
		le.PutUint64(meta[LogOffTailCounters+8*((active+i)%PartitionCount):], uint64(int64(termID+int32(i)-PartitionCount)<<32))
	}
	le.PutUint32(meta[LogOffActiveTermCount:], uint32(count))
	if p.Connected {
		StoreInt32(meta, LogOffIsConnected, 1)
	}
	return OpenLog(b)
}

// WriteFrames copies frames, a run of whole frames, into term at off as a
// receiver writes a run of received frames: every byte but the first
// frame's length first, then that length with an atomic store, so a reader
// at off sees the run only once all of it is there (a reader reaches the
// later frames only through the first). The length slot at off must read
// as not written (≤ 0) until then, and the run must fit in the term.
func WriteFrames(term []byte, off int, frames []byte) {
	if len(frames) < DataHeaderLength {
		return
	}
	copy(term[off+4:off+len(frames)], frames[4:])
	StoreRelease32(term, off, int32(le.Uint32(frames)))
}
