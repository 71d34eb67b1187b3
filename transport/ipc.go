package transport

import "sync/atomic"

// IPC: publications and subscriptions of one stream in one driver share
// the publication's log; no goroutine is involved. A subscription's image
// of an IPC publication reads the log up to the producer position, and the
// slowest image's position plus the publication window limits the
// producer.

// ipcStream links the IPC publications and subscriptions of one stream.
// Guarded by Driver.mu.
type ipcStream struct {
	streamID int32
	pubs     []*Publication
	subs     []*Subscription
}

func (d *Driver) ipcStreamLocked(streamID int32) *ipcStream {
	st := d.ipc[streamID]
	if st == nil {
		st = &ipcStream{streamID: streamID}
		d.ipc[streamID] = st
	}
	return st
}

// ipcPublication is a publication's IPC media, and the source of every
// subscription image of it.
type ipcPublication struct {
	p    *Publication
	st   *ipcStream
	subs atomic.Pointer[[]*subImage] // the images reading this log
}

func (d *Driver) addIPCPublication(p *Publication) (*Publication, error) {
	ip := &ipcPublication{p: p}
	p.media = ip
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, ErrClosed
	}
	st := d.ipcStreamLocked(p.streamID)
	ip.st = st
	st.pubs = append(st.pubs, p)
	var joined []*subImage
	for _, s := range st.subs {
		joined = append(joined, ip.join(s))
	}
	d.pubs[p] = struct{}{}
	d.mu.Unlock()
	for _, si := range joined {
		si.sub.addImage(si)
	}
	return p, nil
}

// limit is the slowest image's position plus the publication window; not
// connected without images.
func (ip *ipcPublication) limit() (int64, bool) {
	subs := ip.subs.Load()
	if subs == nil || len(*subs) == 0 {
		return 0, false
	}
	lo := int64(1<<63 - 1)
	for _, si := range *subs {
		lo = min(lo, si.posPub.Load())
	}
	return lo + ip.p.pubWindow, true
}

func (ip *ipcPublication) afterAppend() {
	subs := ip.subs.Load()
	if subs == nil {
		return
	}
	for _, si := range *subs {
		si.sub.signal()
	}
}

// close leaves the stream; the images see the end of stream once they
// read what was offered (ended).
func (ip *ipcPublication) close() {
	p := ip.p
	p.d.mu.Lock()
	for i, q := range ip.st.pubs {
		if q == p {
			ip.st.pubs = append(ip.st.pubs[:i], ip.st.pubs[i+1:]...)
			break
		}
	}
	p.d.mu.Unlock()
	p.retire()
	ip.afterAppend()
}

func (ip *ipcPublication) stats(st *PublicationStats) {
	st.SenderPosition = st.Position
	st.SenderLimit, _ = ip.limit()
}

func (ip *ipcPublication) localAddr() string { return "ipc" }

// join makes subscription s's image of this publication, at its current
// position, for addImage. Called with Driver.mu held.
func (ip *ipcPublication) join(s *Subscription) *subImage {
	p := ip.p
	p.mu.Lock() // a stable position: no offer in flight
	pos := p.producerPos.Load()
	si := &subImage{sub: s, src: ip, log: p.log, limit: &p.producerPos, pos: pos,
		sessionID: p.sessionID, window: int32(p.pubWindow), source: "ipc", joinPos: pos}
	si.posPub = &si.ownPos
	si.ownPos.Store(pos)
	si.asm.maxBytes = p.maxMsg
	old := ip.subs.Load()
	var next []*subImage
	if old != nil {
		next = append(next, *old...)
	}
	next = append(next, si)
	ip.subs.Store(&next)
	p.mu.Unlock()
	return si
}

func (ip *ipcPublication) polled(*subImage) {}

func (ip *ipcPublication) ended(si *subImage) bool {
	return ip.p.closed.Load() && si.pos >= ip.p.producerPos.Load()
}

func (ip *ipcPublication) detach(si *subImage) {
	p := ip.p
	p.mu.Lock()
	if old := ip.subs.Load(); old != nil {
		var next []*subImage
		for _, x := range *old {
			if x != si {
				next = append(next, x)
			}
		}
		ip.subs.Store(&next)
	}
	p.mu.Unlock()
}

// ipcSubscription is a subscription's IPC media.
type ipcSubscription struct {
	s  *Subscription
	st *ipcStream
}

func (d *Driver) addIPCSubscription(s *Subscription) (*Subscription, error) {
	is := &ipcSubscription{s: s}
	s.media = is
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, ErrClosed
	}
	st := d.ipcStreamLocked(s.streamID)
	is.st = st
	st.subs = append(st.subs, s)
	d.subs[s] = struct{}{}
	var joined []*subImage
	for _, p := range st.pubs {
		if !p.closed.Load() {
			joined = append(joined, p.media.(*ipcPublication).join(s))
		}
	}
	d.mu.Unlock()
	for _, si := range joined {
		s.addImage(si)
	}
	return s, nil
}

func (is *ipcSubscription) unsubscribe() {
	s := is.s
	s.d.mu.Lock()
	for i, x := range is.st.subs {
		if x == s {
			is.st.subs = append(is.st.subs[:i], is.st.subs[i+1:]...)
			break
		}
	}
	s.d.mu.Unlock()
	for _, si := range *s.images.Load() {
		s.endImage(si)
	}
}

func (is *ipcSubscription) stats(*SubscriptionStats) {}

func (is *ipcSubscription) localAddr() string { return "ipc" }
