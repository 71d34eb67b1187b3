package transport

import "context"

// Publisher is the publication API shared by this package's embedded
// driver (*Publication) and by clients of an external media driver
// (transport/aeronclient): code written against it does not care which
// driver carries its stream.
type Publisher interface {
	// Offer appends msg; refusals return a negative code and one of
	// ErrNotConnected, ErrBackPressured, ErrClosed, ErrMaxPositionExceeded,
	// ErrMessageTooLarge (wrapped errors match with errors.Is).
	Offer(msg []byte) (int64, error)
	Position() int64
	IsConnected() bool
	SessionID() int32
	StreamID() int32
	Channel() string
	MaxMessageLength() int
	MaxPayloadLength() int
	Close() error
}

// Subscriber is the subscription API shared by the embedded driver
// (*Subscription) and external-driver clients.
type Subscriber interface {
	// Poll hands whole messages to handler (msg valid only during the
	// call) and returns the number of fragments read.
	Poll(handler func(msg []byte, h Header), fragmentLimit int) int
	// Wait blocks until data may be available, ctx ends or the
	// subscription closes.
	Wait(ctx context.Context) error
	Images() []Image
	IsConnected() bool
	StreamID() int32
	Channel() string
	Close() error
}

var (
	_ Publisher  = (*Publication)(nil)
	_ Subscriber = (*Subscription)(nil)
)
