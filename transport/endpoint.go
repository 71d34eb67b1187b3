package transport

import (
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"
)

// endpoint runs a bound UDP socket and the receiver core (recvEndpoint)
// for it: one goroutine (loop) reads datagrams, feeds them to the core
// with the time, runs its timers and dispatches image events. Every UDP
// subscription of the driver on that address shares it, one per stream.
type endpoint struct {
	d         *Driver
	addr      netip.AddrPort
	conn      *udpConn
	out       outFunc
	rcvBuf    int // usable SO_RCVBUF, 0 if unknown
	directMin int // Config.DirectReadMin (0: math.MaxInt, never)

	mu      sync.Mutex // guards core, subs and closing
	core    *recvEndpoint
	subs    map[int32]*udpSubscription
	closing bool
}

// udpSubscription is a subscription's UDP media: its stream on an
// endpoint.
type udpSubscription struct {
	s      *Subscription
	ep     *endpoint
	stream *streamSub    // the core's view
	gone   imageCounters // counters of images gone; guarded by ep.mu
}

// udpImage is the source of a subscription image read from an endpoint's
// image.
type udpImage struct {
	ep  *endpoint
	img *image
}

// addUDPSubscription binds (or shares) the endpoint of ch and subscribes
// s's stream on it.
func (d *Driver) addUDPSubscription(s *Subscription, ch *channel) (*Subscription, error) {
	addr, err := resolveUDP(ch.endpoint)
	if err != nil {
		return nil, badChannel(s.channel, "endpoint", "%v", err)
	}
	window := d.cfg.ReceiverWindow
	if ch.rcvWnd != 0 {
		window = ch.rcvWnd
	}
	nakDelay := d.cfg.NakDelay
	if ch.hasNakDelay {
		nakDelay = ch.nakDelay
	}
	rcvBuf, sndBuf := d.socketBuffers(ch)
	st := &streamSub{
		streamID: s.streamID, hasFilter: ch.hasSessionID, sessionID: ch.sessionID,
		p: recvParams{
			window: window, nakDelay: int64(nakDelay), nakRetry: 100 * int64(nakDelay),
			smTimeout: int64(d.cfg.StatusMessageTimeout), liveness: int64(d.cfg.ImageLivenessTimeout),
			connLive: int64(d.cfg.ConnectionTimeout), setupHold: int64(d.cfg.PendingSetupHold),
			drainHold:  5 * int64(d.cfg.StatusMessageTimeout),
			maxTermLen: d.cfg.MaxReceiveTermLength, maxImages: d.cfg.MaxImagesPerEndpoint,
			maxPerSource: d.cfg.MaxImagesPerSource, budget: d.budget,
		},
	}
	us := &udpSubscription{s: s, stream: st}
	s.media = us

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	// Endpoints are keyed by their bound address, so port 0 always binds
	// a fresh ephemeral endpoint and its actual address finds it later.
	var e *endpoint
	if addr.Port() != 0 {
		e = d.endpoints[addr]
	}
	if e == nil {
		conn, err := listenUDP(addr, rcvBuf, sndBuf)
		if err != nil {
			return nil, fmt.Errorf("transport: bind %s: %w", addr, err)
		}
		la := conn.localAddr()
		addr = netip.AddrPortFrom(la.Addr().Unmap(), la.Port())
		e = &endpoint{d: d, addr: addr, conn: conn, subs: make(map[int32]*udpSubscription), rcvBuf: conn.rcvBufSize(),
			directMin: d.cfg.DirectReadMin}
		if e.directMin == 0 {
			e.directMin = math.MaxInt
		}
		e.core = newRecvEndpoint(int64(d.randU64() | 1))
		e.out = func(b []byte, to netip.AddrPort) {
			if e.conn.writeTo(b, to) != nil {
				d.sendErrors.Add(1)
			}
		}
		d.endpoints[addr] = e
		d.goRun(e.loop)
	}
	// Never advertise more window than the socket can buffer (the kernel
	// may have capped SO_RCVBUF at rmem_max): a burst would be lost.
	if rb := e.rcvBuf; rb > 0 {
		st.p.soRcvBuf = rb
		if rb >= d.cfg.MTU && st.p.window > rb {
			st.p.window = rb
		}
	}
	e.mu.Lock()
	if e.subs[s.streamID] != nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: stream %d on %s", ErrInUse, s.streamID, addr)
	}
	us.ep = e
	e.subs[s.streamID] = us
	reattached := e.core.subscribe(st)
	e.mu.Unlock()
	if reattached {
		e.conn.setReadDeadline(time.Now()) // dispatch the image events now
	}
	d.subs[s] = struct{}{}
	return s, nil
}

