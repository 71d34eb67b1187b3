package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Sentinel errors. Offer's results are returned as these values directly (no
// wrapping, no allocation) so they are cheap on the hot path; test them with
// errors.Is.
var (
	// ErrBackPressured: the publication window is full; retry later.
	ErrBackPressured = errors.New("transport: back pressured")
	// ErrNotConnected: no subscriber has sent a status message within the
	// connection timeout; retry later.
	ErrNotConnected = errors.New("transport: not connected")
	// ErrClosed: the publication, subscription or driver is closed.
	ErrClosed = errors.New("transport: closed")
	// ErrMaxPositionExceeded: the stream reached the largest position its
	// term length allows (2^31 terms); a new publication is needed.
	ErrMaxPositionExceeded = errors.New("transport: max position exceeded")
	// ErrMessageTooLarge: the message exceeds MaxMessageLength.
	ErrMessageTooLarge = errors.New("transport: message too large")
	// ErrBadChannel wraps every channel URI error; the message names the key.
	ErrBadChannel = errors.New("transport: bad channel")
	// ErrBadConfig wraps Config validation errors.
	ErrBadConfig = errors.New("transport: bad config")
	// ErrInUse: the stream is already subscribed on that endpoint.
	ErrInUse = errors.New("transport: stream already subscribed on endpoint")
)

// Offer positions returned together with the errors above, mirroring
// Aeron's negative Offer codes.
const (
	NotConnected        int64 = -1
	BackPressured       int64 = -2
	AdminAction         int64 = -3
	PublicationClosed   int64 = -4
	MaxPositionExceeded int64 = -5
)

