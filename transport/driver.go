package transport

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Lock order: Driver.mu → endpoint.mu → Publication.sndMu; Publication.mu
// (offers) is a leaf; Subscription.imgMu is a leaf; Subscription.evMu is
// held only while calling image handlers.

// Driver is an embedded Aeron media driver: it owns the sockets, the log
// buffers and the goroutines of its publications and subscriptions.
type Driver struct {
	cfg    Config
	logger *slog.Logger
	start  time.Time

	rngMu sync.Mutex // guards rng
	rng   *rand.Rand

	mu        sync.Mutex // guards the fields below
	closed    bool
	endpoints map[netip.AddrPort]*endpoint
	pubs      map[*Publication]struct{}
	subs      map[*Subscription]struct{}
	ipc       map[int32]*ipcStream
	retired   DriverStats // counters of closed publications and subscriptions
	budget    *memBudget  // receive log memory of every image

	socketErrors atomic.Uint64 // failed socket reads (see errPacer)
	sendErrors   atomic.Uint64 // failed SM/NAK sends of endpoints

	wg   sync.WaitGroup
	done chan struct{}
}

// NewDriver validates cfg and starts a driver. It starts no goroutine until
// publications or subscriptions are added.
func NewDriver(cfg Config) (*Driver, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	seed := uint64(cfg.Seed)
	if seed == 0 {
		var b [8]byte
		_, _ = crand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Driver{
		cfg:       cfg,
		logger:    logger,
		start:     time.Now(),
		rng:       rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15)),
		endpoints: make(map[netip.AddrPort]*endpoint),
		pubs:      make(map[*Publication]struct{}),
		subs:      make(map[*Subscription]struct{}),
		ipc:       make(map[int32]*ipcStream),
		done:      make(chan struct{}),
		budget:    newMemBudget(cfg.ReceiveBufferBudget),
	}, nil
}

// Config returns the driver's configuration.
func (d *Driver) Config() Config { return d.cfg }

func (d *Driver) now() int64 {
	if d.cfg.Now != nil {
		return d.cfg.Now()
	}
	return int64(time.Since(d.start))
}

func (d *Driver) randU64() uint64 {
	d.rngMu.Lock()
	defer d.rngMu.Unlock()
	return d.rng.Uint64()
}

func (d *Driver) goRun(f func()) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		f()
	}()
}

// Close closes the driver. Its UDP publications first drain what was
// offered and end their streams as Publication.Close does; Close waits for
// that at most the longest publication linger, then stops every goroutine
// and closes every socket and subscription. Safe to call twice.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.wg.Wait()
		return nil
	}
	d.closed = true
	close(d.done)
	var pubs []*Publication
	for p := range d.pubs {
		pubs = append(pubs, p)
	}
	d.mu.Unlock()

	var linger time.Duration
	for _, p := range pubs {
		if p.conn != nil {
			linger = max(linger, p.linger)
		}
		_ = p.Close()
	}
	deadline := time.NewTimer(linger)
	defer deadline.Stop()
	for _, p := range pubs {
		if p.conn == nil {
			continue
		}
		select {
		case <-p.stop: // finished: the send loop closed the socket
		case <-deadline.C:
			deadline.Reset(0)
		}
		p.stopOnce.Do(func() { close(p.stop) })
		_ = p.conn.close()
	}

	d.mu.Lock()
	var eps []*endpoint
	for _, e := range d.endpoints {
		eps = append(eps, e)
	}
	var subs []*Subscription
	for s := range d.subs {
		subs = append(subs, s)
	}
	d.mu.Unlock()
	for _, s := range subs {
		s.markClosed()
	}
	for _, e := range eps {
		_ = e.conn.close()
	}
	d.wg.Wait()
	return nil
}

