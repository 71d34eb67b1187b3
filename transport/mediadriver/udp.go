package mediadriver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// UDP streams are carried by the embedded driver. The conductor bridges
// them without parsing messages: a UDP publication's log mirrors its
// embedded publication's log (same term length, initial term id and
// start), so runs of whole frames the client wrote move into it with one
// copy (transport.Publication.AppendFrames checks them); each image of an
// embedded subscription gets a log file per client subscription that
// mirrors the embedded image's log (the publisher's term length and
// initial term id), and runs of received frames are copied into it at the
// same term offsets (transport.Subscription.PollFrames). Back pressure
// carries through: the bridge moves only what the other side has room
// for and leaves the rest where it is.

// bridgeBytes bounds what one bridge moves per conductor cycle and
// stream, so that every stream and the conductor's other duties get their
// turn.
const bridgeBytes = 1 << 20

// udpSubGroup is one embedded subscription shared by every client
// subscription on the same channel and stream.
type udpSubGroup struct {
	key     string
	es      *transport.Subscription
	subs    map[*subscription]struct{}
	subList []*subscription // subs as a slice, for the per-message loop

	mu     sync.Mutex // guards events (the embedded driver's goroutines append)
	events []imageEvent

	images map[int32]transport.Image // current embedded images by session
	pos    map[int32]int64           // how far each session was bridged

	// The forwarder goroutine passes es's data notifications on to the
	// conductor until quit closes; it is gone when forwarded closes.
	quit, forwarded chan struct{}
}

type imageEvent struct {
	img       transport.Image
	available bool
}

// udpImage is one embedded image as one client subscription sees it:
// a log with the embedded image's term length and initial term id,
// written from start up to written.
type udpImage struct {
	corrID   int64
	session  int32
	source   string
	mapping  *cnc.Mapping
	log      *cnc.Log
	path     string
	posID    int32
	posSlot  []byte
	window   int64
	start    int64
	written  int64
	gone     bool
	deadline time.Time
}

func (d *Driver) embedded() (*transport.Driver, error) {
	if d.emb != nil {
		return d.emb, nil
	}
	cfg := transport.DefaultConfig()
	if d.cfg.Embedded != nil {
		cfg = *d.cfg.Embedded
	} else {
		cfg.TermLength = d.cfg.TermLength
	}
	cfg.Logger = d.cfg.Logger
	emb, err := transport.NewDriver(cfg)
	if err != nil {
		return nil, err
	}
	d.emb = emb
	return emb, nil
}

// closeLater runs a closer that may linger (an embedded publication
// draining to its subscriber) without stalling the conductor; shutdown
// closes the embedded driver, which ends them.
func (d *Driver) closeLater(f func() error) {
	d.closers.Add(1)
	go func() {
		defer d.closers.Done()
		_ = f()
	}()
}

func (d *Driver) joinUDPGroup(s *subscription) error {
	key := fmt.Sprintf("%s|%d", s.channel, s.streamID)
	g := d.udpSubs[key]
	if g == nil {
		emb, err := d.embedded()
		if err != nil {
			return err
		}
		embCh, err := embeddedChannel(s.channel, s.ch)
		if err != nil {
			return err
		}
		g = &udpSubGroup{key: key, subs: map[*subscription]struct{}{}, images: map[int32]transport.Image{},
			pos: map[int32]int64{}}
		push := func(img transport.Image, avail bool) {
			g.mu.Lock()
			g.events = append(g.events, imageEvent{img, avail})
			g.mu.Unlock()
		}
		g.es, err = emb.AddSubscription(embCh, s.streamID, transport.WithImageHandlers(
			func(img transport.Image) { push(img, true) }, func(img transport.Image) { push(img, false) }))
		if err != nil {
			return fmt.Errorf("udp subscription: %w", err)
		}
		d.udpSubs[key] = g
		g.quit, g.forwarded = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(g.forwarded)
			for {
				select {
				case <-g.es.Notify():
					d.nudge()
				case <-g.quit:
					return
				}
			}
		}()
	}
	g.subs[s] = struct{}{}
	g.subList = append(g.subList, s)
	s.group = g
	return nil
}

