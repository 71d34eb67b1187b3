package aeronclient

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// Publication appends messages to a log buffer the driver sends from (UDP)
// or its subscribers read (IPC), by Aeron's log-append protocol: any number
// of publications, in any processes, may share one log.
type Publication struct {
	c              *Client
	channel        string
	streamID       int32
	sessionID      int32
	registrationID int64
	exclusive      bool

	mapping    *cnc.Mapping
	log        *cnc.Log
	limit      []byte // publisher-limit counter slot
	termLen    int
	maxPayload int
	maxMsg     int
	maxPos     int64
	bits       uint
	initial    int32

	closed   atomic.Bool
	inflight atomic.Int32
}

var _ interface {
	Offer([]byte) (int64, error)
	Position() int64
	IsConnected() bool
	Close() error
} = (*Publication)(nil)

// AddPublication adds a (shared) publication on channel and stream.
func (c *Client) AddPublication(channel string, streamID int32) (*Publication, error) {
	return c.addPublication(channel, streamID, false)
}

// AddExclusivePublication adds a publication whose log no other publication
// shares (its own session id).
func (c *Client) AddExclusivePublication(channel string, streamID int32) (*Publication, error) {
	return c.addPublication(channel, streamID, true)
}

func (c *Client) addPublication(channel string, streamID int32, exclusive bool) (*Publication, error) {
	typ := int32(cnc.CmdAddPublication)
	if exclusive {
		typ = cnc.CmdAddExclusivePublication
	}
	_, resp, err := c.request(typ, func(corr int64) func([]byte) []byte {
		return cnc.PublicationCommand{Correlated: cnc.Correlated{ClientID: c.clientID, CorrelationID: corr},
			StreamID: streamID, Channel: channel}.Encode
	})
	if err != nil {
		return nil, fmt.Errorf("aeronclient: add publication %s stream %d: %w", channel, streamID, err)
	}
	r, err := cnc.DecodePublicationReady(resp.msg)
	if err != nil {
		return nil, err
	}
	p, err := c.mapPublication(r, channel, exclusive)
	if err != nil {
		// Tell the driver we will not use it.
		_ = c.send(cnc.CmdRemovePublication, cnc.RemoveCommand{Correlated: cnc.Correlated{ClientID: c.clientID,
			CorrelationID: c.cnc.ToDriver.NextCorrelationID()}, RegistrationID: r.RegistrationID}.Encode)
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		p.release(true)
		return nil, transport.ErrClosed
	}
	c.pubs[p] = struct{}{}
	c.mu.Unlock()
	return p, nil
}

func (c *Client) mapLog(name string) (*cnc.Mapping, *cnc.Log, error) {
	if !filepath.IsAbs(name) {
		name = filepath.Join(c.cfg.Dir, name)
	}
	m, err := cnc.MapFile(name)
	if err != nil {
		return nil, nil, fmt.Errorf("aeronclient: log buffer: %w", err)
	}
	l, err := cnc.OpenLog(m.Data)
	if err != nil {
		_ = m.Close()
		return nil, nil, fmt.Errorf("aeronclient: log buffer %s: %w", name, err)
	}
	return m, l, nil
}

func (c *Client) mapPublication(r cnc.PublicationReady, channel string, exclusive bool) (*Publication, error) {
	m, l, err := c.mapLog(r.LogFile)
	if err != nil {
		return nil, err
	}
	slot, err := c.cnc.Counters.Slot(r.PositionLimitCounter)
	if err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("aeronclient: publication limit counter: %w", err)
	}
	maxMsg := l.TermLength / 8
	if maxMsg > 16<<20 {
		maxMsg = 16 << 20
	}
	return &Publication{
		c: c, channel: channel, streamID: r.StreamID, sessionID: r.SessionID,
		registrationID: r.RegistrationID, exclusive: exclusive,
		mapping: m, log: l, limit: slot, termLen: l.TermLength,
		maxPayload: l.MTU - cnc.DataHeaderLength, maxMsg: maxMsg,
		maxPos: int64(l.TermLength) << 31, bits: l.PositionBitsToShift(), initial: l.InitialTermID,
	}, nil
}