// AddPublication creates a publication on channel (aeron:udp?endpoint=...
// or aeron:ipc) and stream. A UDP publication sends from its own ephemeral
// socket, which also receives the subscriber's status messages and NAKs.
func (d *Driver) AddPublication(channel string, streamID int32) (*Publication, error) {
	ch, err := parseChannel(channel)
	if err != nil {
		return nil, err
	}
	termLen := d.cfg.TermLength
	if ch.termLength != 0 {
		termLen = ch.termLength
	}
	mtu := d.cfg.MTU
	if ch.mtu != 0 {
		mtu = ch.mtu
	}
	pubWnd := d.cfg.PublicationWindow
	if ch.pubWnd != 0 {
		pubWnd = ch.pubWnd
	}
	if pubWnd == 0 || pubWnd > termLen/2 {
		pubWnd = termLen / 2
	}
	if pubWnd < mtu {
		return nil, badChannel(channel, "pub-wnd", "smaller than the MTU %d", mtu)
	}
	if ch.hasPosition && ch.termLength == 0 && int(ch.termOffset) > termLen {
		return nil, badChannel(channel, "term-offset", "beyond the term length %d", termLen)
	}
	linger := d.cfg.PublicationLinger
	if ch.hasLinger {
		linger = ch.linger
	}
	r := d.randU64()
	sessionID := int32(r)
	if ch.hasSessionID {
		sessionID = ch.sessionID
	}
	initial := int32(r >> 32)
	var start int64
	log := newLogBuffer(int32(termLen), initial)
	if ch.hasPosition {
		log.initialTermID = ch.initTermID
		start, _ = log.position(ch.termID, ch.termOffset)
	}
	p := &Publication{
		d:          d,
		linger:     linger,
		channel:    channel,
		streamID:   streamID,
		sessionID:  sessionID,
		log:        log,
		maxMsg:     maxMessageLength(int32(termLen)),
		maxPayload: mtu - hdrLen,
		pubWindow:  int64(pubWnd),
		wake:       make(chan struct{}, 1),
	}
	p.app = termAppender{log: log, sessionID: sessionID, streamID: streamID, maxPayload: mtu - hdrLen, pos: start}
	p.producerPos.Store(start)
	p.sentPos.Store(start)
	p.sendLimit.Store(start)
	p.pubLimit.Store(start)

	if ch.ipc {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return nil, ErrClosed
		}
		st := d.ipcStreamLocked(streamID)
		p.ipc = st
		st.pubs = append(st.pubs, p)
		var joined []*subImage
		for _, s := range st.subs {
			joined = append(joined, s.joinIPC(p))
		}
		d.pubs[p] = struct{}{}
		d.mu.Unlock()
		for _, si := range joined {
			si.sub.addImage(si)
		}
		return p, nil
	}

	dest, err := resolveUDP(ch.endpoint)
	if err != nil {
		return nil, badChannel(channel, "endpoint", "%v", err)
	}
	local, err := localFor(dest, ch.iface)
	if err != nil {
		return nil, badChannel(channel, "interface", "%v", err)
	}
	rcvBuf, sndBuf := d.socketBuffers(ch)
	conn, err := listenUDP(local, rcvBuf, sndBuf)
	if err != nil {
		return nil, fmt.Errorf("transport: publication socket: %w", err)
	}
	p.conn = conn
	p.dest = dest
	p.stop = make(chan struct{})
	now := d.now()
	p.snd = newSender(senderParams{
		sessionID: sessionID, streamID: streamID, mtu: mtu, pubWindow: int64(pubWnd),
		heartbeat: int64(d.cfg.HeartbeatInterval), connTimeout: int64(d.cfg.ConnectionTimeout),
		rtxLinger: int64(d.cfg.RetransmitLinger), linger: int64(linger), eos: ch.eos,
	}, log, start, now)
	p.bw = newDatagramWriter(conn, dest)
	p.out = p.bw.add
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		_ = conn.close()
		return nil, ErrClosed
	}
	d.pubs[p] = struct{}{}
	d.goRun(p.sendLoop)
	d.goRun(p.controlLoop)
	d.mu.Unlock()
	d.logger.Debug("transport: publication added", "channel", channel, "stream", streamID, "session", sessionID, "local", conn.localAddr())
	return p, nil
}

