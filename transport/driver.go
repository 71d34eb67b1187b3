package transport

import (
	"context"
	"errors"
)

// errNotYet marks API entry points whose internals are not written yet.
// TEMPORARY: replaced as the runner lands.
var errNotYet = errors.New("transport: not implemented yet")

// Driver is an embedded Aeron media driver: it owns the sockets, the log
// buffers and the goroutines of its publications and subscriptions.
type Driver struct {
	cfg Config
}

// NewDriver validates cfg and starts a driver.
func NewDriver(cfg Config) (*Driver, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Driver{cfg: cfg}, nil
}

// Config returns the driver's configuration.
func (d *Driver) Config() Config { return d.cfg }

// Close closes every publication and subscription, stops every goroutine
// and closes every socket. Publications are closed without lingering.
// Safe to call more than once.
func (d *Driver) Close() error { return nil }

// Stats returns aggregated counters.
func (d *Driver) Stats() DriverStats { return DriverStats{} }

// AddPublication creates a publication on channel (aeron:udp?endpoint=...
// or aeron:ipc) and stream. A UDP publication sends from its own ephemeral
// socket, which also receives the subscriber's status messages and NAKs.
func (d *Driver) AddPublication(channel string, streamID int32) (*Publication, error) {
	return nil, errNotYet
}

// AddSubscription subscribes to stream on channel. For aeron:udp the
// endpoint is bound (shared by every subscription of this driver on that
// endpoint); each publishing session becomes an image.
func (d *Driver) AddSubscription(channel string, streamID int32, opts ...SubscriptionOption) (*Subscription, error) {
	return nil, errNotYet
}

// Publication sends messages on one stream to one endpoint (or IPC).
type Publication struct{}

// Offer appends msg to the stream and returns the new stream position. It
// never blocks. Refusals return (negative code, sentinel): ErrNotConnected,
// ErrBackPressured, ErrClosed, ErrMaxPositionExceeded, ErrMessageTooLarge;
// none of them allocates. Safe for concurrent use.
func (p *Publication) Offer(msg []byte) (int64, error) { return PublicationClosed, ErrClosed }

// IsConnected reports whether a subscriber sent a status message within
// the connection timeout (for IPC: whether a subscription exists).
func (p *Publication) IsConnected() bool { return false }

// Position returns the producer position.
func (p *Publication) Position() int64 { return 0 }

// SessionID returns the publication's session id.
func (p *Publication) SessionID() int32 { return 0 }

// StreamID returns the stream id.
func (p *Publication) StreamID() int32 { return 0 }

// MaxMessageLength is min(termLength/8, 16 MiB).
func (p *Publication) MaxMessageLength() int { return 0 }

// MaxPayloadLength is MTU−32: larger messages are fragmented.
func (p *Publication) MaxPayloadLength() int { return 0 }

// Stats returns the publication's counters.
func (p *Publication) Stats() PublicationStats { return PublicationStats{} }

// Close stops accepting offers, lets the sender drain what was offered,
// then sends end-of-stream heartbeats until the subscriber acknowledges or
// the linger expires. It returns at once; the driver finishes the work.
func (p *Publication) Close() error { return nil }

// Subscription receives one stream from an endpoint (or IPC).
type Subscription struct{}

// Poll delivers up to fragmentLimit fragments' worth of whole messages to
// handler, across images, and returns the number of fragments consumed.
// msg is only valid during the call. Must not be called concurrently with
// itself; the handler must not call Poll.
func (s *Subscription) Poll(handler func(msg []byte, h Header), fragmentLimit int) int {
	return 0
}

// Wait blocks until data may be available to Poll, an image event
// happened, the subscription is closed or ctx is done (then it returns
// ctx.Err()). Spurious wake-ups are possible.
func (s *Subscription) Wait(ctx context.Context) error { return errNotYet }

// Notify returns a channel that receives a value when data arrives while
// nobody is in Wait. Use with select; capacity 1, so wake-ups coalesce.
func (s *Subscription) Notify() <-chan struct{} { return nil }

// Images returns a snapshot of the current images.
func (s *Subscription) Images() []Image { return nil }

// IsConnected reports whether at least one image exists.
func (s *Subscription) IsConnected() bool { return false }

// StreamID returns the stream id.
func (s *Subscription) StreamID() int32 { return 0 }

// Stats returns the subscription's counters.
func (s *Subscription) Stats() SubscriptionStats { return SubscriptionStats{} }

// Close removes the subscription; its images drain (SMs with 0x40) and go
// away. The endpoint socket closes with the last subscription on it.
func (s *Subscription) Close() error { return nil }
