package transport

import (
	"math/bits"
	"net/netip"
	"sync/atomic"
)

// Pure receiver state of one bound endpoint and its images (aeron-wire.md
// §4–§7, the C receiver's behaviour). The runner calls onDatagram for
// every datagram read from the endpoint's socket and doWork when a timer is
// due, passing the current time; control frames (SM, NAK) are handed to
// out. Image events are queued in events for the runner to dispatch.
//
// Concurrency: everything is owned by the endpoint's runner (under its
// lock) except image.rebuild (stored here, loaded by the subscriber) and
// image.subPos (stored by the subscriber, loaded here), which are atomics.
// The subscriber only reads log bytes below rebuild; this code only
// writes at or above rebuild, and cleans a partition only once the
// subscriber's position has left it (guaranteed by the over-run bound).

type outFunc func(b []byte, to netip.AddrPort)

type recvParams struct {
	window    int   // configured receiver window (capped at T/2 per image)
	nakDelay  int64 // ns
	nakRetry  int64
	smTimeout int64
	liveness  int64 // image liveness
	connLive  int64 // SMs/NAKs only to senders heard within this
	setupHold int64
	drainHold int64
	soRcvBuf  int // SETUP mtu must not exceed it (0: unchecked)
	// maxTermLen, maxImages and maxPerSource bound what SETUPs can make
	// us allocate (3 × term length per image); 0 means unbounded. budget
	// (shared by every endpoint of a driver; nil: unbounded) is charged
	// with each image's log and credited when the image goes.
	maxTermLen   int
	maxImages    int
	maxPerSource int
	budget       *memBudget
}

// memBudget is the log memory a driver's images may hold. Endpoints charge
// it under their own locks, so it is atomic.
type memBudget struct {
	limit int64 // bytes; 0: unbounded
	used  atomic.Int64
}

func newMemBudget(limit int64) *memBudget { return &memBudget{limit: limit} }