// AddSubscription subscribes to stream on channel. For aeron:udp the
// endpoint is bound (shared by every subscription of this driver on that
// endpoint, one subscription per stream); each publishing session becomes
// an image.
func (d *Driver) AddSubscription(channel string, streamID int32, opts ...SubscriptionOption) (*Subscription, error) {
	ch, err := parseChannel(channel)
	if err != nil {
		return nil, err
	}
	s := &Subscription{
		d:        d,
		channel:  channel,
		streamID: streamID,
		notify:   make(chan struct{}, 1),
		closedCh: make(chan struct{}),
	}
	for _, o := range opts {
		o(&s.opts)
	}
	empty := []*subImage{}
	s.images.Store(&empty)
	if ch.ipc {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return nil, ErrClosed
		}
		st := d.ipcStreamLocked(streamID)
		s.ipc = st
		st.subs = append(st.subs, s)
		d.subs[s] = struct{}{}
		var joined []*subImage
		for _, p := range st.pubs {
			if !p.closed.Load() {
				joined = append(joined, s.joinIPC(p))
			}
		}
		d.mu.Unlock()
		for _, si := range joined {
			s.addImage(si)
		}
		return s, nil
	}
	addr, err := resolveUDP(ch.endpoint)
	if err != nil {
		return nil, badChannel(channel, "endpoint", "%v", err)
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
		streamID: streamID, hasFilter: ch.hasSessionID, sessionID: ch.sessionID,
		p: recvParams{
			window: window, nakDelay: int64(nakDelay), nakRetry: 100 * int64(nakDelay),
			smTimeout: int64(d.cfg.StatusMessageTimeout), liveness: int64(d.cfg.ImageLivenessTimeout),
			connLive: int64(d.cfg.ConnectionTimeout), setupHold: int64(d.cfg.PendingSetupHold),
			drainHold:  5 * int64(d.cfg.StatusMessageTimeout),
			maxTermLen: d.cfg.MaxReceiveTermLength, maxImages: d.cfg.MaxImagesPerEndpoint,
			maxPerSource: d.cfg.MaxImagesPerSource, budget: d.budget,
		},
	}
	s.stream = st

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
		e = &endpoint{d: d, addr: addr, conn: conn, subs: make(map[int32]*Subscription), rcvBuf: conn.rcvBufSize()}
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
	if e.subs[streamID] != nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: stream %d on %s", ErrInUse, streamID, addr)
	}
	s.ep = e
	e.subs[streamID] = s
	reattached := e.core.subscribe(st)
	e.mu.Unlock()
	if reattached {
		e.conn.setReadDeadline(time.Now()) // dispatch the image events now
	}
	d.subs[s] = struct{}{}
	return s, nil
}

func (d *Driver) ipcStreamLocked(streamID int32) *ipcStream {
	st := d.ipc[streamID]
	if st == nil {
		st = &ipcStream{streamID: streamID}
		d.ipc[streamID] = st
	}
	return st
}

// Stats returns aggregated counters over live and closed publications and
// subscriptions.
func (d *Driver) Stats() DriverStats {
	d.mu.Lock()
	out := d.retired
	out.InvalidDatagrams = map[string]uint64{}
	for k, v := range d.retired.InvalidDatagrams {
		out.InvalidDatagrams[k] = v
	}
	var pubs []*Publication
	for p := range d.pubs {
		pubs = append(pubs, p)
	}
	var subs []*Subscription
	for s := range d.subs {
		subs = append(subs, s)
	}
	var eps []*endpoint
	for _, e := range d.endpoints {
		eps = append(eps, e)
	}
	d.mu.Unlock()
	out.Publications, out.Subscriptions, out.Endpoints = len(pubs), len(subs), len(eps)
	for _, p := range pubs {
		addPubStats(&out, p.Stats())
	}
	for _, s := range subs {
		st := s.Stats()
		addSubStats(&out, st)
		out.Images += st.Images
	}
	for _, e := range eps {
		e.mu.Lock()
		for r, n := range e.core.c.invalid {
			if n > 0 {
				out.InvalidDatagrams[dropReason(r).String()] += n
			}
		}
		out.UnknownStream += e.core.c.unknownStream
		out.SMsSent += e.core.c.setupRequests
		out.RejectedSetups += e.core.c.rejectedSetup
		out.EvictedImages += e.core.c.evicted
		for _, img := range e.core.images {
			if img.pending {
				out.PendingImages++
			}
		}
		e.mu.Unlock()
	}
	out.ReceiveBufferBytes = d.budget.used.Load()
	out.SocketErrors = d.socketErrors.Load()
	out.SendErrors += d.sendErrors.Load()
	return out
}

