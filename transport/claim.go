package transport

// BufferClaim is a region of a publication's log claimed by TryClaim for
// zero-copy writing. Write the message into Buffer, then Commit (or Abort,
// which turns it into padding the subscriber skips).
type BufferClaim struct {
	p      *Publication
	frame  []byte
	newPos int64
}

// Buffer returns the claimed payload bytes.
func (c *BufferClaim) Buffer() []byte {
	if c.p == nil {
		return nil
	}
	return c.frame[hdrLen:]
}

// Commit publishes the claimed message.
func (c *BufferClaim) Commit() error {
	p := c.p
	if p == nil {
		return ErrClosed
	}
	c.p = nil
	p.producerPos.Store(c.newPos)
	p.offered++
	p.mu.Unlock()
	p.media.afterAppend()
	return nil
}

// Abort releases the claim; the region becomes a PAD frame.
func (c *BufferClaim) Abort() error {
	p := c.p
	if p == nil {
		return ErrClosed
	}
	c.p = nil
	le.PutUint16(c.frame[6:], uint16(typePad))
	p.producerPos.Store(c.newPos)
	p.mu.Unlock()
	p.media.afterAppend()
	return nil
}

// TryClaim claims length bytes (at most MaxPayloadLength: a claimed message
// is never fragmented) for zero-copy writing and returns the position the
// message will end at, with the same refusals as Offer. While a claim is
// open the publication's other offers wait: Commit or Abort promptly, from
// any goroutine, exactly once.
func (p *Publication) TryClaim(length int, c *BufferClaim) (int64, error) {
	if p.closed.Load() {
		return PublicationClosed, ErrClosed
	}
	if length < 0 || length > p.maxPayload {
		return AdminAction, ErrMessageTooLarge
	}
	p.mu.Lock()
	if code, err := p.admitLocked(length); err != nil {
		p.mu.Unlock()
		return code, err
	}
	frame, newPos := p.app.claim(length)
	c.p, c.frame, c.newPos = p, frame, newPos
	return newPos, nil // p.mu stays locked until Commit or Abort
}

// claim reserves an unfragmented frame of length payload bytes (PAD first
// if it does not fit the term) and returns the frame, header written.
func (a *termAppender) claim(length int) ([]byte, int64) {
	l := a.log
	n := align32(hdrLen + length)
	off := l.termOffset(a.pos)
	if int(off)+n > int(l.termLen) {
		term := l.termAt(a.pos)
		putDataHeader(term[off:], l.termLen-off, flagsUnfrag, typePad, off, a.sessionID, a.streamID, l.termID(a.pos), 0)
		a.pos = l.termStart(a.pos) + int64(l.termLen)
		off = 0
	}
	term := l.termAt(a.pos)
	frame := term[off : int(off)+hdrLen+length]
	clear(term[int(off)+hdrLen : int(off)+n]) // payload and alignment padding
	putDataHeader(frame, int32(hdrLen+length), flagsUnfrag, typeData, off, a.sessionID, a.streamID, l.termID(a.pos), 0)
	a.pos += int64(n)
	return frame, a.pos
}
