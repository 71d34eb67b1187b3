package cnc

// Message describes one whole (reassembled) message as a Reader delivers
// it. Its fields are those of transport.Header, in the same order, so one
// converts to the other for free.
type Message struct {
	SessionID int32
	StreamID  int32
	// TermID, TermOffset, ReservedValue and Flags are the first fragment's.
	TermID     int32
	TermOffset int32
	// Position is the stream position just after the message.
	Position      int64
	ReservedValue int64
	Flags         uint8
}

// Reader reads one image's log from a position, reassembling fragmented
// messages (docs/aeron-cnc.md §5). One goroutine at a time.
type Reader struct {
	Log    *Log
	pos    int64
	mask   int64
	bits   uint
	maxMsg int

	asm     []byte
	asmHdr  Message
	asmOn   bool
	Dropped uint64 // fragments dropped (no begin, or over the maximum)
}

// NewReader returns a reader of l starting at position pos.
func NewReader(l *Log, pos int64) *Reader {
	return &Reader{Log: l, pos: pos, mask: int64(l.TermLength - 1), bits: l.PositionBitsToShift(),
		maxMsg: MaxMessageLength(l.TermLength)}
}

// Position is the position of the next unread frame.
func (r *Reader) Position() int64 { return r.pos }

// HasData reports whether a frame is waiting at the position.
func (r *Reader) HasData() bool {
	idx := int((r.pos >> r.bits) % PartitionCount)
	return LoadInt32(r.Log.Terms[idx], int(r.pos&r.mask)) != 0
}

// Poll reads up to limit fragments from the current term, hands whole
// messages to handler (msg valid only during the call) and returns the
// number of fragments read. A corrupt frame stops the read with
// ErrMalformed (the position stays before it).
func (r *Reader) Poll(handler func(msg []byte, m Message), limit int) (int, error) {
	pos := r.pos
	idx := int((pos >> r.bits) % PartitionCount)
	term := r.Log.Terms[idx]
	off := int(pos & r.mask)
	start := off
	frags := 0
	var err error
	for frags < limit && off <= len(term)-DataHeaderLength {
		n := int(LoadInt32(term, off))
		if n <= 0 {
			break
		}
		aligned := alignFrame(n)
		if n < DataHeaderLength || aligned > len(term)-off {
			err = malformed("frame length %d at offset %d (term %d)", n, off, len(term))
			break
		}
		h := term[off : off+DataHeaderLength]
		flags := h[FrameOffFlags]
		typ := le.Uint16(h[FrameOffType:])
		payload := term[off+DataHeaderLength : off+n]
		off += aligned
		if typ == FrameTypePad {
			continue
		}
		frags++
		m := Message{
			SessionID: int32(le.Uint32(h[FrameOffSession:])), StreamID: int32(le.Uint32(h[FrameOffStream:])),
			TermID: int32(le.Uint32(h[FrameOffTermID:])), TermOffset: int32(le.Uint32(h[FrameOffTermOff:])),
			Position: pos + int64(off-start), ReservedValue: int64(le.Uint64(h[FrameOffReserved:])), Flags: flags,
		}
		if flags&FlagsUnfrag == FlagsUnfrag && !r.asmOn {
			handler(payload, m)
			continue
		}
		r.deliver(payload, m, handler)
	}
	r.pos = pos + int64(off-start)
	return frags, err
}

func (r *Reader) deliver(payload []byte, m Message, handler func([]byte, Message)) {
	switch {
	case m.Flags&FlagsUnfrag == FlagsUnfrag:
		if r.asmOn {
			r.Dropped++
		}
		r.asmOn = false
		handler(payload, m)
	case m.Flags&FlagBegin != 0:
		r.asm = append(r.asm[:0], payload...)
		r.asmHdr = m
		r.asmOn = true
	case !r.asmOn:
		r.Dropped++ // a middle or end without its begin (joined mid-message)
	case len(r.asm)+len(payload) > r.maxMsg:
		r.asmOn = false
		r.Dropped++
	default:
		r.asm = append(r.asm, payload...)
		if m.Flags&FlagEnd != 0 {
			r.asmOn = false
			h := r.asmHdr
			h.Position = m.Position
			handler(r.asm, h)
		}
	}
}