func addPubStats(out *DriverStats, ps PublicationStats) {
	out.FramesSent += ps.FramesSent
	out.BytesSent += ps.BytesSent
	out.SetupsSent += ps.SetupsSent
	out.SMsReceived += ps.StatusMessages
	out.NAKsReceived += ps.NAKsReceived
	out.Retransmits += ps.Retransmits
	out.HeartbeatsSent += ps.HeartbeatsSent
	out.BackPressure += ps.BackPressureEvents
	out.SendErrors += ps.SendErrors
	if ps.InvalidFrames > 0 {
		if out.InvalidDatagrams == nil {
			out.InvalidDatagrams = map[string]uint64{}
		}
		out.InvalidDatagrams["publication"] += ps.InvalidFrames
	}
}

func addSubStats(out *DriverStats, ss SubscriptionStats) {
	out.FramesReceived += ss.FramesReceived
	out.BytesReceived += ss.BytesReceived
	out.SetupsReceived += ss.SetupsReceived
	out.SMsSent += ss.StatusMessagesSent
	out.NAKsSent += ss.NAKsSent
}

// ipcStream links the IPC publications and subscriptions of one stream.
// Guarded by Driver.mu.
type ipcStream struct {
	streamID int32
	pubs     []*Publication
	subs     []*Subscription
}

// Publication sends messages on one stream to one endpoint (or IPC).
type Publication struct {
	d          *Driver
	channel    string
	streamID   int32
	sessionID  int32
	log        *logBuffer
	maxMsg     int
	maxPayload int
	pubWindow  int64
	linger     time.Duration // end-of-stream bound (UDP)

	mu           sync.Mutex // guards app and the offer counters
	app          termAppender
	offered      uint64
	notConnected uint64
	backPressure atomic.Uint64

	producerPos atomic.Int64
	pubLimit    atomic.Int64
	connected   atomic.Bool
	closed      atomic.Bool
	closeOnce   sync.Once

	// UDP only.
	conn      *udpConn
	dest      netip.AddrPort
	out       sendFunc
	sndMu     sync.Mutex // guards snd
	snd       *sender
	sentPos   atomic.Int64
	sendLimit atomic.Int64
	blockedAt atomic.Int64
	idle      atomic.Bool
	wake      chan struct{}
	stop      chan struct{}
	stopOnce  sync.Once
	bw        datagramWriter // guarded by sndMu

	// IPC only.
	ipc     *ipcStream
	ipcSubs atomic.Pointer[[]*subImage]
}

// Offer appends msg to the stream and returns the new stream position. It
// never blocks. Refusals return (negative code, sentinel): ErrNotConnected,
// ErrBackPressured, ErrClosed, ErrMaxPositionExceeded, ErrMessageTooLarge;
// none of them allocates. Safe for concurrent use.
func (p *Publication) Offer(msg []byte) (int64, error) {
	if p.closed.Load() {
		return PublicationClosed, ErrClosed
	}
	if len(msg) > p.maxMsg {
		return AdminAction, ErrMessageTooLarge
	}
	// A back-pressured producer retrying in a loop takes no lock: the
	// tail (stale only towards lower values) plus the frame already
	// exceeds the limit.
	if p.ipc == nil && p.connected.Load() && p.producerPos.Load()+int64(framedLength(len(msg), p.maxPayload)) > p.pubLimit.Load() {
		p.backPressure.Add(1)
		return BackPressured, ErrBackPressured
	}
	p.mu.Lock()
	if code, err := p.admitLocked(len(msg)); err != nil {
		p.mu.Unlock()
		return code, err
	}
	pos := p.app.append(msg, 0)
	p.producerPos.Store(pos)
	p.offered++
	p.mu.Unlock()
	p.afterAppend()
	return pos, nil
}

