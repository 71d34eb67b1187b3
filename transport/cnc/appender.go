package cnc

import "runtime"

// Appender appends messages to a log buffer by the log-append protocol
// (docs/aeron-cnc.md §5): any number of appenders, in any processes, may
// share one log. Safe for concurrent use.
type Appender struct {
	Log        *Log
	SessionID  int32
	StreamID   int32
	maxPayload int
	maxMsg     int
	maxPos     int64
}

// Append results besides a position (>= 0).
const (
	AppendNotConnected        int64 = -1
	AppendBackPressured       int64 = -2
	AppendAdminAction         int64 = -3
	AppendMaxPositionExceeded int64 = -5
	AppendTooLong             int64 = -6
)

// NewAppender returns an appender for log.
func NewAppender(l *Log, sessionID, streamID int32) *Appender {
	return &Appender{Log: l, SessionID: sessionID, StreamID: streamID,
		maxPayload: l.MTU - DataHeaderLength, maxMsg: MaxMessageLength(l.TermLength),
		maxPos: int64(l.TermLength) << 31}
}

// MaxMessageLength is Aeron's largest message for a term length:
// min(term length / 8, 16 MiB).
func MaxMessageLength(termLength int) int { return min(termLength/8, 16<<20) }

// MaxPayload is the largest unfragmented message.
func (a *Appender) MaxPayload() int { return a.maxPayload }

// MaxMessage is the largest message.
func (a *Appender) MaxMessage() int { return a.maxMsg }

func alignFrame(n int) int { return align(n, FrameAlignment) }

// activeTail returns the active partition, its tail counter's offset and
// the raw tail.
func (a *Appender) activeTail() (int32, int, int, int64) {
	meta := a.Log.Meta
	termCount := LoadInt32(meta, LogOffActiveTermCount)
	idx := int(termCount % PartitionCount)
	if idx < 0 {
		idx += PartitionCount
	}
	tailOff := LogOffTailCounters + 8*idx
	return termCount, idx, tailOff, LoadInt64(meta, tailOff)
}

// Position is the position the next message would start at.
func (a *Appender) Position() int64 {
	_, _, _, raw := a.activeTail()
	return a.Log.Position(TermID(raw), TermOffset(raw, a.Log.TermLength))
}

// Append appends msg if the position is below limit. It returns the
// position after msg, or one of the negative Append* codes.
func (a *Appender) Append(msg []byte, limit int64) int64 {
	if len(msg) > a.maxMsg {
		return AppendTooLong
	}
	for attempt := 0; ; attempt++ {
		termCount, idx, tailOff, raw := a.activeTail()
		termID := TermID(raw)
		if termCount != termID-a.Log.InitialTermID {
			// Another appender is rotating the log.
			if attempt > 1000 {
				return AppendAdminAction
			}
			runtime.Gosched()
			continue
		}
		pos := a.Log.Position(termID, TermOffset(raw, a.Log.TermLength))
		if pos >= limit {
			if pos+int64(alignFrame(len(msg)+DataHeaderLength)) >= a.maxPos {
				return AppendMaxPositionExceeded
			}
			if LoadInt32(a.Log.Meta, LogOffIsConnected) == 1 {
				return AppendBackPressured
			}
			return AppendNotConnected
		}
		var res int64
		if len(msg) <= a.maxPayload {
			res = a.appendUnfragmented(idx, tailOff, msg)
		} else {
			res = a.appendFragmented(idx, tailOff, msg)
		}
		if res >= 0 || res == AppendMaxPositionExceeded {
			return res
		}
		// Tripped the end of the term: padded and rotated, go again.
	}
}

// claim reserves n aligned bytes in partition idx and returns the term
// offset, term id and resulting position, or ok=false after handling the
// end of the term.
func (a *Appender) claim(idx, tailOff, n int) (int, int32, int64, bool) {
	raw := AddInt64(a.Log.Meta, tailOff, int64(n))
	termID := TermID(raw)
	termOff := int(raw & 0xffffffff)
	end := termOff + n
	pos := a.Log.Position(termID, 0) + int64(end)
	if end > a.Log.TermLength {
		a.endOfTerm(idx, termOff, termID)
		if pos >= a.maxPos {
			return 0, 0, AppendMaxPositionExceeded, false
		}
		return 0, 0, AppendAdminAction, false
	}
	return termOff, termID, pos, true
}

