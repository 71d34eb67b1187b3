package transport

import (
	"errors"
	"fmt"
)

// Frame-level access for a media driver front (transport/mediadriver):
// its clients write and read Aeron log buffers whose frames are laid out
// exactly as this package's logs are (aeron-wire.md §3), so when a
// client's log has the same term length and initial term id as the
// embedded publication or image, runs of whole frames move between the
// two at the same term offsets with one copy, instead of being parsed and
// re-appended message by message.

// ErrBadFrame: AppendFrames met a frame that is not a well-formed DATA or
// PAD frame at its place; nothing from it on was appended.
var ErrBadFrame = errors.New("transport: malformed frame")

// InitialTermID is the initial term id of the publication's log.
func (p *Publication) InitialTermID() int32 { return p.log.initialTermID }

// TermLength is the term length of the publication's log.
func (p *Publication) TermLength() int { return int(p.log.termLen) }

// AppendFrames appends frames, a run of whole frames as a client wrote
// them into a log of the same term length and initial term id as this
// publication's, starting at position pos, which must be the
// publication's position (the frames must not cross the end of pos's
// term). It copies the longest prefix that fits under the flow-control
// limit, checks every copied frame (length, alignment, type DATA or PAD,
// within the term and the MTU) and rewrites the header fields that tie it
// to the stream (session, stream, term id, term offset), so whatever the
// client wrote, what goes on the wire is well formed. It returns the
// number of bytes appended (the new position is pos+n) and, when nothing
// was appended, why: ErrNotConnected, ErrBackPressured, ErrClosed,
// ErrMaxPositionExceeded, or ErrBadFrame when the first frame is
// malformed (a malformed frame after good ones ends the run; the next
// call reports it). Messages of the frames count as offered.
func (p *Publication) AppendFrames(pos int64, frames []byte) (int, error) {
	if p.closed.Load() {
		return 0, ErrClosed
	}
	p.mu.Lock()
	n, err := p.appendFramesLocked(pos, frames)
	if n > 0 {
		p.producerPos.Store(p.app.pos)
	}
	p.mu.Unlock()
	if n > 0 {
		p.media.afterAppend()
	}
	return n, err
}

func (p *Publication) appendFramesLocked(pos int64, frames []byte) (int, error) {
	l := p.log
	if pos != p.app.pos {
		return 0, fmt.Errorf("%w: position %d is not the publication's %d", ErrBadFrame, pos, p.app.pos)
	}
	limit, connected := p.media.limit()
	if !connected {
		p.notConnected++
		return 0, ErrNotConnected
	}
	off := int(l.termOffset(pos))
	termRoom := int64(int(l.termLen) - off)
	if pos >= l.maxPosition() {
		return 0, ErrMaxPositionExceeded
	}
	room := min(int64(len(frames)), termRoom, limit-pos, l.maxPosition()-pos)
	// cut: the limit, not the frames, ends what may be appended now.
	cut := room < int64(len(frames)) && room < termRoom
	if room <= 0 && cut {
		p.backPressure.Add(1)
		return 0, ErrBackPressured
	}
	if room <= 0 {
		return 0, fmt.Errorf("%w: %d bytes at term offset %d", ErrBadFrame, len(frames), off)
	}
	dst := l.termAt(pos)[off : off+int(room)]
	copy(dst, frames)
	termID := l.termID(pos)
	n := 0
	bad := false
	for n+hdrLen <= len(dst) {
		f := dst[n:]
		fl := int(getFrameLength(f))
		typ := getType(f)
		a := align32(fl)
		if fl >= hdrLen && a > len(f) && cut {
			break // appended once the limit moves
		}
		if fl < hdrLen || a > len(f) || (typ != typeData && typ != typePad) || (typ == typeData && fl-hdrLen > p.maxPayload) {
			bad = true
			break
		}
		putI32(f, 8, int32(off+n))
		putI32(f, 12, p.sessionID)
		putI32(f, 16, p.streamID)
		putI32(f, 20, termID)
		if typ == typeData && getFlags(f)&flagEnd != 0 {
			p.offered++
		}
		n += a
	}
	if n == 0 {
		if bad || !cut {
			return 0, fmt.Errorf("%w: at term offset %d", ErrBadFrame, off)
		}
		p.backPressure.Add(1)
		return 0, ErrBackPressured
	}
	p.app.pos = pos + int64(n)
	return n, nil
}

// FrameBlock is a run of whole frames an image received, in its log: the
// frames start at Position (term offset Position mod TermLength of term
// InitialTermID + Position / TermLength) and do not cross the term's end.
type FrameBlock struct {
	SessionID     int32
	InitialTermID int32
	TermLength    int32
	Position      int64
	// Frames is valid only during the handler call.
	Frames []byte
}

// PollFrames hands each image's received frames, a block at a time (at
// most one per image per call), to handler, which returns how many bytes
// of the block it took: 0 ≤ n ≤ len(Frames), on a frame boundary. The
// image's position advances by n, as Poll's would past those frames.
// Returns the number of bytes taken. Poll and PollFrames must not be mixed
// on one subscription, nor called concurrently.
func (s *Subscription) PollFrames(handler func(b FrameBlock) int) int {
	if s.closed.Load() {
		return 0
	}
	imgs := *s.images.Load()
	total := 0
	var ended []*subImage
	for _, si := range imgs {
		limit := si.limit.Load()
		if si.pos < limit {
			l := si.log
			off := l.termOffset(si.pos)
			end := min(int64(l.termLen), int64(off)+limit-si.pos)
			term := l.termAt(si.pos)
			n := handler(FrameBlock{SessionID: si.sessionID, InitialTermID: l.initialTermID, TermLength: l.termLen,
				Position: si.pos, Frames: term[off:end:end]})
			if n > 0 {
				n = min(n, int(end)-int(off)) &^ (frameAlign - 1)
				si.pos += int64(n)
				si.asm.active = false
				si.posPub.Store(si.pos)
				si.src.polled(si)
				total += n
			}
		}
		if si.src.ended(si) {
			ended = append(ended, si)
		}
	}
	for _, si := range ended {
		s.endImage(si)
	}
	return total
}
