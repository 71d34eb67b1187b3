package mediadriver

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// UDP streams are carried by the embedded driver. The conductor bridges
// them: a UDP publication's log is read like an IPC subscriber would and
// each message offered to the embedded publication; each image of an
// embedded subscription gets a log file per client subscription, appended
// to like a publisher would. Back pressure carries through: a message the
// other side refuses waits (bounded) and the bridge stops reading until it
// went through.

// bridgeBatch is how many fragments a bridge moves per conductor cycle:
// large, since a cycle's fixed cost (and, on a loaded machine, the wait for
// the CPU between cycles) is paid per batch. A message refused by the other
// side waits in a pending queue, which one batch bounds (at most
// bridgeBatch × MTU bytes).
const bridgeBatch = 1024

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
}

type imageEvent struct {
	img       transport.Image
	available bool
}

// udpImage is one embedded image as one client subscription sees it.
type udpImage struct {
	corrID   int64
	session  int32
	source   string
	mapping  *cnc.Mapping
	log      *cnc.Log
	path     string
	app      *cnc.Appender
	posID    int32
	posSlot  []byte
	window   int64
	cleaned  int64
	pending  [][]byte
	gone     bool
	freed    bool
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
		g = &udpSubGroup{key: key, subs: map[*subscription]struct{}{}, images: map[int32]transport.Image{}}
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
		_ = g.es.Close()
		delete(d.udpSubs, g.key)
	}
}

// udpImagesFor gives a new subscription an image per current session.
func (d *Driver) udpImagesFor(s *subscription) {
	for _, img := range s.group.images {
		d.newUDPImage(s, img)
	}
}

func (d *Driver) newUDPImage(s *subscription, img transport.Image) {
	if s.udpImages[img.SessionID] != nil {
		return
	}
	termLen, mtu := d.cfg.TermLength, d.cfg.MTU
	if s.ch.termLength != 0 {
		termLen = s.ch.termLength
	}
	if s.ch.mtu != 0 {
		mtu = s.ch.mtu
	}
	corr := d.nextID()
	m, l, path, err := d.newLog("images", corr, cnc.LogParams{TermLength: termLen, MTU: mtu,
		InitialTermID: int32(d.rng.Uint32()), SessionID: img.SessionID, StreamID: s.streamID, CorrelationID: corr})
	if err != nil {
		incr(d.sys.errors)
		d.cfg.Logger.Error("mediadriver: image log", "err", err)
		return
	}
	id, slot, err := d.streamCounter(cnc.TypeSubscriberPosition, "sub-pos", s.regID, img.SessionID, s.streamID, s.channel, " @0")
	if err != nil {
		_ = m.Close()
		_ = os.Remove(path)
		incr(d.sys.errors)
		return
	}
	ui := &udpImage{corrID: corr, session: img.SessionID, source: img.Source, mapping: m, log: l, path: path,
		app: cnc.NewAppender(l, img.SessionID, s.streamID), posID: id, posSlot: slot,
		window: int64(termLen / 2), cleaned: -1}
	s.udpImages[img.SessionID] = ui
	d.scratch = cnc.ImageReady{CorrelationID: corr, SessionID: img.SessionID, StreamID: s.streamID,
		SubscriptionID: s.regID, SubscriberPositionID: id, LogFile: path, SourceIdentity: img.Source}.Encode(d.scratch[:0])
	d.transmit(cnc.RspOnAvailableImage, d.scratch)
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
	ui.freed = true
	if s.lastImage == ui {
		s.lastImage = nil
	}
	delete(s.udpImages, ui.session)
}

