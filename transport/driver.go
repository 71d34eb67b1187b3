package transport

import (
	crand "crypto/rand"
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The driver's files, by concern:
//
//	driver.go            Driver: lifecycle, adding publications and subscriptions
//	publication.go       Publication: offers and what both media share
//	publication_udp.go   udpPublication: socket, sender core, send and control loops
//	ipc.go               ipcStream, ipcPublication, ipcSubscription
//	subscription.go      Subscription and its images (subImage): polling, events
//	endpoint.go          endpoint and udpSubscription: bound socket, receiver core, receive loop
//	stats.go             DriverStats aggregation
//
// Lock order: Driver.mu → endpoint.mu → udpPublication.sndMu;
// Publication.mu (offers) is a leaf; Subscription.imgMu is a leaf;
// Subscription.evMu is held only while calling image handlers.

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
// offered and end their streams as Publication.Close does; Close waits
// until each has everything acknowledged by its subscriber and its end of
// stream sent (or finished), at most the longest publication linger, then
// stops every goroutine and closes every socket and subscription. Safe to
// call twice.
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

	var udp []*udpPublication
	var linger time.Duration
	for _, p := range pubs {
		if u, ok := p.media.(*udpPublication); ok {
			udp = append(udp, u)
			linger = max(linger, p.linger)
		}
		_ = p.Close()
	}
	deadline := time.NewTimer(linger)
	defer deadline.Stop()
	for _, u := range udp {
		select {
		case <-u.stop: // finished: the send loop closed the socket
		case <-u.flushed:
		case <-deadline.C:
			deadline.Reset(0)
		}
		u.halt()
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
	}
	p.app = termAppender{log: log, sessionID: sessionID, streamID: streamID, maxPayload: mtu - hdrLen, pos: start}
	p.producerPos.Store(start)
	p.pubLimit.Store(start)
	if ch.ipc {
		return d.addIPCPublication(p)
	}
	return d.addUDPPublication(p, ch, mtu, start)
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
		return d.addIPCSubscription(s)
	}
	return d.addUDPSubscription(s, ch)
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
