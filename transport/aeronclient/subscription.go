package aeronclient

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/cnc"
)

var _ transport.Subscriber = (*Subscription)(nil)

// Option configures AddSubscription.
type Option func(*Subscription)

// WithImageHandlers registers callbacks for images becoming available and
// unavailable. They run on the client's conductor goroutine, one at a
// time; they must not block and must not call Client.Close or
// Subscription.Close. Either may be nil.
func WithImageHandlers(available, unavailable func(transport.Image)) Option {
	return func(s *Subscription) { s.onAvail, s.onUnavail = available, unavailable }
}

// Subscription receives the images (one per publishing session) the driver
// announces for its channel and stream.
type Subscription struct {
	c              *Client
	channel        string
	streamID       int32
	registrationID int64

	onAvail, onUnavail func(transport.Image)

	mu     sync.Mutex // guards images (written by the conductor, read by Poll), closed
	images []*image
	closed bool
	next   int // round-robin start for Poll
	ready  atomic.Bool
	count  atomic.Int32
}

type image struct {
	correlationID int64
	sessionID     int32
	source        string
	join          int64
	mapping       *cnc.Mapping
	rd            *cnc.Reader
	subPos        []byte // subscriber-position counter slot
}

// AddSubscription subscribes to channel and stream.
func (c *Client) AddSubscription(channel string, streamID int32, opts ...Option) (*Subscription, error) {
	s := &Subscription{c: c, channel: channel, streamID: streamID}
	for _, o := range opts {
		o(s)
	}
	corr, _, err := c.request(cnc.CmdAddSubscription, func(corr int64) func([]byte) []byte {
		// Register before the command goes out: available-image responses
		// may follow the subscription-ready one immediately.
		s.registrationID = corr
		c.mu.Lock()
		c.subs[corr] = s
		c.mu.Unlock()
		return cnc.SubscriptionCommand{Correlated: cnc.Correlated{ClientID: c.clientID, CorrelationID: corr},
			RegistrationCorrelationID: -1, StreamID: streamID, Channel: channel}.Encode
	})
	if err != nil {
		c.mu.Lock()
		delete(c.subs, corr)
		c.mu.Unlock()
		s.release(false)
		return nil, fmt.Errorf("aeronclient: add subscription %s stream %d: %w", channel, streamID, err)
	}
	s.ready.Store(true)
	return s, nil
}

// onAvailable runs on the conductor.
func (s *Subscription) onAvailable(r cnc.ImageReady) {
	m, l, err := s.c.mapLog(r.LogFile)
	if err != nil {
		s.c.cfg.Logger.Warn("aeronclient: image log", "err", err)
		return
	}
	slot, err := s.c.cnc.Counters.Slot(r.SubscriberPositionID)
	if err != nil {
		_ = m.Close()
		s.c.cfg.Logger.Warn("aeronclient: image position counter", "err", err)
		return
	}
	join := cnc.LoadInt64(slot, 0)
	img := &image{
		correlationID: r.CorrelationID, sessionID: r.SessionID, source: r.SourceIdentity,
		join: join, mapping: m, rd: cnc.NewReader(l, join), subPos: slot,
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = m.Close()
		return
	}
	s.images = append(s.images, img)
	s.count.Store(int32(len(s.images)))
	info := img.info(s.streamID)
	s.mu.Unlock()
	if s.onAvail != nil {
		s.onAvail(info)
	}
}

func (s *Subscription) onUnavailable(correlationID int64) {
	s.mu.Lock()
	var gone *image
	for i, img := range s.images {
		if img.correlationID == correlationID {
			gone = img
			s.images = append(s.images[:i:i], s.images[i+1:]...)
			break
		}
	}
	s.count.Store(int32(len(s.images)))
	s.mu.Unlock()
	if gone == nil {
		return
	}
	info := gone.info(s.streamID)
	_ = gone.mapping.Close()
	if s.onUnavail != nil {
		s.onUnavail(info)
	}
}

