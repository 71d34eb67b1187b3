package transport

import (
	"context"
	"sync"
	"sync/atomic"
)

// Subscription receives one stream from a UDP endpoint or over IPC. Each
// publishing session is one image (subImage); Poll reads them in turn. What
// differs between the media is behind media (udpSubscription,
// ipcSubscription) and each image's src (udpImage, ipcPublication).
type Subscription struct {
	d        *Driver
	channel  string
	streamID int32
	opts     subOptions
	media    subMedia

	notify    chan struct{}
	closedCh  chan struct{}
	closed    atomic.Bool
	once      sync.Once // markClosed
	closeOnce sync.Once // Close

	images atomic.Pointer[[]*subImage]
	imgMu  sync.Mutex // guards writes of images
	evMu   sync.Mutex // serialises image handler calls
	rr     int        // round-robin start, owned by the poller

	delivered   atomic.Uint64
	fragments   atomic.Uint64
	available   atomic.Uint64
	unavailable atomic.Uint64
}

// subMedia is where a subscription's images come from.
type subMedia interface {
	// unsubscribe detaches the subscription from its endpoint or IPC
	// stream; its images go.
	unsubscribe()
	// stats fills the media's counters into st.
	stats(st *SubscriptionStats)
	localAddr() string
}

// subImage is a subscription's view of one image: a UDP image of an
// endpoint or an IPC publication's log.
type subImage struct {
	sub       *Subscription
	src       imageSource
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

// imageSource is what a subImage reads: udpImage or ipcPublication.
type imageSource interface {
	// polled runs after Poll advanced si.pos (UDP: an early status
	// message once a quarter window was consumed).
	polled(si *subImage)
	// ended reports whether the stream ended and si read all of it (IPC;
	// UDP images end by the endpoint's events).
	ended(si *subImage) bool
	// detach forgets si (IPC: its position no longer limits the
	// publication).
	detach(si *subImage)
}

func (si *subImage) info() Image {
	return Image{SessionID: si.sessionID, StreamID: si.sub.streamID, Source: si.source, JoinPosition: si.joinPos,
		Position: si.posPub.Load(), EndOfStream: si.eos.Load(), InitialTermID: si.log.initialTermID, TermLength: si.log.termLen}
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
	s.unavailable.Add(1)
	s.signal()
	if s.opts.onUnavailable != nil {
		s.evMu.Lock()
		s.opts.onUnavailable(gone.info())
		s.evMu.Unlock()
	}
}

// endImage removes an image whose stream ended (or whose subscription
// closed) and was read to its end.
func (s *Subscription) endImage(si *subImage) {
	si.eos.Store(true)
	si.src.detach(si)
	s.removeImage(func(x *subImage) bool { return x == si })
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
			si.src.polled(si)
		}
		if si.src.ended(si) {
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
		s.endImage(si)
	}
	return total
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
func (s *Subscription) LocalAddr() string { return s.media.localAddr() }

// Stats returns the subscription's counters.
func (s *Subscription) Stats() SubscriptionStats {
	st := SubscriptionStats{StreamID: s.streamID, Positions: map[int32]int64{}}
	imgs := *s.images.Load()
	st.Images = len(imgs)
	for _, si := range imgs {
		st.Positions[si.sessionID] = si.posPub.Load()
	}
	st.ImagesAvailable, st.ImagesUnavailable = s.available.Load(), s.unavailable.Load()
	st.MessagesDelivered, st.FragmentsDelivered = s.delivered.Load(), s.fragments.Load()
	s.media.stats(&st)
	return st
}

// Close removes the subscription; its images drain (SMs with 0x40) and go
// away. The endpoint socket closes once its last subscription and image
// are gone. Concurrent calls wait for the first one to finish.
func (s *Subscription) Close() error {
	s.closeOnce.Do(s.close)
	return nil
}

func (s *Subscription) close() {
	if s.closed.Load() {
		return // the driver closed it
	}
	d := s.d
	st := s.Stats()
	s.media.unsubscribe()
	d.mu.Lock()
	delete(d.subs, s)
	addSubStats(&d.retired, st)
	d.mu.Unlock()
	s.markClosed()
}