// admitLocked, with p.mu held, checks that a message of msgLen bytes may
// be appended now and returns Offer's refusal (code, sentinel) if not.
func (p *Publication) admitLocked(msgLen int) (int64, error) {
	limit, connected := p.limit()
	if !connected {
		p.notConnected++
		return NotConnected, ErrNotConnected
	}
	req := p.app.required(msgLen)
	if req > limit {
		p.backPressure.Add(1)
		return BackPressured, ErrBackPressured
	}
	if req > p.log.maxPosition() {
		return MaxPositionExceeded, ErrMaxPositionExceeded
	}
	return 0, nil
}

// socketBuffers returns the socket buffer sizes for ch: its so-rcvbuf and
// so-sndbuf parameters, else the driver's defaults.
func (d *Driver) socketBuffers(ch *channel) (rcv, snd int) {
	rcv, snd = d.cfg.SocketRcvBuf, d.cfg.SocketSndBuf
	if ch.soRcvBuf != 0 {
		rcv = ch.soRcvBuf
	}
	if ch.soSndBuf != 0 {
		snd = ch.soSndBuf
	}
	return rcv, snd
}

// afterAppend wakes whoever consumes the log: the IPC subscriptions, or
// the send goroutine if it is idle.
func (p *Publication) afterAppend() {
	if p.ipc != nil {
		p.signalIPC()
	} else if p.idle.Load() && p.idle.CompareAndSwap(true, false) {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// limit returns the producer limit and whether the publication is
// connected.
func (p *Publication) limit() (int64, bool) {
	if p.ipc == nil {
		return p.pubLimit.Load(), p.connected.Load()
	}
	subs := p.ipcSubs.Load()
	if subs == nil || len(*subs) == 0 {
		return 0, false
	}
	lo := int64(1<<63 - 1)
	for _, si := range *subs {
		lo = min(lo, si.posPub.Load())
	}
	return lo + p.pubWindow, true
}

func (p *Publication) signalIPC() {
	subs := p.ipcSubs.Load()
	if subs == nil {
		return
	}
	for _, si := range *subs {
		si.sub.signal()
	}
}

// IsConnected reports whether a subscriber sent a status message within
// the connection timeout (for IPC: whether a subscription exists).
func (p *Publication) IsConnected() bool {
	_, ok := p.limit()
	return ok && !p.closed.Load()
}

// Position returns the producer position.
func (p *Publication) Position() int64 { return p.producerPos.Load() }

// SessionID returns the publication's session id.
func (p *Publication) SessionID() int32 { return p.sessionID }

// StreamID returns the stream id.
func (p *Publication) StreamID() int32 { return p.streamID }

// Channel returns the channel URI.
func (p *Publication) Channel() string { return p.channel }

// MaxMessageLength is min(termLength/8, 16 MiB).
func (p *Publication) MaxMessageLength() int { return p.maxMsg }

// MaxPayloadLength is MTU−32: larger messages are fragmented.
func (p *Publication) MaxPayloadLength() int { return p.maxPayload }

// LocalAddr returns the publication socket's address ("ipc" for IPC).
func (p *Publication) LocalAddr() string {
	if p.conn == nil {
		return "ipc"
	}
	return p.conn.localAddr().String()
}

// Stats returns the publication's counters.
func (p *Publication) Stats() PublicationStats {
	st := PublicationStats{SessionID: p.sessionID, StreamID: p.streamID, Connected: p.IsConnected(), Position: p.producerPos.Load()}
	p.mu.Lock()
	st.MessagesOffered, st.BackPressureEvents, st.NotConnectedEvents = p.offered, p.backPressure.Load(), p.notConnected
	p.mu.Unlock()
	if p.snd == nil {
		st.SenderPosition = st.Position
		st.SenderLimit, _ = p.limit()
		return st
	}
	p.sndMu.Lock()
	c := p.snd.c
	st.SenderPosition, st.SenderLimit = p.snd.pos, p.snd.limit
	st.SendErrors = p.bw.errors()
	p.sndMu.Unlock()
	st.FramesSent, st.BytesSent, st.DatagramsSent = c.framesSent, c.bytesSent, c.datagramsSent
	st.SetupsSent, st.HeartbeatsSent = c.setupsSent, c.heartbeatsSent
	st.StatusMessages, st.SetupRequests, st.NAKsReceived = c.sms, c.setupRequests, c.naks
	st.Retransmits, st.RetransmitBytes, st.InvalidFrames = c.retransmits, c.retransmitBytes, c.invalid
	return st
}

// Close stops accepting offers, lets the sender drain what was offered,
// then sends end-of-stream heartbeats until the subscriber acknowledges or
// the linger expires. It returns at once; the driver finishes the work.
func (p *Publication) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		if p.ipc != nil {
			p.d.mu.Lock()
			st := p.ipc
			for i, q := range st.pubs {
				if q == p {
					st.pubs = append(st.pubs[:i], st.pubs[i+1:]...)
					break
				}
			}
			delete(p.d.pubs, p)
			addPubStats(&p.d.retired, p.Stats())
			p.d.mu.Unlock()
			p.signalIPC() // subscriptions see the end of stream when drained
			return
		}
		p.sndMu.Lock()
		p.snd.close(p.d.now())
		p.sndMu.Unlock()
		select {
		case p.wake <- struct{}{}:
		default:
		}
	})
	return nil
}

