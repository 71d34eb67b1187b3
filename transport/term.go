package transport

import "math/bits"

// Log buffer (aeron-wire.md §3): 3 partitions of termLen bytes in one slice.
//
//	position   = int64(termId − initialTermId) << shift + termOffset
//	termId     = initialTermId + int32(position >> shift)
//	termOffset = position & (termLen − 1)
//	partition  = (position >> shift) mod 3
//
// Frames are 32-aligned; a frame_length ≤ 0 means "not written yet".
type logBuffer struct {
	buf           []byte
	termLen       int32
	shift         uint
	initialTermID int32
}

func newLogBuffer(termLen, initialTermID int32) *logBuffer {
	return &logBuffer{
		buf:           make([]byte, 3*int(termLen)),
		termLen:       termLen,
		shift:         uint(bits.TrailingZeros32(uint32(termLen))),
		initialTermID: initialTermID,
	}
}

// partitionBuf returns the term buffer holding position pos.
func (l *logBuffer) termAt(pos int64) []byte {
	p := int((pos >> l.shift) % 3)
	t := int(l.termLen)
	return l.buf[p*t : (p+1)*t : (p+1)*t]
}

func (l *logBuffer) termOffset(pos int64) int32 { return int32(pos & int64(l.termLen-1)) }
func (l *logBuffer) termID(pos int64) int32     { return l.initialTermID + int32(pos>>l.shift) }

// position returns the position of (termID, termOffset), and false when
// termID is before initialTermID (termCount < 0).
func (l *logBuffer) position(termID, termOffset int32) (int64, bool) {
	tc := termID - l.initialTermID
	if tc < 0 {
		return 0, false
	}
	return int64(tc)<<l.shift + int64(termOffset), true
}

// termStart returns the position of the start of pos's term.
func (l *logBuffer) termStart(pos int64) int64 { return pos &^ int64(l.termLen-1) }

// maxMessageLength = min(T/8, 16 MiB).
func maxMessageLength(termLen int32) int { return min(int(termLen)/8, maxMessageCap) }

// framedLength is the aligned length a message of msgLen bytes takes in a
// term when fragmented at maxPayload bytes.
func framedLength(msgLen, maxPayload int) int {
	if msgLen <= maxPayload {
		return align32(hdrLen + msgLen)
	}
	full := msgLen / maxPayload
	rest := msgLen % maxPayload
	n := full * align32(hdrLen+maxPayload)
	if rest > 0 {
		n += align32(hdrLen + rest)
	}
	return n
}

// maxPosition is the largest position a log can reach (2^31 terms).
func (l *logBuffer) maxPosition() int64 { return int64(1<<31-1) << l.shift }

// termAppender writes messages at the tail of a log (the publication
// side). It is not safe for concurrent use; the owner serialises offers.
type termAppender struct {
	log        *logBuffer
	sessionID  int32
	streamID   int32
	maxPayload int
	pos        int64 // tail position: where the next frame goes
}

// required returns the position after appending a message of msgLen
// bytes, including a PAD to the end of the term if the message does not
// fit in the current one.
func (a *termAppender) required(msgLen int) int64 {
	n := int64(framedLength(msgLen, a.maxPayload))
	off := int64(a.log.termOffset(a.pos))
	if off+n > int64(a.log.termLen) {
		return a.log.termStart(a.pos) + int64(a.log.termLen) + n
	}
	return a.pos + n
}