func (img *image) info(streamID int32) transport.Image {
	return transport.Image{
		SessionID: img.sessionID, StreamID: streamID, Source: img.source,
		JoinPosition: img.join, Position: img.rd.Position(),
		EndOfStream: img.rd.Position() >= img.rd.Log.EndOfStreamPosition(),
	}
}

// Poll hands up to fragmentLimit fragments' worth of messages to handler
// (whole messages: fragments are reassembled) and returns the number of
// fragments consumed. msg is valid only during the call. Call from one
// goroutine at a time.
func (s *Subscription) Poll(handler func(msg []byte, h transport.Header), fragmentLimit int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.images)
	if n == 0 || s.closed || s.c.dead.Load() {
		return 0
	}
	if s.next >= n {
		s.next = 0
	}
	total := 0
	for i := 0; i < n && total < fragmentLimit; i++ {
		img := s.images[(s.next+i)%n]
		got, err := img.poll(handler, fragmentLimit-total)
		if err != nil {
			s.c.cfg.Logger.Warn("aeronclient: image", "session", img.sessionID, "err", err)
		}
		total += got
	}
	s.next++
	return total
}

// poll reads frames from the current term of one image and stores the
// subscriber position.
func (img *image) poll(handler func([]byte, transport.Header), limit int) (int, error) {
	before := img.rd.Position()
	n, err := img.rd.Poll(func(msg []byte, m cnc.Message) { handler(msg, transport.Header(m)) }, limit)
	if pos := img.rd.Position(); pos != before {
		cnc.StoreRelease64(img.subPos, 0, pos)
	}
	return n, err
}

// Wait blocks until an image has data to read, ctx ends, or the client
// stops (returning its error). It polls (no driver notification exists
// across processes).
func (s *Subscription) Wait(ctx context.Context) error {
	return s.c.wait(ctx, s.hasData)
}

func (s *Subscription) hasData() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, img := range s.images {
		if img.rd.HasData() {
			return true
		}
	}
	return s.closed
}

// Images describes the current images.
func (s *Subscription) Images() []transport.Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]transport.Image, 0, len(s.images))
	for _, img := range s.images {
		out = append(out, img.info(s.streamID))
	}
	return out
}

// IsConnected reports whether at least one image is available.
func (s *Subscription) IsConnected() bool { return s.count.Load() > 0 }

// StreamID, Channel and RegistrationID describe the subscription.
func (s *Subscription) StreamID() int32       { return s.streamID }
func (s *Subscription) Channel() string       { return s.channel }
func (s *Subscription) RegistrationID() int64 { return s.registrationID }

// Close removes the subscription from the driver and unmaps its images.
// Safe to call twice.
func (s *Subscription) Close() error {
	s.c.mu.Lock()
	mine := s.c.subs[s.registrationID] == s
	delete(s.c.subs, s.registrationID)
	alive := s.c.err == nil
	s.c.mu.Unlock()
	if !mine {
		return nil
	}
	var err error
	if alive && s.ready.Load() {
		_, _, err = s.c.request(cnc.CmdRemoveSubscription, func(corr int64) func([]byte) []byte {
			return cnc.RemoveCommand{Correlated: cnc.Correlated{ClientID: s.c.clientID, CorrelationID: corr},
				RegistrationID: s.registrationID}.Encode
		})
	}
	s.release(false)
	return err
}

func (s *Subscription) release(tell bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if tell && s.ready.Load() {
		_ = s.c.send(cnc.CmdRemoveSubscription, cnc.RemoveCommand{Correlated: cnc.Correlated{ClientID: s.c.clientID,
			CorrelationID: s.c.cnc.ToDriver.NextCorrelationID()}, RegistrationID: s.registrationID}.Encode)
	}
	for _, img := range s.images {
		_ = img.mapping.Close()
	}
	s.images = nil
	s.count.Store(0)
}