// retire removes a finished UDP publication from its driver.
func (p *Publication) retire() {
	d := p.d
	st := p.Stats()
	d.mu.Lock()
	if _, ok := d.pubs[p]; ok {
		delete(d.pubs, p)
		addPubStats(&d.retired, st)
	}
	d.mu.Unlock()
}

// endpoint runs a bound UDP socket and the receiver core for it.
type endpoint struct {
	d      *Driver
	addr   netip.AddrPort
	conn   *udpConn
	out    outFunc
	rcvBuf int // usable SO_RCVBUF, 0 if unknown

	mu      sync.Mutex // guards core, subs and closing
	core    *recvEndpoint
	subs    map[int32]*Subscription
	closing bool
}

// subImage is a subscription's view of one image (UDP) or one IPC
// publication.
type subImage struct {
	sub       *Subscription
	img       *image       // UDP
	pub       *Publication // IPC
	log       *logBuffer
	limit     *atomic.Int64 // readable up to here
	posPub    *atomic.Int64 // where the subscriber position is published
	ownPos    atomic.Int64  // posPub for IPC images
	pos       int64         // owned by the polling goroutine
	asm       assembler
	sessionID int32
	window    int32
	source    string
	joinPos   int64
	eos       atomic.Bool
}

func (si *subImage) info() Image {
	return Image{SessionID: si.sessionID, StreamID: si.sub.streamID, Source: si.source, JoinPosition: si.joinPos,
		Position: si.posPub.Load(), EndOfStream: si.eos.Load()}
}

// Subscription receives one stream from an endpoint (or IPC).
type Subscription struct {
	d        *Driver
	channel  string
	streamID int32
	opts     subOptions
	ep       *endpoint
	stream   *streamSub
	ipc      *ipcStream

	notify    chan struct{}
	closedCh  chan struct{}
	closed    atomic.Bool
	once      sync.Once // markClosed
	closeOnce sync.Once // Close

	images atomic.Pointer[[]*subImage]
	imgMu  sync.Mutex // guards writes of images and retired
	evMu   sync.Mutex // serialises image handler calls
	rr     int        // round-robin start, owned by the poller

	retired    imageCounters
	delivered  atomic.Uint64
	fragments  atomic.Uint64
	available  atomic.Uint64
	unavailabe atomic.Uint64
}

func (s *Subscription) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *Subscription) markClosed() {
	s.once.Do(func() {
		s.closed.Store(true)
		close(s.closedCh)
	})
}

func (s *Subscription) addImage(si *subImage) {
	s.imgMu.Lock()
	old := *s.images.Load()
	next := append(append(make([]*subImage, 0, len(old)+1), old...), si)
	s.images.Store(&next)
	s.imgMu.Unlock()
	s.available.Add(1)
	s.signal()
	if s.opts.onAvailable != nil {
		s.evMu.Lock()
		s.opts.onAvailable(si.info())
		s.evMu.Unlock()
	}
}