func (us *udpSubscription) unsubscribe() {
	e := us.ep
	e.mu.Lock()
	if e.subs[us.s.streamID] == us {
		delete(e.subs, us.s.streamID)
	}
	e.core.unsubscribe(us.s.streamID, e.d.now(), e.out)
	e.mu.Unlock()
	e.conn.setReadDeadline(time.Now()) // let the loop re-plan its timers
}

func (us *udpSubscription) stats(st *SubscriptionStats) {
	e := us.ep
	e.mu.Lock()
	c := us.gone
	for _, img := range e.core.images {
		if img.sub == us.stream {
			addImageCounters(&c, &img.c)
		}
	}
	st.SetupRequestsSent = e.core.c.setupRequests // endpoint-wide
	st.RejectedSetups = e.core.c.rejectedSetup
	e.mu.Unlock()
	st.FramesReceived, st.BytesReceived, st.DatagramsReceived = c.frames, c.bytes, c.datagrams
	st.HeartbeatsReceived, st.SetupsReceived = c.heartbeats, c.setups
	st.StatusMessagesSent, st.NAKsSent = c.sms, c.naks
	st.DuplicateOrLate, st.Overruns = c.duplicates, c.overruns
}

func (us *udpSubscription) localAddr() string { return us.ep.conn.localAddr().String() }

// polled sends a status message now if consumption moved a quarter
// window.
func (u *udpImage) polled(si *subImage) {
	if si.pos-u.img.smPos.Load() > int64(si.window/4) {
		u.ep.nudge(u.img)
	}
}

func (u *udpImage) ended(*subImage) bool { return false }
func (u *udpImage) detach(*subImage)     {}

// imageEvent applies an image event to the subscription (endpoint loop).
func (us *udpSubscription) imageEvent(ev imageEvent) {
	img := ev.img
	s := us.s
	if ev.available {
		// A new image starts at its join position; a re-attached one where
		// the previous subscription stopped reading.
		si := &subImage{sub: s, src: &udpImage{us.ep, img}, log: img.log, limit: &img.rebuild, posPub: &img.subPos,
			pos: img.subPos.Load(), sessionID: img.sessionID, window: img.window, source: img.src.String(), joinPos: img.joinPos}
		si.asm.maxBytes = maxMessageLength(img.log.termLen)
		s.addImage(si)
		return
	}
	us.ep.mu.Lock()
	addImageCounters(&us.gone, &img.c)
	us.ep.mu.Unlock()
	s.removeImage(func(si *subImage) bool {
		if u, ok := si.src.(*udpImage); ok && u.img == img {
			si.eos.Store(img.eos)
			return true
		}
		return false
	})
}

type pendingEvent struct {
	sub *udpSubscription
	ev  imageEvent
}

