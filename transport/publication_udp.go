package transport

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// udpPublication is a publication's UDP media: its own ephemeral socket,
// the pure sender core, and two goroutines — the send loop (data, SETUPs,
// heartbeats, end of stream) and the control loop (SMs and NAKs).
type udpPublication struct {
	p    *Publication
	conn *udpConn
	dest netip.AddrPort
	out  sendFunc

	sndMu sync.Mutex     // guards snd and bw
	snd   *sender        // pure core
	bw    datagramWriter // batches the send loop's datagrams

	sentPos   atomic.Int64
	sendLimit atomic.Int64
	blockedAt atomic.Int64
	idle      atomic.Bool
	wake      chan struct{}
	stop      chan struct{} // closed when the publication finished or the driver halts it
	stopOnce  sync.Once
	flushed   chan struct{} // closed once a closing sender is flushed (see sender.flushed)
	flushOnce sync.Once
}

// addUDPPublication binds p's socket towards ch's endpoint and starts its
// loops.
func (d *Driver) addUDPPublication(p *Publication, ch *channel, mtu int, start int64) (*Publication, error) {
	dest, err := resolveUDP(ch.endpoint)
	if err != nil {
		return nil, badChannel(p.channel, "endpoint", "%v", err)
	}
	local, err := localFor(dest, ch.iface)
	if err != nil {
		return nil, badChannel(p.channel, "interface", "%v", err)
	}
	rcvBuf, sndBuf := d.socketBuffers(ch)
	conn, err := listenUDP(local, rcvBuf, sndBuf)
	if err != nil {
		return nil, fmt.Errorf("transport: publication socket: %w", err)
	}
	u := &udpPublication{p: p, conn: conn, dest: dest, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		flushed: make(chan struct{})}
	u.snd = newSender(senderParams{
		sessionID: p.sessionID, streamID: p.streamID, mtu: mtu, pubWindow: p.pubWindow,
		heartbeat: int64(d.cfg.HeartbeatInterval), connTimeout: int64(d.cfg.ConnectionTimeout),
		rtxLinger: int64(d.cfg.RetransmitLinger), linger: int64(p.linger), eos: ch.eos,
	}, p.log, start, d.now())
	u.bw = newDatagramWriter(conn, dest, d.cfg.GSO)
	u.out = u.bw.add
	u.sentPos.Store(start)
	u.sendLimit.Store(start)
	p.media = u
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		_ = conn.close()
		return nil, ErrClosed
	}
	d.pubs[p] = struct{}{}
	d.goRun(u.sendLoop)
	d.goRun(u.controlLoop)
	d.mu.Unlock()
	d.logger.Debug("transport: publication added", "channel", p.channel, "stream", p.streamID, "session", p.sessionID, "local", conn.localAddr())
	return p, nil
}

func (u *udpPublication) limit() (int64, bool) { return u.p.pubLimit.Load(), u.p.connected.Load() }

// afterAppend wakes the send goroutine if it is idle: a busy producer
// pays one atomic load per offer.
func (u *udpPublication) afterAppend() {
	if u.idle.Load() && u.idle.CompareAndSwap(true, false) {
		u.signal()
	}
}

func (u *udpPublication) signal() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

func (u *udpPublication) close() {
	u.sndMu.Lock()
	u.snd.close(u.p.d.now())
	u.sndMu.Unlock()
	u.signal()
}

// halt stops the loops and closes the socket now, finished or not.
func (u *udpPublication) halt() {
	u.stopOnce.Do(func() { close(u.stop) })
	_ = u.conn.close()
}

func (u *udpPublication) localAddr() string { return u.conn.localAddr().String() }

func (u *udpPublication) stats(st *PublicationStats) {
	u.sndMu.Lock()
	c := u.snd.c
	st.SenderPosition, st.SenderLimit = u.snd.pos, u.snd.limit
	st.SendErrors = u.bw.errors()
	u.sndMu.Unlock()
	st.FramesSent, st.BytesSent, st.DatagramsSent = c.framesSent, c.bytesSent, c.datagramsSent
	st.SetupsSent, st.HeartbeatsSent = c.setupsSent, c.heartbeatsSent
	st.StatusMessages, st.SetupRequests, st.NAKsReceived = c.sms, c.setupRequests, c.naks
	st.Retransmits, st.RetransmitBytes, st.InvalidFrames = c.retransmits, c.retransmitBytes, c.invalid
}

// publishLocked copies the sender's state to the atomics Offer reads.
// Called with sndMu held.
func (u *udpPublication) publishLocked(now int64) {
	u.sentPos.Store(u.snd.pos)
	u.sendLimit.Store(u.snd.limit)
	u.blockedAt.Store(u.snd.blockedLimit)
	u.p.pubLimit.Store(u.snd.producerLimit(now))
	u.p.connected.Store(u.snd.connected(now) && !u.snd.closing)
	if u.snd.closing && u.snd.flushed() {
		u.flushOnce.Do(func() { close(u.flushed) })
	}
}

// hasWork reports whether offered data is waiting within the window.
func (u *udpPublication) hasWork() bool {
	prod, sent := u.p.producerPos.Load(), u.sentPos.Load()
	lim := u.sendLimit.Load()
	return prod > sent && sent < lim && lim != u.blockedAt.Load()
}

// sendLoop transmits offered data, SETUPs, heartbeats and end of stream.
// It blocks when idle; Offer wakes it through wake only when idle is set.
func (u *udpPublication) sendLoop() {
	p := u.p
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	spin := p.d.cfg.SpinIdle
	for {
		now := p.d.now()
		u.sndMu.Lock()
		u.snd.doWork(now, p.producerPos.Load(), u.out)
		u.bw.flush()
		u.publishLocked(now)
		finished := u.snd.finished
		next := u.snd.nextDeadline(now)
		u.sndMu.Unlock()
		if finished {
			u.halt()
			p.retire()
			return
		}
		if spin {
			select {
			case <-u.stop:
				return
			default:
			}
			if !u.hasWork() {
				runtime.Gosched()
			}
			continue
		}
		u.idle.Store(true)
		if u.hasWork() {
			u.idle.Store(false)
			continue
		}
		timer.Reset(time.Duration(next - now))
		select {
		case <-u.wake:
		case <-timer.C:
		case <-u.stop:
			u.idle.Store(false)
			return
		}
		u.idle.Store(false)
	}
}

// controlLoop reads SMs and NAKs from the publication's socket (blocking)
// and answers NAKs at once.
func (u *udpPublication) controlLoop() {
	p := u.p
	buf := make([]byte, 2048)
	pace := errPacer{where: "publication " + u.conn.localAddr().String()}
	for {
		n, _, err := u.conn.readFrom(buf)
		if err != nil {
			if isClosed(err) {
				return
			}
			select {
			case <-u.stop:
				return
			default:
			}
			if !isTimeout(err) && !pace.fail(p.d, err, u.stop) {
				return
			}
			continue
		}
		pace.ok()
		now := p.d.now()
		u.sndMu.Lock()
		u.snd.onControl(buf[:n], now, u.out)
		u.bw.flush()
		u.publishLocked(now)
		u.sndMu.Unlock()
		u.signal()
	}
}