func (d *Driver) leaveUDPGroup(s *subscription) {
	g := s.group
	if g == nil {
		return
	}
	s.group = nil
	delete(g.subs, s)
	for i, x := range g.subList {
		if x == s {
			g.subList = append(g.subList[:i], g.subList[i+1:]...)
			break
		}
	}
	if len(g.subs) == 0 {
		close(g.quit)
		<-g.forwarded
		_ = g.es.Close()
		delete(d.udpSubs, g.key)
	}
}

// udpImagesFor gives a new subscription an image per current session,
// starting where the group is.
func (d *Driver) udpImagesFor(s *subscription) {
	for _, img := range s.group.images {
		d.newUDPImage(s, img, s.group.position(img))
	}
}

// position is how far the group bridged session img.
func (g *udpSubGroup) position(img transport.Image) int64 {
	if pos, ok := g.pos[img.SessionID]; ok {
		return pos
	}
	return img.Position
}

// newUDPImage gives s an image of img whose log starts at pos.
func (d *Driver) newUDPImage(s *subscription, img transport.Image, pos int64) *udpImage {
	if ui := s.udpImages[img.SessionID]; ui != nil {
		return ui
	}
	mtu := d.cfg.MTU
	if s.ch.mtu != 0 {
		mtu = s.ch.mtu
	}
	termLen := int(img.TermLength)
	corr := d.nextID()
	m, l, path, err := d.newLog("images", corr, cnc.LogParams{TermLength: termLen, MTU: mtu,
		InitialTermID: img.InitialTermID, SessionID: img.SessionID, StreamID: s.streamID, CorrelationID: corr,
		StartPosition: pos})
	if err != nil {
		incr(d.sys.errors)
		d.cfg.Logger.Error("mediadriver: image log", "err", err)
		return nil
	}
	id, slot, err := d.streamCounter(cnc.TypeSubscriberPosition, "sub-pos", s.regID, img.SessionID, s.streamID, s.channel, fmt.Sprintf(" @%d", pos))
	if err != nil {
		_ = m.Close()
		_ = os.Remove(path)
		incr(d.sys.errors)
		return nil
	}
	cnc.StoreInt64(slot, 0, pos)
	ui := &udpImage{corrID: corr, session: img.SessionID, source: img.Source, mapping: m, log: l, path: path,
		posID: id, posSlot: slot, window: int64(termLen / 2), start: pos, written: pos}
	s.udpImages[img.SessionID] = ui
	d.scratch = cnc.ImageReady{CorrelationID: corr, SessionID: img.SessionID, StreamID: s.streamID,
		SubscriptionID: s.regID, SubscriberPositionID: id, LogFile: path, SourceIdentity: img.Source}.Encode(d.scratch[:0])
	d.transmit(cnc.RspOnAvailableImage, d.scratch)
	return ui
}

// freeUDPImage releases an image; tell sends the unavailable response.
func (d *Driver) freeUDPImage(s *subscription, ui *udpImage, tell bool) {
	if tell {
		d.scratch = cnc.ImageMessage{CorrelationID: ui.corrID, SubscriptionID: s.regID, StreamID: s.streamID,
			Channel: s.channel}.Encode(d.scratch[:0])
		d.transmit(cnc.RspOnUnavailableImage, d.scratch)
	}
	d.freeCounter(ui.posID)
	_ = ui.mapping.Close()
	_ = os.Remove(ui.path)
	delete(s.udpImages, ui.session)
}

func (d *Driver) udpDuty(now time.Time) int {
	work := 0
	for _, p := range d.allPubs {
		if !p.ipc {
			work += d.bridgePublication(p, now)
		}
	}
	for _, g := range d.udpSubs {
		work += d.bridgeGroup(g, now)
	}
	return work
}