// loop reads the endpoint's socket with a deadline set to the receiver
// core's next timer, feeds every datagram to the core and dispatches image
// events outside the lock.
func (e *endpoint) loop() {
	rd := newDatagramReader(e.conn, 1<<16)
	var armed int64 = -1
	var evs []pendingEvent
	var sigs []*udpSubscription
	var direct *image // read its next datagram into its log (see directSlot)
	var scratch []byte
	pace := errPacer{where: "endpoint " + e.addr.String()}
	addSig := func(b []byte) {
		if len(b) > hdrLen && (getType(b) == typeData || getType(b) == typePad) {
			if s := e.subs[getI32(b, 16)]; s != nil && (len(sigs) == 0 || sigs[len(sigs)-1] != s) {
				sigs = append(sigs, s)
			}
		}
	}
	for {
		var slot []byte
		if direct != nil {
			e.mu.Lock()
			if e.core.images[imageKey{direct.sessionID, direct.streamID}] == direct {
				slot = direct.directSlot()
			}
			e.mu.Unlock()
			if slot == nil {
				direct = nil
			}
		}
		var n, dn int
		var dsrc netip.AddrPort
		var err error
		if slot != nil {
			// Only this goroutine writes the log at or above hwm, so the
			// slot stays valid while the lock is released.
			dn, dsrc, err = e.conn.readFrom(slot)
		} else {
			n, err = rd.read()
		}
		if err != nil && !isTimeout(err) {
			if isClosed(err) || !pace.fail(e.d, err, e.d.done) {
				return
			}
			continue
		}
		if err == nil {
			pace.ok()
		}
		now := e.d.now()
		sigs = sigs[:0]
		e.mu.Lock()
		if slot != nil && err == nil {
			b := slot[:dn]
			handled, stored := e.core.onDatagramInPlace(direct, b, dsrc, now, e.out)
			if !stored {
				if !handled {
					if scratch == nil {
						scratch = make([]byte, 1<<16)
					}
					b = scratch[:copy(scratch, b)]
				}
				direct.restoreSlot(slot, dn)
				if !handled {
					e.core.onDatagram(b, dsrc, now, e.out)
				}
			}
			addSig(b)
			if !stored || dn < e.directMin {
				direct = nil
			}
		}
		for i := 0; i < n; i++ {
			b, src := rd.datagram(i)
			e.core.onDatagram(b, src, now, e.out)
			addSig(b)
			if i == n-1 {
				direct = e.directCandidate(b)
			}
		}
		if now >= e.core.next {
			e.core.doWork(now, e.out)
		}
		evs = evs[:0]
		for _, ev := range e.core.events {
			// Events of a closed subscription's images are dropped.
			if s := e.subs[ev.img.streamID]; s != nil && s.stream == ev.img.sub {
				evs = append(evs, pendingEvent{s, ev})
			}
		}
		e.core.events = e.core.events[:0]
		next := e.core.next
		empty := len(e.subs) == 0 && len(e.core.images) == 0
		e.mu.Unlock()
		for _, pe := range evs {
			img := pe.ev.img
			e.d.logger.Info("transport: image", "available", pe.ev.available, "endpoint", e.addr,
				"session", img.sessionID, "stream", img.streamID, "source", img.src, "eos", img.eos)
			pe.sub.imageEvent(pe.ev)
		}
		for _, s := range sigs {
			s.s.signal()
		}
		if empty && e.shutdownIfEmpty() {
			return
		}
		if next != armed {
			e.conn.setReadDeadline(time.Now().Add(time.Duration(next - now)))
			armed = next
		}
	}
}

// directCandidate returns the image a long data datagram b was stored in
// when the image has no gap, so its next datagram can be read in place.
// Called with e.mu held.
func (e *endpoint) directCandidate(b []byte) *image {
	if len(b) < e.directMin || getType(b) != typeData || checkDatagram(b) != dropNone {
		return nil
	}
	img := e.core.images[imageKey{getI32(b, 12), getI32(b, 16)}]
	if img == nil || img.rebuildPos != img.hwm {
		return nil
	}
	return img
}

// shutdownIfEmpty closes the endpoint when no subscription and no image
// remain, and unregisters it so a later AddSubscription binds afresh.
func (e *endpoint) shutdownIfEmpty() bool {
	d := e.d
	d.mu.Lock()
	e.mu.Lock()
	empty := len(e.subs) == 0 && len(e.core.images) == 0
	if empty {
		e.closing = true
		if d.endpoints[e.addr] == e {
			delete(d.endpoints, e.addr)
			addEndpointStats(&d.retired, &e.core.c)
		}
	}
	e.mu.Unlock()
	d.mu.Unlock()
	if empty {
		_ = e.conn.close()
	}
	return empty
}

// nudge sends a status message now if consumption moved a quarter window
// (called by Poll).
func (e *endpoint) nudge(img *image) {
	e.mu.Lock()
	if img.state != imgGone {
		e.core.imageWork(img, e.d.now(), e.out)
	}
	e.mu.Unlock()
}
