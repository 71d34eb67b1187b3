package cnc

// Message is one whole (reassembled) message as a Reader delivers it.
type Message struct {
	SessionID, StreamID int32
	// TermID, TermOffset, Flags and Reserved are the first fragment's.
	TermID, TermOffset int32
	Flags              uint8
	Reserved           int64
	// Position is the stream position just after the message.
	Position int64
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
	for frags < limit && off < len(term) {
		f, ok, ferr := ReadFrame(term, off)
		if ferr != nil {
			err = ferr
			break
		}
		if !ok {
			break
		}
		off += alignFrame(f.Length)
		if f.Type == FrameTypePad {
			continue
		}
		frags++
		r.deliver(f, pos+int64(off-start), handler)
	}
	r.pos = pos + int64(off-start)
	return frags, err
}

func (r *Reader) deliver(f Frame, endPos int64, handler func([]byte, Message)) {
	m := Message{SessionID: f.SessionID, StreamID: f.StreamID, TermID: f.TermID, TermOffset: f.TermOffset,
		Flags: f.Flags, Reserved: f.Reserved, Position: endPos}
	switch {
	case f.Flags&FlagsUnfrag == FlagsUnfrag:
		if r.asmOn {
			r.Dropped++
		}
		r.asmOn = false
		handler(f.Payload, m)
	case f.Flags&FlagBegin != 0:
		r.asm = append(r.asm[:0], f.Payload...)
		r.asmHdr = m
		r.asmOn = true
	case !r.asmOn:
		r.Dropped++ // a middle or end without its begin (joined mid-message)
	case len(r.asm)+len(f.Payload) > r.maxMsg:
		r.asmOn = false
		r.Dropped++
	default:
		r.asm = append(r.asm, f.Payload...)
		if f.Flags&FlagEnd != 0 {
			r.asmOn = false
			h := r.asmHdr
			h.Position = endPos
			handler(r.asm, h)
		}
	}
}
