package mediadriver

import (
	"fmt"
	"os"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// publication is one log buffer clients append to: shared by every
// client that adds a non-exclusive publication with the same key.
type publication struct {
	regID     int64 // the first registration's id; names the log file
	key       string
	channel   string
	streamID  int32
	sessionID int32
	ipc       bool
	exclusive bool
	refs      int

	mapping *cnc.Mapping
	log     *cnc.Log
	path    string
	app     *cnc.Appender // for the producer position
	window  int64
	cleaned int64 // highest term count zeroed

	limitID, statusID int32
	limitSlot         []byte
	tripLimit         int64 // the limit moves up once it gains this much

	images map[*subscription]*ipcImage // IPC subscribers

	draining bool
	eos      int64
	deadline time.Time

	// UDP: the embedded publication, and how far the bridge moved the
	// log's frames into it (the log has the embedded publication's term
	// length, initial term id and start, so positions are the same).
	ep      *transport.Publication
	bridged int64
	readErr int64 // position of the last malformed frame logged, or -1
}

type ipcImage struct {
	posID int32
	slot  []byte
}

// subscription is one client's subscription.
type subscription struct {
	regID    int64
	client   *client
	channel  string
	ch       channel
	streamID int32
	ipc      bool
	statusID int32

	ipcImages map[*publication]int32
	group     *udpSubGroup
	udpImages map[int32]*udpImage // by session id
}

// cleanBehind zeroes every term wholly behind the term minPos is in, so
// that publishers find clean terms when they rotate into them (they cannot
// get there before minPos has moved past them: the limit is at most half a
// term ahead).
func cleanBehind(l *cnc.Log, cleaned *int64, minPos int64) int {
	term := minPos >> l.PositionBitsToShift()
	if term-1-*cleaned > cnc.PartitionCount {
		// A jump (or a hostile position): only three partitions exist.
		*cleaned = term - 1 - cnc.PartitionCount
	}
	n := 0
	for *cleaned < term-1 {
		*cleaned++
		clear(l.Terms[*cleaned%cnc.PartitionCount])
		n++
	}
	return n
}

func (d *Driver) addPublication(cl *client, cmd cnc.PublicationCommand, exclusive bool) {
	corr := cmd.CorrelationID
	ch, err := parseChannel(cmd.Channel)
	if err != nil {
		d.sendError(corr, cnc.ErrCodeInvalidChannel, "%v", err)
		return
	}
	key := ""
	if !exclusive {
		if ch.ipc {
			key = fmt.Sprintf("aeron:ipc|%d", cmd.StreamID)
		} else {
			key = fmt.Sprintf("%s|%d", cmd.Channel, cmd.StreamID)
		}
	}
	p := d.pubs[key]
	created := false
	if key == "" || p == nil || p.draining {
		p, err = d.newPublication(corr, key, cmd, ch, exclusive)
		if err != nil {
			d.sendError(corr, cnc.ErrCodeChannelEndpoint, "%v", err)
			return
		}
		created = true
		d.allPubs[p.regID] = p
		if key != "" {
			d.pubs[key] = p
		}
	}
	reg := &pubReg{id: corr, client: cl, pub: p}
	p.refs++
	d.regs[corr] = reg
	cl.regs[corr] = reg
	typ := int32(cnc.RspOnPublicationReady)
	if exclusive {
		typ = cnc.RspOnExclusivePublicationRead
	}
	d.scratch = cnc.PublicationReady{CorrelationID: corr, RegistrationID: p.regID, SessionID: p.sessionID,
		StreamID: p.streamID, PositionLimitCounter: p.limitID, ChannelStatusCounter: p.statusID,
		LogFile: p.path}.Encode(d.scratch[:0])
	d.transmit(typ, d.scratch)
	if created && p.ipc {
		for _, s := range d.subs {
			if s.ipc && s.streamID == p.streamID {
				d.linkIPC(p, s)
			}
		}
	}
}

func (d *Driver) newPublication(regID int64, key string, cmd cnc.PublicationCommand, ch channel, exclusive bool) (*publication, error) {
	p := &publication{regID: regID, key: key, channel: cmd.Channel, streamID: cmd.StreamID, ipc: ch.ipc,
		exclusive: exclusive, cleaned: -1, limitID: -1, statusID: -1, images: map[*subscription]*ipcImage{}}
	termLen, mtu := d.cfg.TermLength, d.cfg.MTU
	initialTermID, start := int32(d.rng.Uint32()), int64(0)
	if ch.ipc {
		termLen = d.cfg.IPCTermLength
		p.sessionID = int32(d.rng.Uint32())
	} else {
		ep, err := d.embedded()
		var embCh string
		if err == nil {
			embCh, err = embeddedChannel(cmd.Channel, ch)
		}
		if err == nil {
			p.ep, err = ep.AddPublication(embCh, cmd.StreamID)
		}
		if err != nil {
			return nil, fmt.Errorf("udp publication: %w", err)
		}
		p.sessionID = p.ep.SessionID()
	}
	if ch.termLength != 0 {
		termLen = ch.termLength
	}
	if ch.mtu != 0 {
		mtu = ch.mtu
	}
	if p.ep != nil {
		// The log mirrors the embedded publication's, so that runs of
		// frames move into it unchanged (bridgePublication); its frames
		// must fit the wire MTU.
		termLen, initialTermID, start = p.ep.TermLength(), p.ep.InitialTermID(), p.ep.Position()
		mtu = min(mtu, p.ep.MaxPayloadLength()+cnc.DataHeaderLength)
		p.bridged, p.readErr = start, -1
	}
	p.window = int64(termLen / 2)
	var err error
	p.mapping, p.log, p.path, err = d.newLog("publications", regID, cnc.LogParams{
		TermLength: termLen, MTU: mtu, InitialTermID: initialTermID, SessionID: p.sessionID,
		StreamID: cmd.StreamID, CorrelationID: regID, TermWindow: termLen / 2, StartPosition: start,
	})
	if err == nil {
		p.limitID, p.limitSlot, err = d.streamCounter(cnc.TypePublisherLimit, "pub-lmt", regID, p.sessionID, p.streamID, p.channel, "")
	}
	if err == nil && !ch.ipc {
		p.statusID, err = d.statusCounter(cnc.TypeSendChannelStatus, "snd-channel", p.channel)
	}
	if err != nil {
		d.freePublication(p)
		return nil, err
	}
	p.app = cnc.NewAppender(p.log, p.sessionID, p.streamID)
	p.cleaned = start>>p.log.PositionBitsToShift() - 1
	d.cfg.Logger.Info("mediadriver: publication added", "channel", p.channel, "stream", p.streamID, "session", p.sessionID, "log", p.path)
	return p, nil
}

func (d *Driver) statusCounter(typ int32, name, channel string) (int32, error) {
	key := streamKey(0, 0, 0, channel)[16:] // channel length + channel
	id, err := d.alloc.Allocate(typ, key, fmt.Sprintf("%s: %s", name, channel), 0, 0, 0)
	if err != nil {
		return -1, err
	}
	slot, _ := d.c.Counters.Slot(id)
	cnc.StoreInt64(slot, 0, 1) // active
	return id, nil
}

// linkIPC makes publication p an image of IPC subscription s.
func (d *Driver) linkIPC(p *publication, s *subscription) {
	if p.draining || p.images[s] != nil {
		return
	}
	join := p.app.Position()
	id, slot, err := d.streamCounter(cnc.TypeSubscriberPosition, "sub-pos", s.regID, p.sessionID, p.streamID, s.channel, fmt.Sprintf(" @%d", join))
	if err != nil {
		incr(d.sys.errors)
		d.cfg.Logger.Error("mediadriver: subscriber position counter", "err", err)
		return
	}
	cnc.StoreInt64(slot, 0, join)
	p.images[s] = &ipcImage{posID: id, slot: slot}
	s.ipcImages[p] = id
	d.ipcLimits(p) // connected, with room, before the client hears of it
	d.scratch = cnc.ImageReady{CorrelationID: p.regID, SessionID: p.sessionID, StreamID: p.streamID,
		SubscriptionID: s.regID, SubscriberPositionID: id, LogFile: p.path, SourceIdentity: "aeron:ipc"}.Encode(d.scratch[:0])
	d.transmit(cnc.RspOnAvailableImage, d.scratch)
}

// removeReg drops one client registration; the last one starts the
// publication's drain.
func (d *Driver) removeReg(reg *pubReg) {
	delete(d.regs, reg.id)
	delete(reg.client.regs, reg.id)
	p := reg.pub
	p.refs--
	if p.refs > 0 || p.draining {
		return
	}
	p.draining = true
	if d.pubs[p.key] == p {
		delete(d.pubs, p.key)
	}
	p.eos = p.app.Position()
	cnc.StoreInt64(p.log.Meta, cnc.LogOffEndOfStream, p.eos)
	p.deadline = time.Now().Add(d.cfg.PublicationLinger)
}

// freePublication releases a publication now: its images go unavailable.
func (d *Driver) freePublication(p *publication) {
	for s, img := range p.images {
		d.scratch = cnc.ImageMessage{CorrelationID: p.regID, SubscriptionID: s.regID, StreamID: p.streamID,
			Channel: s.channel}.Encode(d.scratch[:0])
		d.transmit(cnc.RspOnUnavailableImage, d.scratch)
		d.freeCounter(img.posID)
		delete(s.ipcImages, p)
	}
	p.images = map[*subscription]*ipcImage{}
	d.freeCounter(p.limitID)
	d.freeCounter(p.statusID)
	p.limitID, p.statusID = -1, -1
	if p.ep != nil {
		d.closeLater(p.ep.Close)
		p.ep = nil
	}
	if p.mapping != nil {
		_ = p.mapping.Close()
		p.mapping = nil
		_ = os.Remove(p.path)
	}
	delete(d.allPubs, p.regID)
	if d.pubs[p.key] == p {
		delete(d.pubs, p.key)
	}
	d.cfg.Logger.Info("mediadriver: publication released", "channel", p.channel, "stream", p.streamID, "session", p.sessionID)
}

// ipcLimits moves an IPC publication's limit and connected flag from its
// subscribers' positions, cleaning terms behind them first.
func (d *Driver) ipcLimits(p *publication) int {
	prod := p.app.Position()
	minPos := prod
	for _, img := range p.images {
		// Clients write these counters: keep them within [0, producer].
		minPos = min(minPos, max(cnc.LoadInt64(img.slot, 0), 0))
	}
	work := cleanBehind(p.log, &p.cleaned, minPos)
	limit := prod // no subscriber: not connected, no room
	connected := int32(0)
	if len(p.images) > 0 {
		limit, connected = minPos+p.window, 1
	}
	if p.setLimit(limit) {
		work++
	}
	if cnc.LoadInt32(p.log.Meta, cnc.LogOffIsConnected) != connected {
		cnc.StoreInt32(p.log.Meta, cnc.LogOffIsConnected, connected)
	}
	return work
}

func (d *Driver) ipcDuty(now time.Time) int {
	work := 0
	for _, p := range d.allPubs {
		if !p.ipc {
			continue
		}
		work += d.ipcLimits(p)
		if p.draining {
			drained := true
			for _, img := range p.images {
				if cnc.LoadInt64(img.slot, 0) < p.eos {
					drained = false
				}
			}
			if drained || now.After(p.deadline) {
				d.freePublication(p)
				work++
			}
		}
	}
	return work
}

func (d *Driver) addSubscription(cl *client, cmd cnc.SubscriptionCommand) {
	corr := cmd.CorrelationID
	ch, err := parseChannel(cmd.Channel)
	if err != nil {
		d.sendError(corr, cnc.ErrCodeInvalidChannel, "%v", err)
		return
	}
	s := &subscription{regID: corr, client: cl, channel: cmd.Channel, ch: ch, streamID: cmd.StreamID, ipc: ch.ipc,
		statusID: -1, ipcImages: map[*publication]int32{}, udpImages: map[int32]*udpImage{}}
	if !ch.ipc {
		if err := d.joinUDPGroup(s); err != nil {
			d.sendError(corr, cnc.ErrCodeChannelEndpoint, "%v", err)
			return
		}
		if s.statusID, err = d.statusCounter(cnc.TypeReceiveChannelStatus, "rcv-channel", s.channel); err != nil {
			incr(d.sys.errors)
		}
	}
	d.subs[corr] = s
	cl.subs[corr] = s
	d.scratch = cnc.SubscriptionReady{CorrelationID: corr, ChannelStatusCounter: s.statusID}.Encode(d.scratch[:0])
	d.transmit(cnc.RspOnSubscriptionReady, d.scratch)
	if ch.ipc {
		for _, p := range d.allPubs {
			if p.ipc && p.streamID == s.streamID {
				d.linkIPC(p, s)
			}
		}
	} else {
		d.udpImagesFor(s)
	}
	d.cfg.Logger.Info("mediadriver: subscription added", "channel", s.channel, "stream", s.streamID, "client", cl.id)
}

// freeSubscription releases a subscription (the client drops its images
// itself; no unavailable-image responses, as Aeron).
func (d *Driver) freeSubscription(s *subscription) {
	for p, id := range s.ipcImages {
		delete(p.images, s)
		d.freeCounter(id)
	}
	s.ipcImages = map[*publication]int32{}
	for _, img := range s.udpImages {
		d.freeUDPImage(s, img, false)
	}
	d.leaveUDPGroup(s)
	d.freeCounter(s.statusID)
	s.statusID = -1
	delete(d.subs, s.regID)
	delete(s.client.subs, s.regID)
}

// setLimit stores the publisher limit when it falls, or when it rose to
// the trip limit, which is then set an eighth of the window beyond it (as
// Aeron's driver does: a limit moved on every subscriber read would bounce
// the counter's cache line between the processes and keep the conductor
// busy). It reports whether it stored.
func (p *publication) setLimit(limit int64) bool {
	cur := cnc.LoadInt64(p.limitSlot, 0)
	if limit == cur || (limit > cur && limit < p.tripLimit) {
		return false
	}
	cnc.StoreInt64(p.limitSlot, 0, limit)
	p.tripLimit = limit + p.window/8
	return true
}