func retryable(err error) bool {
	return errors.Is(err, transport.ErrBackPressured) || errors.Is(err, transport.ErrNotConnected)
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

// bridgePublication moves messages from a client-written log into the
// embedded publication.
func (d *Driver) bridgePublication(p *publication, now time.Time) int {
	work := 0
	for len(p.pending) > 0 {
		if _, err := p.ep.Offer(p.pending[0]); err != nil && retryable(err) {
			break
		} else if err != nil {
			incr(d.sys.errors)
			d.cfg.Logger.Warn("mediadriver: message dropped", "channel", p.channel, "err", err)
		}
		p.pending[0] = nil
		p.pending = p.pending[1:]
		work++
	}
	if len(p.pending) == 0 {
		n, err := p.rd.Poll(func(msg []byte, _ cnc.Message) {
			if len(p.pending) == 0 {
				_, err := p.ep.Offer(msg)
				if err == nil {
					return
				}
				if !retryable(err) {
					incr(d.sys.errors)
					d.cfg.Logger.Warn("mediadriver: message dropped", "channel", p.channel, "err", err)
					return
				}
			}
			p.pending = append(p.pending, append([]byte(nil), msg...))
		}, bridgeBatch)
		if err != nil {
			incr(d.sys.errors)
			if !p.readErr {
				p.readErr = true
				d.cfg.Logger.Warn("mediadriver: publication log unreadable", "channel", p.channel, "stream", p.streamID, "position", p.rd.Position(), "err", err)
			}
		}
		work += n
	}
	pos := p.rd.Position()
	work += cleanBehind(p.log, &p.cleaned, pos)
	limit, connected := pos, int32(0)
	if p.ep.IsConnected() {
		limit, connected = pos+p.window, 1
	}
	if cnc.LoadInt64(p.limitSlot, 0) != limit {
		cnc.StoreInt64(p.limitSlot, 0, limit)
	}
	if cnc.LoadInt32(p.log.Meta, cnc.LogOffIsConnected) != connected {
		cnc.StoreInt32(p.log.Meta, cnc.LogOffIsConnected, connected)
	}
	if p.draining && ((pos >= p.eos && len(p.pending) == 0) || now.After(p.deadline)) {
		d.freePublication(p)
		work++
	}
	return work
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
			for s := range g.subs {
				if ui := s.udpImages[ev.img.SessionID]; ui != nil && ui.gone {
					// The session came back before its image drained: the
					// client's image simply carries on.
					ui.gone = false
					continue
				}
				d.newUDPImage(s, ev.img)
			}
			continue
		}
		delete(g.images, ev.img.SessionID)
		for s := range g.subs {
			if ui := s.udpImages[ev.img.SessionID]; ui != nil && !ui.gone {
				ui.gone = true
				ui.deadline = now.Add(d.cfg.PublicationLinger)
			}
		}
	}
	return work
}

// bridgeGroup's second half: pending messages, gone images, then new data.
func (d *Driver) bridgeData(g *udpSubGroup, now time.Time) int {
	work := 0
	blocked := false
	for s := range g.subs {
		for _, ui := range s.udpImages {
			for len(ui.pending) > 0 {
				if ui.app.Append(ui.pending[0], ui.limit()) < 0 {
					break
				}
				ui.pending[0] = nil
				ui.pending = ui.pending[1:]
				work++
			}
			if len(ui.pending) > 0 {
				blocked = true
			}
			work += cleanBehind(ui.log, &ui.cleaned, ui.subscriberPosition())
			if ui.gone && len(ui.pending) == 0 {
				end := ui.app.Position()
				cnc.StoreInt64(ui.log.Meta, cnc.LogOffEndOfStream, end)
				if ui.subscriberPosition() >= end || now.After(ui.deadline) {
					d.freeUDPImage(s, ui, true)
					work++
				}
			}
		}
	}
	if blocked {
		return work
	}
	work += g.es.Poll(func(msg []byte, h transport.Header) {
		for _, s := range g.subList {
			ui := s.lastImage
			if ui == nil || ui.session != h.SessionID || ui.freed {
				ui = s.udpImages[h.SessionID]
				s.lastImage = ui
			}
			if ui == nil {
				// Its available event may have come in after this cycle
				// took the events: take them again.
				d.applyEvents(g, now)
				if s.udpImages[h.SessionID] == nil {
					if img, ok := g.images[h.SessionID]; ok {
						d.newUDPImage(s, img)
					}
				}
				ui = s.udpImages[h.SessionID]
				s.lastImage = ui
				if ui == nil {
					incr(d.sys.errors)
					d.cfg.Logger.Warn("mediadriver: message for an unknown image dropped", "session", h.SessionID, "stream", h.StreamID)
					continue
				}
			}
			if len(ui.pending) == 0 {
				res := ui.app.Append(msg, ui.limit())
				if res >= 0 {
					continue
				}
				if res == cnc.AppendTooLong || res == cnc.AppendMaxPositionExceeded {
					incr(d.sys.errors)
					continue
				}
			}
			ui.pending = append(ui.pending, append([]byte(nil), msg...))
		}
	}, bridgeBatch)
	return work
}

// limit is how far the bridge may append: the subscriber position plus
// the window, after cleaning every term behind that position (appending
// must never reach a partition that still holds an old term).
func (ui *udpImage) limit() int64 {
	pos := ui.subscriberPosition()
	cleanBehind(ui.log, &ui.cleaned, pos)
	return pos + ui.window
}

// subscriberPosition is the client's position, kept within [0, appended]
// (the client writes the counter).
func (ui *udpImage) subscriberPosition() int64 {
	return min(max(cnc.LoadInt64(ui.posSlot, 0), 0), ui.app.Position())
}