// append writes msg (fragmenting it) and returns the new tail position. The
// caller checked the limit with required. Headers are written with
// frame_length last; readers are bounded by a position published after the
// append, so plain stores suffice.
func (a *termAppender) append(msg []byte, reserved int64) int64 {
	l := a.log
	n := framedLength(len(msg), a.maxPayload)
	off := l.termOffset(a.pos)
	if int(off)+n > int(l.termLen) {
		term := l.termAt(a.pos)
		putDataHeader(term[off:], l.termLen-off, flagsUnfrag, typePad, off, a.sessionID, a.streamID, l.termID(a.pos), 0)
		a.pos = l.termStart(a.pos) + int64(l.termLen)
		off = 0
	}
	term := l.termAt(a.pos)
	termID := l.termID(a.pos)
	if len(msg) <= a.maxPayload {
		end := int(off) + hdrLen + len(msg)
		copy(term[int(off)+hdrLen:], msg)
		clear(term[end : int(off)+align32(hdrLen+len(msg))]) // alignment padding goes on the wire: zero it
		putDataHeader(term[off:], int32(hdrLen+len(msg)), flagsUnfrag, typeData, off, a.sessionID, a.streamID, termID, reserved)
		a.pos += int64(align32(hdrLen + len(msg)))
		return a.pos
	}
	flags := flagBegin
	rest := msg
	for len(rest) > 0 {
		chunk := min(len(rest), a.maxPayload)
		if chunk == len(rest) {
			flags |= flagEnd
		}
		copy(term[int(off)+hdrLen:], rest[:chunk])
		clear(term[int(off)+hdrLen+chunk : int(off)+align32(hdrLen+chunk)])
		putDataHeader(term[off:], int32(hdrLen+chunk), flags, typeData, off, a.sessionID, a.streamID, termID, reserved)
		off += int32(align32(hdrLen + chunk))
		rest = rest[chunk:]
		flags = 0
	}
	a.pos = l.termStart(a.pos) + int64(off)
	return a.pos
}

// assembler rebuilds fragmented messages (aeron-wire.md §3 Reassembly).
type assembler struct {
	buf      []byte
	active   bool
	next     int64 // position expected for the next fragment
	first    Header
	maxBytes int
}

// readLog delivers messages from log between *pos and limit, consuming at
// most fragLimit frames, and returns the number of frames consumed. *pos
// advances past every consumed frame (PADs included). msg slices point into
// the log or into the assembler's buffer and are only valid during the
// call.
func readLog(l *logBuffer, pos *int64, limit int64, fragLimit int, asm *assembler, sessionID, streamID int32, handler func([]byte, Header)) (frames, msgs int) {
	p := *pos
	for frames < fragLimit && p < limit {
		term := l.termAt(p)
		off := l.termOffset(p)
		fl := getFrameLength(term[off:])
		if fl <= 0 {
			break // not written yet (cannot happen below limit, defensive)
		}
		typ := getType(term[off:])
		frames++
		next := p + int64(align32(int(fl)))
		if typ == typePad && int(off)+int(fl) <= int(l.termLen) {
			p = next
			continue
		}
		if fl < hdrLen || int(off)+int(fl) > int(l.termLen) {
			// Corrupt frame: skip to the end of the term.
			asm.active = false
			p = l.termStart(p) + int64(l.termLen)
			continue
		}
		f := term[off : int(off)+int(fl)]
		flags := getFlags(f)
		payload := f[hdrLen:]
		switch {
		case flags&flagsUnfrag == flagsUnfrag:
			asm.active = false
			h := Header{SessionID: sessionID, StreamID: streamID, TermID: getI32(f, 20), TermOffset: off, Position: next, ReservedValue: getI64(f, 24), Flags: flags}
			msgs++
			handler(payload, h)
		case flags&flagBegin != 0:
			asm.buf = append(asm.buf[:0], payload...)
			asm.active = true
			asm.next = next
			asm.first = Header{SessionID: sessionID, StreamID: streamID, TermID: getI32(f, 20), TermOffset: off, ReservedValue: getI64(f, 24), Flags: flags}
		default:
			if !asm.active || asm.next != p {
				asm.active = false
				break
			}
			if asm.maxBytes > 0 && len(asm.buf)+len(payload) > asm.maxBytes {
				asm.active = false
				break
			}
			asm.buf = append(asm.buf, payload...)
			asm.next = next
			if flags&flagEnd != 0 {
				asm.active = false
				h := asm.first
				h.Position = next
				msgs++
				handler(asm.buf, h)
			}
		}
		p = next
	}
	*pos = p
	return frames, msgs
}