// charge takes n bytes from the budget, or reports false and takes nothing.
func (b *memBudget) charge(n int64) bool {
	if b == nil {
		return true
	}
	for {
		u := b.used.Load()
		if b.limit > 0 && u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *memBudget) release(n int64) {
	if b != nil && n != 0 {
		b.used.Add(-n)
	}
}

// fits reports whether n bytes could ever be charged.
func (b *memBudget) fits(n int64) bool { return b == nil || b.limit == 0 || n <= b.limit }

// streamSub is a subscribed stream on an endpoint.
type streamSub struct {
	streamID  int32
	p         recvParams
	hasFilter bool
	sessionID int32 // session-id filter
	closed    bool
}

type imageKey struct{ session, stream int32 }

type imgState uint8

const (
	imgActive imgState = iota
	imgDraining
	imgGone
)

type imageCounters struct {
	frames, bytes, datagrams, heartbeats, setups uint64
	sms, naks, duplicates, overruns              uint64
}

type image struct {
	sessionID int32
	streamID  int32
	log       *logBuffer
	mtu       int32
	window    int32
	src       netip.AddrPort
	joinPos   int64
	p         recvParams
	sub       *streamSub

	rebuild atomic.Int64 // published rebuild position (subscriber's limit)
	subPos  atomic.Int64 // subscriber position, stored by the subscriber
	smPos   atomic.Int64 // last SM position, read by the subscriber to nudge SMs

	rebuildPos int64
	hwm        int64
	lastSMPos  int64
	lastSMTime int64
	smSent     bool
	// zeroedTo: every log byte in [rebuildPos, zeroedTo) is zero or was
	// written by onData in this lap of the log; beyond it the bytes are
	// stale (the partition held the term three terms earlier). Always
	// ≥ hwm: everything that reads frame lengths reads below hwm, or at a
	// new datagram's position when that is below zeroedTo. Zeroing is
	// done lazily as hwm moves, and skipped for the bytes an in-order
	// datagram overwrites anyway.
	zeroedTo int64

	gapActive bool
	gapTermID int32
	gapOff    int32
	gapLen    int32
	nakAt     int64

	eos        bool
	state      imgState
	drainSince int64
	lastPacket int64 // any frame of the session, SETUP included (liveness)
	// pending: SETUP seen, no data frame or heartbeat yet; its log is not
	// allocated and its subscription not told (see promote).
	pending  bool
	created  int64
	lastData int64 // last data frame or heartbeat (eviction: see victim)
	charged  int64 // bytes charged to p.budget

	c imageCounters
}

type imageEvent struct {
	img       *image
	available bool
}

type endpointCounters struct {
	invalid       [numDropReasons]uint64
	unknownStream uint64
	setupRequests uint64
	rejectedSetup uint64
	evicted       uint64 // images removed to admit a new session
	datagrams     uint64
	inPlace       uint64 // data datagrams stored where they were read
}

type recvEndpoint struct {
	receiverID int64
	streams    map[int32]*streamSub
	images     map[imageKey]*image
	hold       map[imageKey]int64 // no SETUP request to these sessions until
	evicted    map[imageKey]int64 // SETUPs of these sessions ignored until
	events     []imageEvent
	next       int64 // earliest image deadline: call doWork then
	c          endpointCounters
	scratch    [64]byte
}

func newRecvEndpoint(receiverID int64) *recvEndpoint {
	return &recvEndpoint{
		receiverID: receiverID,
		streams:    make(map[int32]*streamSub),
		next:       1 << 62,
		images:     make(map[imageKey]*image),
		hold:       make(map[imageKey]int64),
		evicted:    make(map[imageKey]int64),
	}
}

// onDatagram handles one datagram from src.
func (e *recvEndpoint) onDatagram(b []byte, src netip.AddrPort, now int64, out outFunc) {
	e.c.datagrams++
	if r := checkDatagram(b); r != dropNone {
		e.c.invalid[r]++
		return
	}
	switch getType(b) {
	case typeData, typePad:
		key := imageKey{getI32(b, 12), getI32(b, 16)}
		st := e.streams[key.stream]
		if st == nil || st.closed {
			e.c.unknownStream++
			return
		}
		if st.hasFilter && st.sessionID != key.session {
			return
		}
		img := e.images[key]
		if img == nil {
			if getFlags(b)&flagEOS != 0 {
				return
			}
			if until, ok := e.hold[key]; ok && now < until {
				return
			}
			out(encodeSM(e.scratch[:], smFlagSetup, key.session, key.stream, 0, 0, 0, e.receiverID), src)
			e.hold[key] = now + st.p.setupHold
			e.c.setupRequests++
			return
		}
		if img.pending && (img.state != imgActive || !img.promote(e, now)) {
			return
		}
		img.onData(b, src, now, false)
		e.imageWork(img, now, out)
	case typeSetup:
		e.onSetup(b, src, now, out)
	default:
		// SM, NAK, RTTM, ERR, RSP_SETUP are not for a receive endpoint.
	}
}

func (e *recvEndpoint) onSetup(b []byte, src netip.AddrPort, now int64, out outFunc) {
	key := imageKey{getI32(b, 12), getI32(b, 16)}
	st := e.streams[key.stream]
	if st == nil || st.closed {
		e.c.unknownStream++
		return
	}
	if st.hasFilter && st.sessionID != key.session {
		return
	}
	if img := e.images[key]; img != nil {
		img.c.setups++
		if img.state == imgActive {
			img.src = src
			img.lastPacket = now
			if img.pending { // answer each SETUP once (see imageWork)
				img.smSent = false
				e.imageWork(img, now, out)
			}
		}
		return
	}
	if until, ok := e.evicted[key]; ok && now < until {
		e.c.rejectedSetup++
		return
	}
	termOff, initial, active := getI32(b, 8), getI32(b, 20), getI32(b, 24)
	termLen, mtu := getI32(b, 28), getI32(b, 32)
	window := effectiveWindow(st.p.window, termLen)
	if !validTermLength(int(termLen)) || !validMTU(int(mtu)) || mtu > window ||
		(st.p.soRcvBuf > 0 && int(mtu) > st.p.soRcvBuf) ||
		termOff < 0 || termOff > termLen || termOff%frameAlign != 0 || active-initial < 0 ||
		(st.p.maxTermLen > 0 && int(termLen) > st.p.maxTermLen) || !st.p.budget.fits(3*int64(termLen)) {
		e.c.rejectedSetup++
		return
	}
	e.makeRoomPending(st.p, now)
	// The image is pending: no log memory, no subscriber event, not
	// counted by the limits until its first data frame or heartbeat
	// (promote). A SETUP alone costs nothing but a pending slot.
	log := &logBuffer{termLen: termLen, shift: uint(bits.TrailingZeros32(uint32(termLen))), initialTermID: initial}
	join, _ := log.position(active, termOff)
	img := &image{
		sessionID: key.session, streamID: key.stream, log: log, mtu: mtu, window: window,
		src: src, joinPos: join, p: st.p, sub: st,
		rebuildPos: join, hwm: join, lastSMPos: join,
		zeroedTo:   log.termStart(join) + 3*int64(termLen), // a fresh log is zero
		lastPacket: now, created: now, pending: true,
	}
	img.rebuild.Store(join)
	img.subPos.Store(join)
	img.smPos.Store(join)
	img.c.setups++
	e.images[key] = img
	delete(e.hold, key)
	e.imageWork(img, now, out) // first SM at once
}

// makeRoomPending evicts the oldest pending images while the endpoint
// holds maxImages of them (or more).
func (e *recvEndpoint) makeRoomPending(p recvParams, now int64) {
	if p.maxImages <= 0 {
		return
	}
	for {
		n := 0
		var oldest *image
		for _, img := range e.images {
			if !img.pending {
				continue
			}
			n++
			if oldest == nil || img.created < oldest.created || img.created == oldest.created && imageLess(img, oldest) {
				oldest = img
			}
		}
		if n < p.maxImages {
			return
		}
		e.evict(oldest, now)
	}
}

// promote turns a pending image into a live one on its first data frame
// or heartbeat: the limits (images per source address, per endpoint, the
// memory budget) are checked, evicting silent images to make room (see
// victim), the log is allocated and the subscriber told. If there is no
// room the image goes and its session is held off for setupHold; its
// publisher retries with SETUP later.
func (img *image) promote(e *recvEndpoint, now int64) bool {
	need := 3 * int64(img.log.termLen)
	if !e.admit(img.p, img.src.Addr(), need, now) {
		e.c.rejectedSetup++
		e.evict(img, now)
		return false
	}
	img.pending = false
	img.charged = need
	img.log.buf = make([]byte, need)
	e.events = append(e.events, imageEvent{img, true})
	return true
}

// admit makes room for a new image of need bytes from address from: while
// a limit (live images per source address, per endpoint, the memory
// budget) would be exceeded, it evicts a silent image (see victim); then
// it charges the budget. It reports false, having charged nothing, when no
// image may make room.
func (e *recvEndpoint) admit(p recvParams, from netip.Addr, need, now int64) bool {
	if !p.budget.fits(need) {
		return false
	}
	for {
		var victim *image
		switch {
		case p.maxPerSource > 0 && e.liveImages(from, true) >= p.maxPerSource:
			victim = e.victim(now, from, true)
		case p.maxImages > 0 && e.liveImages(from, false) >= p.maxImages:
			victim = e.victim(now, from, false)
		case !p.budget.charge(need):
			victim = e.victim(now, from, false)
		default:
			return true
		}
		if victim == nil {
			return false
		}
		e.evict(victim, now)
	}
}

// liveImages counts the endpoint's live (not pending) images, with
// sameSource only those whose publisher sends from address a.
func (e *recvEndpoint) liveImages(a netip.Addr, sameSource bool) int {
	n := 0
	for _, img := range e.images {
		if !img.pending && img.state != imgGone && (!sameSource || img.src.Addr() == a) {
			n++
		}
	}
	return n
}

// victim picks the live image a new one may replace, or nil: one whose
// sender has been silent (no data frame, no heartbeat) for setupHold and
// whose data the subscriber has consumed — a dead or restarted publisher
// waiting for its liveness timeout — the longest silent first; with
// sameSource only images from address from. Images that keep receiving
// data are never evicted: a peer sending data at us holds its slot like
// any publisher.
func (e *recvEndpoint) victim(now int64, from netip.Addr, sameSource bool) *image {
	var best *image
	for _, img := range e.images {
		if img.pending || img.state == imgGone || (sameSource && img.src.Addr() != from) ||
			now-img.lastData < img.p.setupHold || img.subPos.Load() < img.rebuildPos {
			continue
		}
		if best == nil || img.lastData < best.lastData || img.lastData == best.lastData && imageLess(img, best) {
			best = img
		}
	}
	return best
}

// imageLess orders images deterministically (map iteration is random).
func imageLess(a, b *image) bool {
	if a.streamID != b.streamID {
		return a.streamID < b.streamID
	}
	return a.sessionID < b.sessionID
}

// evict removes img at once (its subscription sees it unavailable), frees
// its budget and holds its session off for setupHold so it cannot take the
// room straight back.
func (e *recvEndpoint) evict(img *image, now int64) {
	key := imageKey{img.sessionID, img.streamID}
	e.remove(img)
	e.evicted[key] = now + img.p.setupHold
	e.c.evicted++
}

// remove deletes img, queues its unavailable event (a pending image was
// never available) and credits its budget.
func (e *recvEndpoint) remove(img *image) {
	img.state = imgGone
	delete(e.images, imageKey{img.sessionID, img.streamID})
	if !img.pending {
		e.events = append(e.events, imageEvent{img, false})
	}
	img.p.budget.release(img.charged)
	img.charged = 0
}

// directSlot returns where the next in-order datagram of img goes in its
// log (at hwm), 64 KiB long so no datagram can be truncated, or nil when
// the rebuild has a gap or the term has less room left. Reading a datagram
// there saves copying it; onDatagramInPlace then accepts it or the caller
// restores the slot with restoreSlot. Writing there is safe: nothing is
// stored at or above hwm, and hwm + 64 KiB − 3T lies below the subscriber
// (hwm ≤ its position + T/2, T ≥ 64 KiB).
func (img *image) directSlot() []byte {
	l := img.log
	off := int(l.termOffset(img.hwm))
	if img.state != imgActive || img.rebuildPos != img.hwm || int(l.termLen)-off < 1<<16 {
		return nil
	}
	return l.termAt(img.hwm)[off : off+1<<16]
}

// restoreSlot zeroes what a datagram of n bytes read into directSlot (at
// hwm) overwrote below zeroedTo.
func (img *image) restoreSlot(slot []byte, n int) {
	if z := img.zeroedTo - img.hwm; z > 0 {
		clear(slot[:min(int64(n), z)])
	}
}

// onDatagramInPlace handles a datagram read into img's directSlot, which
// must be unchanged since. It reports whether the datagram was handled
// (a data datagram of img's stream at exactly hwm: counted, and stored or
// rejected by the image checks) and whether it was stored; when it was not
// stored the caller restores the slot, and when it was not handled also
// passes a copy to onDatagram.
func (e *recvEndpoint) onDatagramInPlace(img *image, b []byte, src netip.AddrPort, now int64, out outFunc) (handled, stored bool) {
	if checkDatagram(b) != dropNone || getType(b) != typeData || len(b) < hdrLen || getFrameLength(b) <= 0 ||
		getI32(b, 12) != img.sessionID || getI32(b, 16) != img.streamID {
		return false, false
	}
	key := imageKey{img.sessionID, img.streamID}
	if st := e.streams[key.stream]; st == nil || st.closed || st != img.sub || e.images[key] != img || img.pending {
		return false, false
	}
	if pos, ok := img.log.position(getI32(b, 20), getI32(b, 8)); !ok || pos != img.hwm {
		return false, false
	}
	e.c.datagrams++
	stored = img.onData(b, src, now, true)
	if stored {
		e.c.inPlace++
	}
	e.imageWork(img, now, out)
	return true, stored
}

// onData inserts a data datagram (already validated by checkDatagram) and
// reports whether it was stored. inPlace: b already lies where it belongs
// in the log (read there by the runner, see directSlot).
func (img *image) onData(b []byte, src netip.AddrPort, now int64, inPlace bool) bool {
	l := img.log
	T := l.termLen
	termOff, termID := getI32(b, 8), getI32(b, 20)
	pos, ok := l.position(termID, termOff)
	if !ok || termOff < 0 || termOff >= T || termOff%frameAlign != 0 {
		img.c.overruns++
		return false
	}
	fl := getFrameLength(b)
	if len(b) == heartbeatLen && fl == 0 {
		if pos < img.lastSMPos-int64(T) || overrun(pos, img.lastSMPos, T) {
			img.c.overruns++
			return false
		}
		img.c.heartbeats++
		img.lastPacket = now
		img.lastData = now
		img.zeroUpTo(pos)
		img.hwm = max(img.hwm, pos)
		if getFlags(b)&flagEOS != 0 {
			img.eos = true
		}
		img.advance()
		return false
	}
	// Walk the frames: consistent offsets, one session/stream/term, and
	// the extent they cover (a PAD covers up to the term end).
	extent := int32(0)
	frames := uint64(0)
	ok = true
	forEachChecked(b, func(typ int16, f []byte) {
		if getI32(f, 8) != termOff+extent || getI32(f, 12) != img.sessionID || getI32(f, 16) != img.streamID || getI32(f, 20) != termID {
			ok = false
		}
		extent += int32(align32(int(getFrameLength(f))))
		frames++
	})
	if !ok || int64(termOff)+int64(extent) > int64(T) || int(termOff)+len(b) > int(T) {
		img.c.overruns++
		return false
	}
	end := pos + int64(extent)
	if pos < img.lastSMPos || pos < img.rebuildPos {
		img.c.duplicates++ // under-run: already consumed
		return false
	}
	if overrun(pos+int64(len(b)), img.lastSMPos, T) {
		img.c.overruns++
		return false
	}
	img.lastPacket = now
	img.lastData = now
	term := l.termAt(pos)
	// Only the frames are stored, not bytes trailing them.
	w := min(len(b), int(extent))
	if inPlace {
		clear(term[int(termOff)+w : int(termOff)+len(b)])
	} else {
		if pos < img.zeroedTo && getFrameLength(term[termOff:]) != 0 {
			img.c.duplicates++
			return false
		}
		// Stale bytes between the clean region and this datagram are
		// zeroed (a gap the NAK scan must see as empty); the datagram's
		// own bytes are overwritten, so only what its extent covers beyond
		// them (a PAD to the term end) is zeroed after the copy.
		img.zeroUpTo(pos)
		copy(term[int(termOff)+4:int(termOff)+w], b[4:w])
		putI32(term, int(termOff), fl) // frame_length last
	}
	if tail := pos + int64(w); end > tail && end > img.zeroedTo {
		img.zeroedTo = max(img.zeroedTo, tail)
		img.zeroUpTo(end)
	}
	img.zeroedTo = max(img.zeroedTo, end)
	img.c.datagrams++
	img.c.bytes += uint64(len(b))
	img.c.frames += frames
	img.hwm = max(img.hwm, end)
	img.advance()
	return true
}

// zeroUpTo zeroes the log from zeroedTo up to position to (term by term)
// and moves zeroedTo there.
func (img *image) zeroUpTo(to int64) {
	l := img.log
	for img.zeroedTo < to {
		p := img.zeroedTo
		n := min(to, l.termStart(p)+int64(l.termLen)) - p
		off := int64(l.termOffset(p))
		clear(l.termAt(p)[off : off+n])
		img.zeroedTo = p + n
	}
}

// advance moves the rebuild position over contiguous frames and publishes it.
func (img *image) advance() {
	l := img.log
	p := img.rebuildPos
	for p < img.hwm {
		term := l.termAt(p)
		off := l.termOffset(p)
		fl := getFrameLength(term[off:])
		// A frame must lie within its term and below hwm; anything else is
		// garbage from a misbehaving sender and stops the rebuild there.
		if fl < hdrLen || int(off)+align32(int(fl)) > int(l.termLen) || p+int64(align32(int(fl))) > img.hwm {
			break
		}
		p += int64(align32(int(fl))) // a PAD's frame_length runs to the term end
	}
	if p != img.rebuildPos {
		img.rebuildPos = p
		img.rebuild.Store(p)
	}
}

// scanGap finds the first gap between rebuild and hwm (within rebuild's
// term) and arms or keeps its NAK timer.
func (img *image) scanGap(now int64) {
	l := img.log
	if img.rebuildPos >= img.hwm {
		img.gapActive = false
		return
	}
	term := l.termAt(img.rebuildPos)
	start := l.termOffset(img.rebuildPos)
	limit := int64(l.termLen)
	if img.hwm-l.termStart(img.rebuildPos) < limit {
		limit = img.hwm - l.termStart(img.rebuildPos)
	}
	end := start
	for int64(end) < limit && getFrameLength(term[end:]) == 0 {
		end += frameAlign
	}
	termID := l.termID(img.rebuildPos)
	if !img.gapActive || img.gapTermID != termID || img.gapOff != start {
		img.gapActive = true
		img.gapTermID, img.gapOff = termID, start
		img.nakAt = now + img.p.nakDelay
	}
	img.gapLen = end - start
}

// imageWork runs an image's timers: NAKs, status messages, liveness and
// draining.
func (e *recvEndpoint) imageWork(img *image, now int64, out outFunc) {
	if img.state == imgGone {
		return
	}
	senderLive := now-img.lastPacket < img.p.connLive
	img.scanGap(now)
	if img.gapActive && now >= img.nakAt && img.gapLen > 0 {
		if senderLive {
			out(encodeNAK(e.scratch[:], img.sessionID, img.streamID, img.gapTermID, img.gapOff, img.gapLen), img.src)
			img.c.naks++
		}
		img.nakAt = now + img.p.nakRetry
	}
	if img.state == imgActive {
		switch {
		case img.eos && img.rebuildPos >= img.hwm,
			img.sub.closed,
			now-img.lastPacket >= img.p.liveness:
			img.state = imgDraining
			img.drainSince = now
		}
	}
	consumption := img.subPos.Load()
	// A pending image answers SETUPs, one SM each, and sends nothing on
	// its own: forged SETUPs with someone else's source address must not
	// make us send that address a stream of SMs.
	if smDue(now, img.lastSMTime, img.smSent, consumption, img.lastSMPos, img.window, img.p.smTimeout) && senderLive &&
		!(img.pending && img.smSent) {
		flags := uint8(0)
		if img.state == imgDraining {
			flags = smFlagEOS
		}
		out(encodeSM(e.scratch[:], flags, img.sessionID, img.streamID, img.log.termID(consumption), img.log.termOffset(consumption), img.window, e.receiverID), img.src)
		img.smSent = true
		img.lastSMTime = now
		img.lastSMPos = consumption
		img.smPos.Store(consumption)
		img.c.sms++
	}
	if img.state == imgDraining {
		drained := img.sub.closed || consumption >= img.rebuildPos
		if (drained && now-img.drainSince >= img.p.drainHold) || now-img.drainSince >= img.p.liveness {
			e.remove(img)
			return
		}
	}
	e.next = min(e.next, img.deadline(now))
}

// doWork runs every image's timers and returns the next deadline (also
// kept in e.next, which onDatagram lowers as images need).
func (e *recvEndpoint) doWork(now int64, out outFunc) int64 {
	e.next = now + 1<<40
	for _, img := range e.images {
		e.imageWork(img, now, out)
	}
	next := e.next
	for k, until := range e.hold {
		if now >= until {
			delete(e.hold, k)
		}
	}
	for k, until := range e.evicted {
		if now >= until {
			delete(e.evicted, k)
		}
	}
	return max(next, now)
}

// deadline is the next time the image's timers need attention; a timer
// already past (an SM held back because the sender is silent, a drain
// waiting for the subscriber) is polled every 10 ms rather than spun on.
func (img *image) deadline(now int64) int64 {
	d := img.lastSMTime + img.p.smTimeout
	if img.pending {
		d = now + img.p.liveness // only SETUPs make it send
	}
	if img.gapActive {
		d = min(d, img.nakAt)
	}
	if img.state == imgDraining {
		d = min(d, img.drainSince+img.p.drainHold)
	} else {
		d = min(d, img.lastPacket+img.p.liveness)
	}
	if d <= now {
		d = now + 10_000_000
	}
	return d
}

// subscribe adds or replaces a stream subscription. Images of the stream
// still draining because the previous subscription closed (not because the
// publisher ended) are handed to the new one, which resumes where the old
// one stopped reading; it reports whether any was.
func (e *recvEndpoint) subscribe(st *streamSub) bool {
	e.streams[st.streamID] = st
	reattached := false
	for _, img := range e.images {
		if img.streamID != st.streamID || img.sub == st || !img.sub.closed || img.eos || img.state != imgDraining ||
			(st.hasFilter && st.sessionID != img.sessionID) {
			continue
		}
		img.sub = st
		img.p = st.p
		img.state = imgActive
		img.smSent = false // tell the sender at once that we are back
		if !img.pending {
			e.events = append(e.events, imageEvent{img, true})
			reattached = true
		}
	}
	return reattached
}

// unsubscribe marks the stream closed; its images drain and go.
func (e *recvEndpoint) unsubscribe(streamID int32, now int64, out outFunc) {
	st := e.streams[streamID]
	if st == nil {
		return
	}
	st.closed = true
	delete(e.streams, streamID)
	for _, img := range e.images {
		if img.sub == st {
			e.imageWork(img, now, out)
		}
	}
}