func (s *Subscription) removeImage(match func(*subImage) bool) {
	s.imgMu.Lock()
	old := *s.images.Load()
	var gone *subImage
	next := make([]*subImage, 0, len(old))
	for _, si := range old {
		if gone == nil && match(si) {
			gone = si
			continue
		}
		next = append(next, si)
	}
	s.images.Store(&next)
	s.imgMu.Unlock()
	if gone == nil {
		return
	}
	s.unavailabe.Add(1)
	s.signal()
	if s.opts.onUnavailable != nil {
		s.evMu.Lock()
		s.opts.onUnavailable(gone.info())
		s.evMu.Unlock()
	}
}

// joinIPC joins IPC publication p at its current position and returns the
// image for addImage. Called with Driver.mu held.
func (s *Subscription) joinIPC(p *Publication) *subImage {
	p.mu.Lock() // a stable position: no offer in flight
	pos := p.producerPos.Load()
	si := &subImage{sub: s, pub: p, log: p.log, limit: &p.producerPos, pos: pos,
		sessionID: p.sessionID, window: int32(p.pubWindow), source: "ipc", joinPos: pos}
	si.posPub = &si.ownPos
	si.ownPos.Store(pos)
	si.asm.maxBytes = p.maxMsg
	old := p.ipcSubs.Load()
	var next []*subImage
	if old != nil {
		next = append(next, *old...)
	}
	next = append(next, si)
	p.ipcSubs.Store(&next)
	p.mu.Unlock()
	return si
}

// Poll delivers up to fragmentLimit fragments' worth of whole messages to
// handler, across images, and returns the number of fragments consumed.
// msg is only valid during the call. Must not be called concurrently with
// itself; the handler must not call Poll.
func (s *Subscription) Poll(handler func(msg []byte, h Header), fragmentLimit int) int {
	if s.closed.Load() || fragmentLimit <= 0 {
		return 0
	}
	imgs := *s.images.Load()
	n := len(imgs)
	total, msgs := 0, 0
	var ended []*subImage
	for k := 0; k < n && total < fragmentLimit; k++ {
		si := imgs[(s.rr+k)%n]
		limit := si.limit.Load()
		if si.pos < limit {
			f, m := readLog(si.log, &si.pos, limit, fragmentLimit-total, &si.asm, si.sessionID, s.streamID, handler)
			total += f
			msgs += m
			si.posPub.Store(si.pos)
			if si.img != nil && si.pos-si.img.smPos.Load() > int64(si.window/4) {
				s.ep.nudge(si.img)
			}
		}
		if si.pub != nil && si.pub.closed.Load() && si.pos >= si.pub.producerPos.Load() {
			ended = append(ended, si)
		}
	}
	if n > 0 {
		s.rr = (s.rr + 1) % n
	}
	if total > 0 {
		s.fragments.Add(uint64(total))
		s.delivered.Add(uint64(msgs))
	}
	for _, si := range ended {
		s.dropIPCImage(si)
	}
	return total
}

func (s *Subscription) dropIPCImage(si *subImage) {
	si.eos.Store(true)
	p := si.pub
	p.mu.Lock()
	if old := p.ipcSubs.Load(); old != nil {
		var next []*subImage
		for _, x := range *old {
			if x != si {
				next = append(next, x)
			}
		}
		p.ipcSubs.Store(&next)
	}
	p.mu.Unlock()
	s.removeImage(func(x *subImage) bool { return x == si })
}

// Wait blocks until data may be available to Poll, an image event
// happened, the subscription is closed or ctx is done (then it returns
// ctx.Err()). Spurious wake-ups are possible. Call it from the polling
// goroutine.
func (s *Subscription) Wait(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	for _, si := range *s.images.Load() {
		if si.posPub.Load() < si.limit.Load() {
			return nil
		}
	}
	select {
	case <-s.notify:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closedCh:
		return ErrClosed
	}
}

