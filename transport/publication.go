package transport

import (
	"sync"
	"sync/atomic"
	"time"
)

// Publication sends messages on one stream, over UDP to one endpoint or
// over IPC to the driver's subscriptions of the stream. It holds the log
// and the offer path both media share; what differs is its media.
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
	media      pubMedia

	mu           sync.Mutex // guards app and the offer counters
	app          termAppender
	offered      uint64
	notConnected uint64
	backPressure atomic.Uint64

	producerPos atomic.Int64
	// pubLimit and connected are published by a UDP sender for the
	// lock-free back-pressure check in Offer; IPC never sets connected.
	pubLimit  atomic.Int64
	connected atomic.Bool
	closed    atomic.Bool
	closeOnce sync.Once
}

// pubMedia is how a publication's log reaches its subscribers:
// udpPublication (a sender core on its own socket) or ipcPublication (the
// driver's IPC subscriptions read the log directly).
type pubMedia interface {
	// limit returns the producer limit and whether a subscriber is there.
	limit() (int64, bool)
	// afterAppend wakes whoever consumes the log.
	afterAppend()
	// close starts the end of the stream (called once).
	close()
	// stats fills the media's counters and positions into st.
	stats(st *PublicationStats)
	localAddr() string
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
	if p.connected.Load() && p.producerPos.Load()+int64(framedLength(len(msg), p.maxPayload)) > p.pubLimit.Load() {
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
	p.media.afterAppend()
	return pos, nil
}

// admitLocked, with p.mu held, checks that a message of msgLen bytes may
// be appended now and returns Offer's refusal (code, sentinel) if not.
func (p *Publication) admitLocked(msgLen int) (int64, error) {
	limit, connected := p.media.limit()
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

// IsConnected reports whether a subscriber sent a status message within
// the connection timeout (for IPC: whether a subscription exists).
func (p *Publication) IsConnected() bool {
	_, ok := p.media.limit()
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
func (p *Publication) LocalAddr() string { return p.media.localAddr() }

// Stats returns the publication's counters.
func (p *Publication) Stats() PublicationStats {
	st := PublicationStats{SessionID: p.sessionID, StreamID: p.streamID, Connected: p.IsConnected(), Position: p.producerPos.Load()}
	p.mu.Lock()
	st.MessagesOffered, st.BackPressureEvents, st.NotConnectedEvents = p.offered, p.backPressure.Load(), p.notConnected
	p.mu.Unlock()
	p.media.stats(&st)
	return st
}

// Close stops accepting offers, lets the sender drain what was offered,
// then sends end-of-stream heartbeats until the subscriber acknowledges or
// the linger expires. It returns at once; the driver finishes the work.
func (p *Publication) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		p.media.close()
	})
	return nil
}

// retire removes a finished publication from its driver, keeping its
// counters.
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