func (a *Appender) endOfTerm(idx, termOff int, termID int32) {
	term := a.Log.Terms[idx]
	if termOff < a.Log.TermLength {
		pad := a.Log.TermLength - termOff
		a.writeHeader(term, termOff, pad, termID, FlagsUnfrag)
		le.PutUint16(term[termOff+FrameOffType:], FrameTypePad)
		StoreInt32(term, termOff, int32(pad))
	}
	RotateLog(a.Log, termID)
}

// RotateLog moves a log from term termID to the next: the next partition's
// tail becomes (termID+1)<<32 if it still holds the term three behind, then
// the active term count moves on (by compare-and-swap: whoever gets there
// first rotates).
func RotateLog(l *Log, termID int32) {
	meta := l.Meta
	termCount := termID - l.InitialTermID
	next := int(uint32(termCount+1) % PartitionCount)
	nextOff := LogOffTailCounters + 8*next
	expect := termID + 1 - PartitionCount
	for {
		raw := LoadInt64(meta, nextOff)
		if TermID(raw) != expect {
			break
		}
		if CasInt64(meta, nextOff, raw, int64(termID+1)<<32) {
			break
		}
	}
	CasInt32(meta, LogOffActiveTermCount, termCount, termCount+1)
}

// writeHeader stores -length first (marking the frame as being written),
// then the rest of the header from the log's default header; the final
// length is stored afterwards. Both length stores must be single 4-byte
// release stores (StoreRelease32): a plain Go store may be done byte by
// byte (it is under -race), and a reader that saw one byte of -length
// would take it for a short padding frame.
func (a *Appender) writeHeader(term []byte, off, length int, termID int32, flags uint8) {
	StoreRelease32(term, off, int32(-length))
	h := term[off : off+DataHeaderLength]
	copy(h[4:], a.Log.DefaultHeader()[4:])
	h[FrameOffFlags] = flags
	le.PutUint32(h[FrameOffTermOff:], uint32(off))
	le.PutUint32(h[FrameOffSession:], uint32(a.SessionID))
	le.PutUint32(h[FrameOffStream:], uint32(a.StreamID))
	le.PutUint32(h[FrameOffTermID:], uint32(termID))
}

func (a *Appender) appendUnfragmented(idx, tailOff int, msg []byte) int64 {
	frameLen := len(msg) + DataHeaderLength
	off, termID, pos, ok := a.claim(idx, tailOff, alignFrame(frameLen))
	if !ok {
		return pos
	}
	term := a.Log.Terms[idx]
	a.writeHeader(term, off, frameLen, termID, FlagsUnfrag)
	copy(term[off+DataHeaderLength:], msg)
	StoreRelease32(term, off, int32(frameLen))
	return pos
}

func (a *Appender) appendFragmented(idx, tailOff int, msg []byte) int64 {
	full := len(msg) / a.maxPayload
	rest := len(msg) % a.maxPayload
	total := full * (a.maxPayload + DataHeaderLength)
	if rest > 0 {
		total += alignFrame(rest + DataHeaderLength)
	}
	off, termID, pos, ok := a.claim(idx, tailOff, total)
	if !ok {
		return pos
	}
	term := a.Log.Terms[idx]
	flags := uint8(FlagBegin)
	for remaining := msg; len(remaining) > 0; {
		n := min(len(remaining), a.maxPayload)
		if n == len(remaining) {
			flags |= FlagEnd
		}
		frameLen := n + DataHeaderLength
		a.writeHeader(term, off, frameLen, termID, flags)
		copy(term[off+DataHeaderLength:], remaining[:n])
		StoreRelease32(term, off, int32(frameLen))
		off += alignFrame(frameLen)
		remaining = remaining[n:]
		flags = 0
	}
	return pos
}
