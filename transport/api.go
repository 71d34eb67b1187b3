package transport

// Header describes a delivered message.
type Header struct {
	SessionID int32
	StreamID  int32
	// TermID and TermOffset locate the message's first fragment.
	TermID     int32
	TermOffset int32
	// Position is the stream position just after the message (where the
	// next one starts); positions grow monotonically per image.
	Position int64
	// ReservedValue is the reserved_value of the message's first fragment.
	ReservedValue int64
	// Flags of the first fragment (0xC0 for unfragmented messages).
	Flags uint8
}

// Image describes one publishing session as seen by a subscription.
type Image struct {
	SessionID int32
	StreamID  int32
	// Source is the publisher's address ("ip:port"), "ipc" for aeron:ipc.
	Source string
	// JoinPosition is the position the image started at.
	JoinPosition int64
	// Position is the subscriber's position in the image.
	Position int64
	// EndOfStream is set once the publisher signalled end of stream.
	EndOfStream bool
	// InitialTermID and TermLength are the image log's (the publisher's).
	InitialTermID int32
	TermLength    int32
}

// SubscriptionOption configures AddSubscription.
type SubscriptionOption func(*subOptions)

type subOptions struct {
	onAvailable   func(Image)
	onUnavailable func(Image)
}

// WithImageHandlers registers callbacks for images becoming available and
// unavailable. They run on a driver goroutine, never concurrently for one
// subscription, in order for one session; they must not block and must not
// call Driver.Close or Subscription.Close. Either may be nil.
func WithImageHandlers(available, unavailable func(Image)) SubscriptionOption {
	return func(o *subOptions) {
		o.onAvailable = available
		o.onUnavailable = unavailable
	}
}

// PublicationStats are a publication's counters (monotonic since creation)
// and positions.
type PublicationStats struct {
	SessionID int32
	StreamID  int32
	Connected bool
	// Position is the producer position (end of the last offered message),
	// SenderPosition how far the sender has transmitted, SenderLimit the
	// flow-control limit granted by status messages.
	Position       int64
	SenderPosition int64
	SenderLimit    int64

	MessagesOffered    uint64
	FramesSent         uint64 // DATA/PAD frames, retransmissions included
	BytesSent          uint64 // UDP payload bytes of data datagrams
	DatagramsSent      uint64 // all datagrams, control included
	SetupsSent         uint64
	HeartbeatsSent     uint64
	StatusMessages     uint64 // SMs received (all flags)
	SetupRequests      uint64 // SMs with 0x80 received
	NAKsReceived       uint64
	Retransmits        uint64 // retransmitted datagrams
	RetransmitBytes    uint64
	BackPressureEvents uint64 // Offers refused with ErrBackPressured
	NotConnectedEvents uint64 // Offers refused with ErrNotConnected
	InvalidFrames      uint64 // datagrams dropped on the publication socket
	SendErrors         uint64 // datagrams the socket refused to send
}

// SubscriptionStats are a subscription's counters and images.
type SubscriptionStats struct {
	StreamID           int32
	Images             int    // current images
	ImagesAvailable    uint64 // images that became available so far
	ImagesUnavailable  uint64
	FramesReceived     uint64 // DATA/PAD frames accepted into an image
	BytesReceived      uint64 // payload bytes of accepted data datagrams
	DatagramsReceived  uint64
	HeartbeatsReceived uint64
	SetupsReceived     uint64
	StatusMessagesSent uint64
	SetupRequestsSent  uint64 // SMs with 0x80 for unknown sessions (whole endpoint)
	NAKsSent           uint64
	RejectedSetups     uint64 // SETUPs refused (invalid, too large, too many images; whole endpoint)
	DuplicateOrLate    uint64 // data dropped: under-run or already present
	Overruns           uint64 // data dropped: beyond the window
	MessagesDelivered  uint64
	FragmentsDelivered uint64
	// Positions holds each current image's subscriber position by session.
	Positions map[int32]int64
}

// DriverStats aggregates every publication and subscription of a driver and
// counts what no single one owns (datagrams dropped before dispatch).
type DriverStats struct {
	Publications   int
	Subscriptions  int
	Endpoints      int
	Images         int
	FramesSent     uint64
	BytesSent      uint64
	FramesReceived uint64
	BytesReceived  uint64
	SetupsSent     uint64
	SetupsReceived uint64
	SMsSent        uint64
	SMsReceived    uint64
	NAKsSent       uint64
	NAKsReceived   uint64
	Retransmits    uint64
	HeartbeatsSent uint64
	BackPressure   uint64
	// InvalidDatagrams counts malformed datagrams by reason (one of
	// InvalidDatagramReasons).
	InvalidDatagrams map[string]uint64
	// UnknownStream counts well-formed datagrams for streams nobody
	// subscribed to on that endpoint (dropped, as Aeron does).
	UnknownStream uint64
	// RejectedSetups counts SETUPs refused (invalid, term too large, or a
	// limit reached with no image to evict); EvictedImages the images
	// removed to admit a new session (see Config.ReceiveBufferBudget).
	RejectedSetups uint64
	EvictedImages  uint64
	// SocketErrors counts socket reads that failed with an error other
	// than a timeout or a closed socket; the loop that got one backs off
	// (1 ms doubling to 100 ms) and logs at most once a second.
	SocketErrors uint64
	// SendErrors counts datagrams a socket refused to send (data, SETUP,
	// heartbeats, SMs, NAKs); the protocol's timers resend what matters.
	SendErrors uint64
	// PendingImages counts sessions that sent a SETUP but no frame yet:
	// they hold no log memory and are not images of a subscription.
	PendingImages int
	// ReceiveBufferBytes is the log memory the current images hold,
	// charged against Config.ReceiveBufferBudget.
	ReceiveBufferBytes int64
}

// InvalidDatagramReasons are the keys of Stats.InvalidDatagrams: malformed
// frames ("short", "version", "unknown-type", "truncated", "oversized",
// "bad-length") and frames or status messages a publication refused
// ("publication"). Exporters list every reason from the start, so a rate
// over them works before the first drop.
var InvalidDatagramReasons = []string{"short", "version", "unknown-type", "truncated", "oversized", "bad-length", "publication"}