// Notify returns a channel that receives a value when data arrives or an
// image comes or goes. Capacity 1: wake-ups coalesce, and Wait consumes
// them too, so use one or the other.
func (s *Subscription) Notify() <-chan struct{} { return s.notify }

// Images returns a snapshot of the current images.
func (s *Subscription) Images() []Image {
	imgs := *s.images.Load()
	out := make([]Image, 0, len(imgs))
	for _, si := range imgs {
		out = append(out, si.info())
	}
	return out
}

// IsConnected reports whether at least one image exists.
func (s *Subscription) IsConnected() bool { return len(*s.images.Load()) > 0 }

// StreamID returns the stream id.
func (s *Subscription) StreamID() int32 { return s.streamID }

// Channel returns the channel URI.
func (s *Subscription) Channel() string { return s.channel }

// LocalAddr returns the bound endpoint address ("ipc" for IPC); useful
// with endpoint port 0.
func (s *Subscription) LocalAddr() string {
	if s.ep == nil {
		return "ipc"
	}
	return s.ep.conn.localAddr().String()
}

// Stats returns the subscription's counters.
func (s *Subscription) Stats() SubscriptionStats {
	st := SubscriptionStats{StreamID: s.streamID, Positions: map[int32]int64{}}
	imgs := *s.images.Load()
	st.Images = len(imgs)
	for _, si := range imgs {
		st.Positions[si.sessionID] = si.posPub.Load()
	}
	st.ImagesAvailable, st.ImagesUnavailable = s.available.Load(), s.unavailabe.Load()
	st.MessagesDelivered, st.FragmentsDelivered = s.delivered.Load(), s.fragments.Load()
	if s.ep == nil {
		return st
	}
	s.ep.mu.Lock()
	c := s.retired
	for _, img := range s.ep.core.images {
		if img.sub == s.stream {
			addImageCounters(&c, &img.c)
		}
	}
	st.SetupRequestsSent = s.ep.core.c.setupRequests // endpoint-wide
	st.RejectedSetups = s.ep.core.c.rejectedSetup
	s.ep.mu.Unlock()
	st.FramesReceived, st.BytesReceived, st.DatagramsReceived = c.frames, c.bytes, c.datagrams
	st.HeartbeatsReceived, st.SetupsReceived = c.heartbeats, c.setups
	st.StatusMessagesSent, st.NAKsSent = c.sms, c.naks
	st.DuplicateOrLate, st.Overruns = c.duplicates, c.overruns
	return st
}

func addImageCounters(dst, src *imageCounters) {
	dst.frames += src.frames
	dst.bytes += src.bytes
	dst.datagrams += src.datagrams
	dst.heartbeats += src.heartbeats
	dst.setups += src.setups
	dst.sms += src.sms
	dst.naks += src.naks
	dst.duplicates += src.duplicates
	dst.overruns += src.overruns
}

// Close removes the subscription; its images drain (SMs with 0x40) and go
// away. The endpoint socket closes once its last subscription and image
// are gone.
func (s *Subscription) Close() error {
	// Concurrent callers wait for the first one to finish.
	s.closeOnce.Do(s.close)
	return nil
}

func (s *Subscription) close() {
	if s.closed.Load() {
		return // the driver closed it
	}
	d := s.d
	st := s.Stats()
	if s.ipc != nil {
		d.mu.Lock()
		for i, x := range s.ipc.subs {
			if x == s {
				s.ipc.subs = append(s.ipc.subs[:i], s.ipc.subs[i+1:]...)
				break
			}
		}
		delete(d.subs, s)
		addSubStats(&d.retired, st)
		d.mu.Unlock()
		for _, si := range *s.images.Load() {
			s.dropIPCImage(si)
		}
		s.markClosed()
		return
	}
	e := s.ep
	e.mu.Lock()
	if e.subs[s.streamID] == s {
		delete(e.subs, s.streamID)
	}
	e.core.unsubscribe(s.streamID, d.now(), e.out)
	e.mu.Unlock()
	e.conn.setReadDeadline(time.Now()) // let the loop re-plan its timers
	d.mu.Lock()
	delete(d.subs, s)
	addSubStats(&d.retired, st)
	d.mu.Unlock()
	s.markClosed()
}