// bridgePublication moves runs of whole frames from a client-written log
// into the embedded publication, at the same positions.
func (d *Driver) bridgePublication(p *publication, now time.Time) int {
	work := 0
	shift := p.log.PositionBitsToShift()
	mask := int64(p.log.TermLength - 1)
	for moved := 0; moved < bridgeBytes; {
		term := p.log.Terms[(p.bridged>>shift)%cnc.PartitionCount]
		off := int(p.bridged & mask)
		end := committedEnd(term, off, bridgeBytes-moved)
		if end == off {
			break
		}
		n, err := p.ep.AppendFrames(p.bridged, term[off:end])
		p.bridged += int64(n)
		moved += n
		if n > 0 {
			work++
		}
		if errors.Is(err, transport.ErrBadFrame) && p.readErr != p.bridged {
			// Counted and logged once per place: the stream stops there
			// and the next cycles find the same frame.
			incr(d.sys.errors)
			p.readErr = p.bridged
			d.cfg.Logger.Warn("mediadriver: publication log unreadable", "channel", p.channel, "stream", p.streamID, "position", p.bridged, "err", err)
		}
		if err != nil || end-off > n {
			break
		}
	}
	pos := p.bridged
	work += cleanBehind(p.log, &p.cleaned, pos)
	limit, connected := pos, int32(0)
	if p.ep.IsConnected() {
		limit, connected = pos+p.window, 1
	}
	p.setLimit(limit)
	if cnc.LoadInt32(p.log.Meta, cnc.LogOffIsConnected) != connected {
		cnc.StoreInt32(p.log.Meta, cnc.LogOffIsConnected, connected)
	}
	if p.draining && (pos >= p.eos || now.After(p.deadline)) {
		d.freePublication(p)
		work++
	}
	return work
}

// committedEnd returns the term offset after the run of committed frames
// (positive length) from off, at most max bytes long (but at least one
// frame). A frame whose length cannot be right ends the run, or is the run
// when it comes first, for AppendFrames to refuse.
func committedEnd(term []byte, off, max int) int {
	end := off
	for end+cnc.DataHeaderLength <= len(term) && end-off < max {
		n := int(cnc.LoadInt32(term, end))
		if n <= 0 {
			break
		}
		a := (n + cnc.FrameAlignment - 1) &^ (cnc.FrameAlignment - 1)
		if n < cnc.DataHeaderLength || a > len(term)-end {
			if end == off {
				end += cnc.DataHeaderLength
			}
			break
		}
		end += a
	}
	return end
}

// bridgeGroup applies image events and moves received messages into the
// image logs of every subscription of the group.
func (d *Driver) bridgeGroup(g *udpSubGroup, now time.Time) int {
	return d.applyEvents(g, now) + d.bridgeData(g, now)
}

// applyEvents applies the embedded driver's image events.
func (d *Driver) applyEvents(g *udpSubGroup, now time.Time) int {
	work := 0
	g.mu.Lock()
	events := g.events
	g.events = nil
	g.mu.Unlock()
	for _, ev := range events {
		work++
		if ev.available {
			g.images[ev.img.SessionID] = ev.img
			if _, ok := g.pos[ev.img.SessionID]; !ok {
				g.pos[ev.img.SessionID] = ev.img.Position
			}
			for s := range g.subs {
				if ui := s.udpImages[ev.img.SessionID]; ui != nil && ui.gone {
					// The session came back before its image drained: the
					// client's image simply carries on.
					ui.gone = false
					cnc.StoreInt64(ui.log.Meta, cnc.LogOffEndOfStream, 1<<63-1)
					continue
				}
				d.newUDPImage(s, ev.img, g.position(ev.img))
			}
			continue
		}
		delete(g.images, ev.img.SessionID)
		delete(g.pos, ev.img.SessionID)
		for s := range g.subs {
			if ui := s.udpImages[ev.img.SessionID]; ui != nil && !ui.gone {
				ui.gone = true
				ui.deadline = now.Add(d.cfg.PublicationLinger)
			}
		}
	}
	return work
}

// bridgeGroup's second half: gone images, then new data.
func (d *Driver) bridgeData(g *udpSubGroup, now time.Time) int {
	work := 0
	for s := range g.subs {
		for _, ui := range s.udpImages {
			if ui.gone {
				cnc.StoreInt64(ui.log.Meta, cnc.LogOffEndOfStream, ui.written)
				if ui.subscriberPosition() >= ui.written || now.After(ui.deadline) {
					d.freeUDPImage(s, ui, true)
					work++
				}
			}
		}
	}
	for moved := 0; moved < bridgeBytes; {
		n := g.es.PollFrames(func(b transport.FrameBlock) int { return d.bridgeBlock(g, b, now) })
		if n == 0 {
			break
		}
		moved += n
		work++
	}
	return work
}

