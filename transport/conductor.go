package transport

import (
	"net/netip"
	"runtime"
	"time"
)

// The runners: goroutines that own the sockets and the clock and drive the
// pure cores. One send loop and one control loop per UDP publication, one
// receive loop per bound endpoint.

// publishLocked copies the sender's state to the atomics Offer reads.
// Called with sndMu held.
func (p *Publication) publishLocked(now int64) {
	p.sentPos.Store(p.snd.pos)
	p.sendLimit.Store(p.snd.limit)
	p.blockedAt.Store(p.snd.blockedLimit)
	p.pubLimit.Store(p.snd.producerLimit(now))
	p.connected.Store(p.snd.connected(now) && !p.snd.closing)
}

// hasWork reports whether offered data is waiting within the window.
func (p *Publication) hasWork() bool {
	prod, sent := p.producerPos.Load(), p.sentPos.Load()
	lim := p.sendLimit.Load()
	return prod > sent && sent < lim && lim != p.blockedAt.Load()
}

// sendLoop transmits offered data, SETUPs, heartbeats and end of stream.
// It blocks when idle; Offer wakes it through p.wake only when p.idle is
// set, so a busy producer pays one atomic load per offer.
func (p *Publication) sendLoop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	spin := p.d.cfg.SpinIdle
	for {
		now := p.d.now()
		p.sndMu.Lock()
		p.snd.doWork(now, p.producerPos.Load(), p.out)
		p.bw.flush()
		p.publishLocked(now)
		finished := p.snd.finished
		next := p.snd.nextDeadline(now)
		p.sndMu.Unlock()
		if finished {
			p.stopOnce.Do(func() { close(p.stop) })
			_ = p.conn.close()
			p.retire()
			return
		}
		if spin {
			select {
			case <-p.stop:
				return
			default:
			}
			if !p.hasWork() {
				runtime.Gosched()
			}
			continue
		}
		p.idle.Store(true)
		if p.hasWork() {
			p.idle.Store(false)
			continue
		}
		timer.Reset(time.Duration(next - now))
		select {
		case <-p.wake:
		case <-timer.C:
		case <-p.stop:
			p.idle.Store(false)
			return
		}
		p.idle.Store(false)
	}
}

// controlLoop reads SMs and NAKs from the publication's socket (blocking)
// and answers NAKs at once.
func (p *Publication) controlLoop() {
	buf := make([]byte, 2048)
	pace := errPacer{where: "publication " + p.conn.localAddr().String()}
	for {
		n, _, err := p.conn.readFrom(buf)
		if err != nil {
			if isClosed(err) {
				return
			}
			select {
			case <-p.stop:
				return
			default:
			}
			if !isTimeout(err) && !pace.fail(p.d, err, p.stop) {
				return
			}
			continue
		}
		pace.ok()
		now := p.d.now()
		p.sndMu.Lock()
		p.snd.onControl(buf[:n], now, p.out)
		p.bw.flush()
		p.publishLocked(now)
		p.sndMu.Unlock()
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

type pendingEvent struct {
	sub *Subscription
	ev  imageEvent
}

// directMin: data datagrams at least this long are read straight into
// their image's log while they keep arriving in order (one system call
// per datagram, no copy); shorter ones are read in batches and copied.
var directMin = 16 << 10

// loop reads the endpoint's socket with a deadline set to the receiver
// core's next timer, feeds every datagram to the core and dispatches image
// events outside the lock.
func (e *endpoint) loop() {
	rd := newDatagramReader(e.conn, 1<<16)
	var armed int64 = -1
	var evs []pendingEvent
	var sigs []*Subscription
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
			if !stored || dn < directMin {
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
			s.signal()
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
	if len(b) < directMin || getType(b) != typeData || checkDatagram(b) != dropNone {
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

// imageEvent applies an image event to the subscription (endpoint loop).
func (s *Subscription) imageEvent(ev imageEvent) {
	img := ev.img
	if ev.available {
		// A new image starts at its join position; a re-attached one where
		// the previous subscription stopped reading.
		si := &subImage{sub: s, img: img, log: img.log, limit: &img.rebuild, posPub: &img.subPos,
			pos: img.subPos.Load(), sessionID: img.sessionID, window: img.window, source: img.src.String(), joinPos: img.joinPos}
		si.asm.maxBytes = maxMessageLength(img.log.termLen)
		s.addImage(si)
		return
	}
	s.ep.mu.Lock()
	addImageCounters(&s.retired, &img.c)
	s.ep.mu.Unlock()
	s.removeImage(func(si *subImage) bool {
		if si.img == img {
			si.eos.Store(img.eos)
			return true
		}
		return false
	})
}