// Offer appends msg and returns the stream position after it. Refusals
// return (negative code, sentinel) like transport.Publication.Offer:
// transport.ErrNotConnected, ErrBackPressured, ErrClosed,
// ErrMaxPositionExceeded, ErrMessageTooLarge. It never blocks. Safe for
// concurrent use.
func (p *Publication) Offer(msg []byte) (int64, error) {
	p.inflight.Add(1)
	defer p.inflight.Add(-1)
	if p.closed.Load() || p.c.dead.Load() {
		return transport.PublicationClosed, p.closedErr()
	}
	if len(msg) > p.maxMsg {
		return transport.PublicationClosed, fmt.Errorf("%w: %d > %d", transport.ErrMessageTooLarge, len(msg), p.maxMsg)
	}
	meta := p.log.Meta
	for attempt := 0; ; attempt++ {
		limit := cnc.LoadInt64(p.limit, 0)
		termCount := cnc.LoadInt32(meta, cnc.LogOffActiveTermCount)
		idx := int(termCount % cnc.PartitionCount)
		if idx < 0 {
			idx += cnc.PartitionCount
		}
		tailOff := cnc.LogOffTailCounters + 8*idx
		raw := cnc.LoadInt64(meta, tailOff)
		termID := cnc.TermID(raw)
		termOff := cnc.TermOffset(raw, p.termLen)
		if termCount != termID-p.initial {
			// Another publisher is rotating the log: try again.
			if attempt > 1000 {
				return transport.AdminAction, fmt.Errorf("%w: log rotation in progress", transport.ErrBackPressured)
			}
			runtime.Gosched()
			continue
		}
		pos := int64(termID-p.initial)<<p.bits + int64(termOff)
		if pos >= limit {
			return p.backPressure(pos, len(msg))
		}
		var res int64
		if len(msg) <= p.maxPayload {
			res = p.appendUnfragmented(idx, tailOff, msg)
		} else {
			res = p.appendFragmented(idx, tailOff, msg)
		}
		switch {
		case res >= 0:
			return res, nil
		case res == transport.MaxPositionExceeded:
			return res, transport.ErrMaxPositionExceeded
		}
		// Tripped the end of the term: padded and rotated, go again.
	}
}

func (p *Publication) backPressure(pos int64, n int) (int64, error) {
	if pos+int64(alignFrame(n+cnc.DataHeaderLength)) >= p.maxPos {
		return transport.MaxPositionExceeded, transport.ErrMaxPositionExceeded
	}
	if cnc.LoadInt32(p.log.Meta, cnc.LogOffIsConnected) == 1 {
		return transport.BackPressured, transport.ErrBackPressured
	}
	return transport.NotConnected, transport.ErrNotConnected
}

func alignFrame(n int) int { return (n + cnc.FrameAlignment - 1) &^ (cnc.FrameAlignment - 1) }

// claim reserves n aligned bytes in partition idx and returns the term
// offset and term id, or ok=false after handling the end of the term.
func (p *Publication) claim(idx, tailOff, n int) (int, int32, int64, bool) {
	meta := p.log.Meta
	// Atomic add even for exclusive publications: Offer may be called
	// concurrently.
	raw := cnc.AddInt64(meta, tailOff, int64(n))
	termID := cnc.TermID(raw)
	termOff := int(raw & 0xffffffff)
	end := termOff + n
	pos := int64(termID-p.initial)<<p.bits + int64(end)
	if end > p.termLen {
		p.endOfTerm(idx, termOff, termID)
		if pos >= p.maxPos {
			return 0, 0, transport.MaxPositionExceeded, false
		}
		return 0, 0, transport.AdminAction, false
	}
	return termOff, termID, pos, true
}

func (p *Publication) endOfTerm(idx, termOff int, termID int32) {
	term := p.log.Terms[idx]
	if termOff < p.termLen {
		pad := p.termLen - termOff
		p.writeHeader(term, termOff, pad, termID, cnc.FlagsUnfrag)
		le16(term[termOff+cnc.FrameOffType:], cnc.FrameTypePad)
		cnc.StoreInt32(term, termOff, int32(pad))
	}
	// Rotate: the next partition's tail becomes (termID+1)<<32 if it still
	// holds the term three behind, then the active term count moves on.
	meta := p.log.Meta
	termCount := termID - p.initial
	next := (int(termCount) + 1) % cnc.PartitionCount
	nextOff := cnc.LogOffTailCounters + 8*next
	expect := termID + 1 - cnc.PartitionCount
	for {
		raw := cnc.LoadInt64(meta, nextOff)
		if cnc.TermID(raw) != expect {
			break
		}
		if cnc.CasInt64(meta, nextOff, raw, int64(termID+1)<<32) {
			break
		}
	}
	cnc.CasInt32(meta, cnc.LogOffActiveTermCount, termCount, termCount+1)
}

func le16(b []byte, v uint16) { b[0], b[1] = byte(v), byte(v>>8) }