// bridgeBlock copies the longest run of b's frames that every client
// image of the session has room for into their logs, at the same term
// offsets, and returns its length.
func (d *Driver) bridgeBlock(g *udpSubGroup, b transport.FrameBlock, now time.Time) int {
	n := len(b.Frames)
	for _, s := range g.subList {
		ui := d.imageAt(g, s, b, now)
		if ui == nil {
			continue
		}
		n = int(min(int64(n), ui.limit()-b.Position))
	}
	if n < len(b.Frames) { // a block ends on a frame boundary
		n = frameBoundary(b.Frames, n)
	}
	if n <= 0 {
		return 0
	}
	frames := b.Frames[:n]
	for _, s := range g.subList {
		ui := s.udpImages[b.SessionID]
		if ui == nil {
			continue
		}
		ui.write(b.Position, frames)
	}
	g.pos[b.SessionID] = b.Position + int64(n)
	return n
}

// imageAt returns s's image of b's session, whose log must have been
// written up to b's position: made now if the available event has not
// come in yet, made anew if it does not fit (a log that stopped short
// cannot go on past a gap).
func (d *Driver) imageAt(g *udpSubGroup, s *subscription, b transport.FrameBlock, now time.Time) *udpImage {
	ui := s.udpImages[b.SessionID]
	if ui != nil && ui.written == b.Position && int32(ui.log.TermLength) == b.TermLength {
		return ui
	}
	if ui == nil {
		// Its available event may have come in after this cycle took
		// the events: take them again.
		d.applyEvents(g, now)
		ui = s.udpImages[b.SessionID]
		if ui != nil && ui.written == b.Position {
			return ui
		}
	}
	if ui != nil {
		incr(d.sys.errors)
		d.cfg.Logger.Warn("mediadriver: image log out of step, replaced", "session", b.SessionID, "stream", s.streamID,
			"written", ui.written, "received", b.Position)
		d.freeUDPImage(s, ui, true)
	}
	img, ok := g.images[b.SessionID]
	if !ok {
		img = transport.Image{SessionID: b.SessionID, StreamID: s.streamID}
	}
	img.InitialTermID, img.TermLength = b.InitialTermID, b.TermLength
	ui = d.newUDPImage(s, img, b.Position)
	if ui == nil {
		d.cfg.Logger.Warn("mediadriver: frames for an image without a log dropped", "session", b.SessionID, "stream", s.streamID)
	}
	return ui
}

// frameBoundary returns the end of the last whole frame of frames that
// ends at or before n.
func frameBoundary(frames []byte, n int) int {
	end := 0
	for end+cnc.DataHeaderLength <= n {
		fl := int(int32(binary.LittleEndian.Uint32(frames[end:])))
		a := (fl + cnc.FrameAlignment - 1) &^ (cnc.FrameAlignment - 1)
		if fl < cnc.DataHeaderLength || end+a > n {
			break
		}
		end += a
	}
	return end
}

// write puts a run of frames at pos (= written) into the image's log. The
// bridge is the log's only writer and writes it in order, so its terms
// are not cleaned: only the length slot just past the run, which may hold
// a frame of three terms ago, is zeroed before the run appears (readers
// stop at a length that is not positive, and reach that slot only through
// the run).
func (ui *udpImage) write(pos int64, frames []byte) {
	l := ui.log
	idx := int((pos >> l.PositionBitsToShift()) % cnc.PartitionCount)
	off := int(pos & int64(l.TermLength-1))
	if end := off + len(frames); end < l.TermLength {
		cnc.StoreRelease32(l.Terms[idx], end, 0)
	} else {
		cnc.StoreRelease32(l.Terms[(idx+1)%cnc.PartitionCount], 0, 0)
	}
	cnc.WriteFrames(l.Terms[idx], off, frames)
	ui.written = pos + int64(len(frames))
}

// limit is how far the bridge may write: the subscriber position plus
// the window (half a term: a reader is never in the partition after the
// one being written).
func (ui *udpImage) limit() int64 { return ui.subscriberPosition() + ui.window }

// subscriberPosition is the client's position, kept within [start,
// written] (the client writes the counter).
func (ui *udpImage) subscriberPosition() int64 {
	return min(max(cnc.LoadInt64(ui.posSlot, 0), ui.start), ui.written)
}