// Config configures a Driver. Zero fields are NOT replaced by defaults:
// start from DefaultConfig() and change what you need. Channel URI
// parameters override the matching fields per publication/subscription.
type Config struct {
	// TermLength is the log buffer term length in bytes (power of two,
	// 64 KiB..1 GiB). A log holds 3 terms; the largest message is
	// min(TermLength/8, 16 MiB). Larger terms allow larger windows at the
	// cost of memory (3×TermLength per publication and per image).
	// URI: term-length.
	TermLength int
	// MTU is the largest datagram sent (header included): a multiple of 32,
	// >32 and ≤ 65504. Messages above MTU−32 bytes are fragmented. A real
	// Aeron receiver requires MTU ≤ its receiver window and SO_RCVBUF.
	// URI: mtu.
	MTU int
	// ReceiverWindow is the flow-control window a subscription advertises,
	// capped at TermLength/2 and at the socket's actual receive buffer
	// (the kernel caps SO_RCVBUF at net.core.rmem_max). Bigger windows
	// raise throughput; a window above the socket buffer loses bursts.
	// URI: rcv-wnd.
	ReceiverWindow int
	// PublicationWindow caps how far a producer may run ahead of the sender
	// (0 means TermLength/2, Aeron's default). URI: pub-wnd.
	PublicationWindow int
	// SocketRcvBuf and SocketSndBuf set SO_RCVBUF/SO_SNDBUF on every socket
	// (0 leaves the OS default). The kernel caps them at rmem_max/wmem_max.
	// URI: so-rcvbuf, so-sndbuf.
	SocketRcvBuf int
	SocketSndBuf int

	// StatusMessageTimeout is the longest interval between status messages
	// a subscription sends (Aeron: 200 ms). The image drain hold after end
	// of stream is 5× this value.
	StatusMessageTimeout time.Duration
	// HeartbeatInterval: a sender sends a heartbeat after this much idle
	// time and resends SETUP at this interval (Aeron: 100 ms, hard-coded).
	HeartbeatInterval time.Duration
	// NakDelay is how long a receiver waits before NAKing a gap (Aeron
	// unicast: 100 µs); a NAK is retried every 100×NakDelay. URI: nak-delay.
	NakDelay time.Duration
	// RetransmitLinger: after a retransmission, overlapping NAKs are ignored
	// for this long (Aeron unicast: 10 ms).
	RetransmitLinger time.Duration
	// ConnectionTimeout: a publication is not connected when no status
	// message arrived within it (Aeron: 5 s).
	ConnectionTimeout time.Duration
	// ImageLivenessTimeout: an image with no data or heartbeat within it
	// drains and becomes unavailable (Aeron: 10 s).
	ImageLivenessTimeout time.Duration
	// PublicationLinger bounds the end-of-stream phase of a closed
	// publication (Aeron: 5 s). URI: linger.
	PublicationLinger time.Duration
	// PendingSetupHold: after asking an unknown session for SETUP, its data
	// is dropped and no further request is sent for this long (Aeron: 1 s).
	PendingSetupHold time.Duration

	// MaxReceiveTermLength rejects SETUPs announcing a larger term: an
	// image allocates 3 × term length, so this bounds what a remote peer
	// can make us allocate (Aeron's default term is 16 MiB; 0: no bound).
	MaxReceiveTermLength int
	// MaxImagesPerEndpoint caps the images of one bound endpoint (0: no
	// bound). MaxImagesPerSource caps the images whose publisher sends
	// from one IP address (0: no bound). ReceiveBufferBudget caps the log
	// memory (3 × term length per image) all images of the driver hold
	// together (0: no bound). A SETUP that would exceed a limit evicts an
	// image that received no data within PendingSetupHold of its SETUP,
	// or, after those, one whose sender has been silent that long and
	// whose data was consumed; if there is none it is rejected and
	// counted. So a flood of fake sessions cannot keep a restarted
	// publisher out, and the memory it makes us hold stays bounded.
	MaxImagesPerEndpoint int
	MaxImagesPerSource   int
	ReceiveBufferBudget  int64

	// GSO lets a publication hand runs of equal-sized datagrams to the
	// kernel as one UDP GSO buffer (Linux ≥ 4.18; the wire sees the same
	// datagrams). It falls back by itself where the kernel or route
	// refuses. Default true; false is for comparisons.
	GSO bool
	// DirectReadMin: data datagrams at least this long are read straight
	// into their image's log while they keep arriving in order (one system
	// call per datagram, no copy); shorter ones are read in batches and
	// copied. 0 never reads in place. Default 16 KiB.
	DirectReadMin int

	// SpinIdle makes publication send goroutines spin (with
	// runtime.Gosched) instead of blocking when idle; receive endpoints
	// always block on their socket. It can lower latency when cores are
	// spare and hurts badly when they are not (2 cores). Default false.
	SpinIdle bool

	// Seed seeds session ids, initial term ids and receiver ids. 0 uses a
	// random seed from crypto/rand.
	Seed int64
	// Now returns monotonic nanoseconds; nil uses time.Since(start).
	Now func() int64
	// Logger receives rare events (images, connection changes, dropped
	// datagrams are counted, not logged). nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the documented defaults. They are chosen by
// measurement on loopback (see README.md) and stay valid for a real Aeron
// peer: the MTU is below Aeron's default receiver window and SO_RCVBUF, the
// term length is a power of two.
func DefaultConfig() Config {
	return Config{
		TermLength:           4 << 20,
		MTU:                  8192,
		ReceiverWindow:       2 << 20,
		PublicationWindow:    0,
		SocketRcvBuf:         4 << 20,
		SocketSndBuf:         1 << 20,
		StatusMessageTimeout: 200 * time.Millisecond,
		HeartbeatInterval:    100 * time.Millisecond,
		NakDelay:             100 * time.Microsecond,
		RetransmitLinger:     10 * time.Millisecond,
		ConnectionTimeout:    5 * time.Second,
		ImageLivenessTimeout: 10 * time.Second,
		PublicationLinger:    5 * time.Second,
		PendingSetupHold:     time.Second,
		MaxReceiveTermLength: 64 << 20,
		MaxImagesPerEndpoint: 64,
		MaxImagesPerSource:   16,
		GSO:                  true,
		DirectReadMin:        16 << 10,
		ReceiveBufferBudget:  512 << 20,
	}
}

func validTermLength(t int) bool {
	return t >= minTermLength && t <= maxTermLength && t&(t-1) == 0
}

func validMTU(m int) bool { return m > hdrLen && m <= maxUDPPayload && m%frameAlign == 0 }

func (c *Config) validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", ErrBadConfig, field, v, why)
	}
	switch {
	case !validTermLength(c.TermLength):
		return bad("TermLength", c.TermLength, "must be a power of two in [64 KiB, 1 GiB]")
	case !validMTU(c.MTU):
		return bad("MTU", c.MTU, "must be a multiple of 32 in (32, 65504]")
	case c.ReceiverWindow < c.MTU:
		return bad("ReceiverWindow", c.ReceiverWindow, "must be at least MTU")
	case c.PublicationWindow != 0 && (c.PublicationWindow < c.MTU || c.PublicationWindow > c.TermLength/2):
		return bad("PublicationWindow", c.PublicationWindow, "must be 0 or in [MTU, TermLength/2]")
	case c.SocketRcvBuf < 0 || c.SocketSndBuf < 0:
		return bad("SocketRcvBuf/SocketSndBuf", c.SocketRcvBuf, "must not be negative")
	case c.StatusMessageTimeout <= 0:
		return bad("StatusMessageTimeout", c.StatusMessageTimeout, "must be positive")
	case c.HeartbeatInterval <= 0:
		return bad("HeartbeatInterval", c.HeartbeatInterval, "must be positive")
	case c.NakDelay <= 0:
		return bad("NakDelay", c.NakDelay, "must be positive")
	case c.RetransmitLinger < 0:
		return bad("RetransmitLinger", c.RetransmitLinger, "must not be negative")
	case c.ConnectionTimeout <= 0:
		return bad("ConnectionTimeout", c.ConnectionTimeout, "must be positive")
	case c.ImageLivenessTimeout <= 0:
		return bad("ImageLivenessTimeout", c.ImageLivenessTimeout, "must be positive")
	case c.PublicationLinger < 0:
		return bad("PublicationLinger", c.PublicationLinger, "must not be negative")
	case c.MaxReceiveTermLength < 0:
		return bad("MaxReceiveTermLength", c.MaxReceiveTermLength, "must not be negative")
	case c.MaxImagesPerEndpoint < 0:
		return bad("MaxImagesPerEndpoint", c.MaxImagesPerEndpoint, "must not be negative")
	case c.MaxImagesPerSource < 0:
		return bad("MaxImagesPerSource", c.MaxImagesPerSource, "must not be negative")
	case c.ReceiveBufferBudget < 0:
		return bad("ReceiveBufferBudget", c.ReceiveBufferBudget, "must not be negative")
	case c.DirectReadMin < 0:
		return bad("DirectReadMin", c.DirectReadMin, "must not be negative")
	case c.PendingSetupHold < 0:
		return bad("PendingSetupHold", c.PendingSetupHold, "must not be negative")
	}
	return nil
}