func le32(b []byte, v int32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// writeHeader stores -length first (so readers wait), then the rest of the
// header from the log's default header.
func (p *Publication) writeHeader(term []byte, off, length int, termID int32, flags uint8) {
	cnc.StoreInt32(term, off, int32(-length))
	h := term[off : off+cnc.DataHeaderLength]
	copy(h[4:], p.log.DefaultHeader()[4:])
	h[cnc.FrameOffFlags] = flags
	le32(h[cnc.FrameOffTermOff:], int32(off))
	le32(h[cnc.FrameOffSession:], p.sessionID)
	le32(h[cnc.FrameOffStream:], p.streamID)
	le32(h[cnc.FrameOffTermID:], termID)
}

func (p *Publication) appendUnfragmented(idx, tailOff int, msg []byte) int64 {
	frameLen := len(msg) + cnc.DataHeaderLength
	off, termID, pos, ok := p.claim(idx, tailOff, alignFrame(frameLen))
	if !ok {
		return pos
	}
	term := p.log.Terms[idx]
	p.writeHeader(term, off, frameLen, termID, cnc.FlagsUnfrag)
	copy(term[off+cnc.DataHeaderLength:], msg)
	cnc.StoreInt32(term, off, int32(frameLen))
	return pos
}

func (p *Publication) appendFragmented(idx, tailOff int, msg []byte) int64 {
	full := len(msg) / p.maxPayload
	rest := len(msg) % p.maxPayload
	total := full * (p.maxPayload + cnc.DataHeaderLength)
	if rest > 0 {
		total += alignFrame(rest + cnc.DataHeaderLength)
	}
	off, termID, pos, ok := p.claim(idx, tailOff, total)
	if !ok {
		return pos
	}
	term := p.log.Terms[idx]
	flags := uint8(cnc.FlagBegin)
	for remaining := msg; len(remaining) > 0; {
		n := min(len(remaining), p.maxPayload)
		if n == len(remaining) {
			flags |= cnc.FlagEnd
		}
		frameLen := n + cnc.DataHeaderLength
		p.writeHeader(term, off, frameLen, termID, flags)
		copy(term[off+cnc.DataHeaderLength:], remaining[:n])
		cnc.StoreInt32(term, off, int32(frameLen))
		off += alignFrame(frameLen)
		remaining = remaining[n:]
		flags = 0
	}
	return pos
}

func (p *Publication) closedErr() error {
	if err := p.c.Err(); err != nil && err != transport.ErrClosed {
		return fmt.Errorf("%w: %w", transport.ErrClosed, err)
	}
	return transport.ErrClosed
}

// Position is the stream position the next message would start at.
func (p *Publication) Position() int64 {
	if p.closed.Load() {
		return transport.PublicationClosed
	}
	termCount := cnc.LoadInt32(p.log.Meta, cnc.LogOffActiveTermCount)
	idx := int(termCount % cnc.PartitionCount)
	if idx < 0 {
		idx += cnc.PartitionCount
	}
	raw := cnc.LoadInt64(p.log.Meta, cnc.LogOffTailCounters+8*idx)
	return int64(cnc.TermID(raw)-p.initial)<<p.bits + int64(cnc.TermOffset(raw, p.termLen))
}

// PositionLimit is the driver's current publication limit.
func (p *Publication) PositionLimit() int64 { return cnc.LoadInt64(p.limit, 0) }

// IsConnected reports whether the driver sees a subscriber.
func (p *Publication) IsConnected() bool {
	return !p.closed.Load() && !p.c.dead.Load() && cnc.LoadInt32(p.log.Meta, cnc.LogOffIsConnected) == 1
}

// SessionID, StreamID, Channel, RegistrationID, MaxMessageLength and
// MaxPayloadLength describe the publication.
func (p *Publication) SessionID() int32      { return p.sessionID }
func (p *Publication) StreamID() int32       { return p.streamID }
func (p *Publication) Channel() string       { return p.channel }
func (p *Publication) RegistrationID() int64 { return p.registrationID }
func (p *Publication) MaxMessageLength() int { return p.maxMsg }
func (p *Publication) MaxPayloadLength() int { return p.maxPayload }

// Close removes the publication from the driver and unmaps its log (after
// offers in flight finish). Safe to call twice.
func (p *Publication) Close() error {
	p.c.mu.Lock()
	_, mine := p.c.pubs[p]
	delete(p.c.pubs, p)
	alive := p.c.err == nil
	p.c.mu.Unlock()
	if !mine {
		return nil
	}
	var err error
	if alive {
		_, _, err = p.c.request(cnc.CmdRemovePublication, func(corr int64) func([]byte) []byte {
			return cnc.RemoveCommand{Correlated: cnc.Correlated{ClientID: p.c.clientID, CorrelationID: corr},
				RegistrationID: p.registrationID}.Encode
		})
	}
	p.release(false)
	return err
}

// release stops offers and unmaps; with tell, the driver is told first
// (without waiting for its answer).
func (p *Publication) release(tell bool) {
	if p.closed.Swap(true) {
		return
	}
	if tell {
		_ = p.c.send(cnc.CmdRemovePublication, cnc.RemoveCommand{Correlated: cnc.Correlated{ClientID: p.c.clientID,
			CorrelationID: p.c.cnc.ToDriver.NextCorrelationID()}, RegistrationID: p.registrationID}.Encode)
	}
	for p.inflight.Load() != 0 {
		runtime.Gosched()
	}
	_ = p.mapping.Close()
}
