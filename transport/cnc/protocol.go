package cnc

// Client-driver control protocol: commands (client → driver, through the
// to-driver ring buffer) and responses (driver → clients, through the
// broadcast buffer). Little-endian, packed to 4 bytes. Type ids are
// Aeron's and append-only. See docs/aeron-cnc.md §6.
const (
	CmdAddPublication          = 0x01
	CmdRemovePublication       = 0x02
	CmdAddExclusivePublication = 0x03
	CmdAddSubscription         = 0x04
	CmdRemoveSubscription      = 0x05
	CmdClientKeepalive         = 0x06
	CmdAddDestination          = 0x07
	CmdRemoveDestination       = 0x08
	CmdAddCounter              = 0x09
	CmdRemoveCounter           = 0x0A
	CmdClientClose             = 0x0B
	CmdAddRcvDestination       = 0x0C
	CmdRemoveRcvDestination    = 0x0D
	CmdTerminateDriver         = 0x0E

	RspOnError                    = 0x0F01
	RspOnAvailableImage           = 0x0F02
	RspOnPublicationReady         = 0x0F03
	RspOnOperationSuccess         = 0x0F04
	RspOnUnavailableImage         = 0x0F05
	RspOnExclusivePublicationRead = 0x0F06
	RspOnSubscriptionReady        = 0x0F07
	RspOnCounterReady             = 0x0F08
	RspOnUnavailableCounter       = 0x0F09
	RspOnClientTimeout            = 0x0F0A
	RspOnStaticCounter            = 0x0F0B
	RspOnPublicationError         = 0x0F0C
)

// Error codes carried by ON_ERROR.
const (
	ErrCodeGeneric             = 0
	ErrCodeInvalidChannel      = 1
	ErrCodeUnknownSubscription = 2
	ErrCodeUnknownPublication  = 3
	ErrCodeChannelEndpoint     = 4
	ErrCodeUnknownCounter      = 5
	ErrCodeUnknownCommand      = 6
	ErrCodeMalformedCommand    = 7
	ErrCodeNotSupported        = 8
	ErrCodeUnknownHost         = 9
	ErrCodeResourceUnavailable = 10
	ErrCodeGenericError        = 11
	ErrCodeStorageSpace        = 12
)

// maxString bounds every length-prefixed string decoded here (channels,
// log file names, error texts): the buffers' max message lengths are far
// below it anyway.
const maxString = 1 << 20

func str(b []byte, off int) (string, int, error) {
	if off+4 > len(b) {
		return "", 0, malformed("string length at %d beyond %d bytes", off, len(b))
	}
	n := int(int32(le.Uint32(b[off:])))
	if n < 0 || n > maxString || off+4+n > len(b) {
		return "", 0, malformed("string length %d at %d in %d bytes", n, off, len(b))
	}
	return string(b[off+4 : off+4+n]), off + 4 + n, nil
}

func putStr(b []byte, s string) []byte {
	b = le.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func need(b []byte, n int, what string) error {
	if len(b) < n {
		return malformed("%s: %d bytes, need %d", what, len(b), n)
	}
	return nil
}

func i64(b []byte, off int) int64 { return int64(le.Uint64(b[off:])) }
func i32(b []byte, off int) int32 { return int32(le.Uint32(b[off:])) }

// Correlated heads every command: the client and this command's ids.
// CLIENT_KEEPALIVE and CLIENT_CLOSE are just this.
type Correlated struct{ ClientID, CorrelationID int64 }

// Encode appends the 16-byte encoding.
func (c Correlated) Encode(b []byte) []byte {
	b = le.AppendUint64(b, uint64(c.ClientID))
	return le.AppendUint64(b, uint64(c.CorrelationID))
}

// DecodeCorrelated decodes a command's head.
func DecodeCorrelated(b []byte) (Correlated, error) {
	if err := need(b, 16, "correlated command"); err != nil {
		return Correlated{}, err
	}
	return Correlated{i64(b, 0), i64(b, 8)}, nil
}

// PublicationCommand is ADD_PUBLICATION / ADD_EXCLUSIVE_PUBLICATION:
// 0 client id, 8 correlation id, 16 stream id, 20 channel length, 24 channel.
type PublicationCommand struct {
	Correlated
	StreamID int32
	Channel  string
}

// Encode appends the encoding.
func (c PublicationCommand) Encode(b []byte) []byte {
	b = c.Correlated.Encode(b)
	b = le.AppendUint32(b, uint32(c.StreamID))
	return putStr(b, c.Channel)
}

// DecodePublicationCommand decodes an add-publication command.
func DecodePublicationCommand(b []byte) (PublicationCommand, error) {
	if err := need(b, 24, "publication command"); err != nil {
		return PublicationCommand{}, err
	}
	ch, _, err := str(b, 20)
	return PublicationCommand{Correlated{i64(b, 0), i64(b, 8)}, i32(b, 16), ch}, err
}

// SubscriptionCommand is ADD_SUBSCRIPTION: 0 client id, 8 correlation id,
// 16 registration correlation id (-1), 24 stream id, 28 channel length,
// 32 channel.
type SubscriptionCommand struct {
	Correlated
	RegistrationCorrelationID int64
	StreamID                  int32
	Channel                   string
}

// Encode appends the encoding.
func (c SubscriptionCommand) Encode(b []byte) []byte {
	b = c.Correlated.Encode(b)
	b = le.AppendUint64(b, uint64(c.RegistrationCorrelationID))
	b = le.AppendUint32(b, uint32(c.StreamID))
	return putStr(b, c.Channel)
}

// DecodeSubscriptionCommand decodes an add-subscription command.
func DecodeSubscriptionCommand(b []byte) (SubscriptionCommand, error) {
	if err := need(b, 32, "subscription command"); err != nil {
		return SubscriptionCommand{}, err
	}
	ch, _, err := str(b, 28)
	return SubscriptionCommand{Correlated{i64(b, 0), i64(b, 8)}, i64(b, 16), i32(b, 24), ch}, err
}

// RemoveCommand is REMOVE_PUBLICATION / REMOVE_SUBSCRIPTION / REMOVE_COUNTER:
// 0 client id, 8 correlation id, 16 registration id.
type RemoveCommand struct {
	Correlated
	RegistrationID int64
}

// Encode appends the encoding.
func (c RemoveCommand) Encode(b []byte) []byte {
	return le.AppendUint64(c.Correlated.Encode(b), uint64(c.RegistrationID))
}

// DecodeRemoveCommand decodes a remove command.
func DecodeRemoveCommand(b []byte) (RemoveCommand, error) {
	if err := need(b, 24, "remove command"); err != nil {
		return RemoveCommand{}, err
	}
	return RemoveCommand{Correlated{i64(b, 0), i64(b, 8)}, i64(b, 16)}, nil
}

// PublicationReady is ON_PUBLICATION_READY / ON_EXCLUSIVE_PUBLICATION_READY:
// 0 correlation id, 8 registration id, 16 session id, 20 stream id,
// 24 publication-limit counter id, 28 channel-status counter id,
// 32 log file name length, 36 log file name.
type PublicationReady struct {
	CorrelationID        int64
	RegistrationID       int64
	SessionID            int32
	StreamID             int32
	PositionLimitCounter int32
	ChannelStatusCounter int32
	LogFile              string
}

// Encode appends the encoding.
func (r PublicationReady) Encode(b []byte) []byte {
	b = le.AppendUint64(b, uint64(r.CorrelationID))
	b = le.AppendUint64(b, uint64(r.RegistrationID))
	b = le.AppendUint32(b, uint32(r.SessionID))
	b = le.AppendUint32(b, uint32(r.StreamID))
	b = le.AppendUint32(b, uint32(r.PositionLimitCounter))
	b = le.AppendUint32(b, uint32(r.ChannelStatusCounter))
	return putStr(b, r.LogFile)
}

// DecodePublicationReady decodes a publication-ready response.
func DecodePublicationReady(b []byte) (PublicationReady, error) {
	if err := need(b, 36, "publication ready"); err != nil {
		return PublicationReady{}, err
	}
	lf, _, err := str(b, 32)
	return PublicationReady{i64(b, 0), i64(b, 8), i32(b, 16), i32(b, 20), i32(b, 24), i32(b, 28), lf}, err
}

// SubscriptionReady is ON_SUBSCRIPTION_READY: 0 correlation id,
// 8 channel-status counter id.
type SubscriptionReady struct {
	CorrelationID        int64
	ChannelStatusCounter int32
}

// Encode appends the encoding.
func (r SubscriptionReady) Encode(b []byte) []byte {
	b = le.AppendUint64(b, uint64(r.CorrelationID))
	return le.AppendUint32(b, uint32(r.ChannelStatusCounter))
}

// DecodeSubscriptionReady decodes a subscription-ready response.
func DecodeSubscriptionReady(b []byte) (SubscriptionReady, error) {
	if err := need(b, 12, "subscription ready"); err != nil {
		return SubscriptionReady{}, err
	}
	return SubscriptionReady{i64(b, 0), i32(b, 8)}, nil
}

// ImageReady is ON_AVAILABLE_IMAGE: 0 correlation id (the image's),
// 8 session id, 12 stream id, 16 subscription registration id,
// 24 subscriber-position counter id, 28 log file name (length-prefixed,
// padded to 4), then the source identity (length-prefixed).
type ImageReady struct {
	CorrelationID        int64
	SessionID            int32
	StreamID             int32
	SubscriptionID       int64
	SubscriberPositionID int32
	LogFile              string
	SourceIdentity       string
}

// Encode appends the encoding.
func (r ImageReady) Encode(b []byte) []byte {
	b = le.AppendUint64(b, uint64(r.CorrelationID))
	b = le.AppendUint32(b, uint32(r.SessionID))
	b = le.AppendUint32(b, uint32(r.StreamID))
	b = le.AppendUint64(b, uint64(r.SubscriptionID))
	b = le.AppendUint32(b, uint32(r.SubscriberPositionID))
	b = putStr(b, r.LogFile)
	for i := len(r.LogFile); i%4 != 0; i++ {
		b = append(b, 0)
	}
	return putStr(b, r.SourceIdentity)
}

// DecodeImageReady decodes an available-image response.
func DecodeImageReady(b []byte) (ImageReady, error) {
	if err := need(b, 36, "image ready"); err != nil {
		return ImageReady{}, err
	}
	r := ImageReady{CorrelationID: i64(b, 0), SessionID: i32(b, 8), StreamID: i32(b, 12),
		SubscriptionID: i64(b, 16), SubscriberPositionID: i32(b, 24)}
	lf, next, err := str(b, 28)
	if err != nil {
		return r, err
	}
	r.LogFile = lf
	next = 28 + 4 + align(len(lf), 4)
	r.SourceIdentity, _, err = str(b, next)
	return r, err
}

// ImageMessage is ON_UNAVAILABLE_IMAGE: 0 correlation id (the image's),
// 8 subscription registration id, 16 stream id, 20 channel length, 24 channel.
type ImageMessage struct {
	CorrelationID  int64
	SubscriptionID int64
	StreamID       int32
	Channel        string
}

// Encode appends the encoding.
func (r ImageMessage) Encode(b []byte) []byte {
	b = le.AppendUint64(b, uint64(r.CorrelationID))
	b = le.AppendUint64(b, uint64(r.SubscriptionID))
	b = le.AppendUint32(b, uint32(r.StreamID))
	return putStr(b, r.Channel)
}

// DecodeImageMessage decodes an unavailable-image response.
func DecodeImageMessage(b []byte) (ImageMessage, error) {
	if err := need(b, 24, "image message"); err != nil {
		return ImageMessage{}, err
	}
	ch, _, err := str(b, 20)
	return ImageMessage{i64(b, 0), i64(b, 8), i32(b, 16), ch}, err
}

// ErrorResponse is ON_ERROR: 0 offending command's correlation id,
// 8 error code, 12 message length, 16 message.
type ErrorResponse struct {
	CorrelationID int64
	Code          int32
	Message       string
}

// Encode appends the encoding.
func (r ErrorResponse) Encode(b []byte) []byte {
	b = le.AppendUint64(b, uint64(r.CorrelationID))
	b = le.AppendUint32(b, uint32(r.Code))
	return putStr(b, r.Message)
}

// DecodeErrorResponse decodes an error response.
func DecodeErrorResponse(b []byte) (ErrorResponse, error) {
	if err := need(b, 16, "error response"); err != nil {
		return ErrorResponse{}, err
	}
	m, _, err := str(b, 12)
	return ErrorResponse{i64(b, 0), i32(b, 8), m}, err
}

// DecodeInt64Response decodes the single-id responses:
// ON_OPERATION_SUCCESS (correlation id) and ON_CLIENT_TIMEOUT (client id).
func DecodeInt64Response(b []byte) (int64, error) {
	if err := need(b, 8, "id response"); err != nil {
		return 0, err
	}
	return i64(b, 0), nil
}

// EncodeInt64Response encodes a single-id response.
func EncodeInt64Response(b []byte, id int64) []byte { return le.AppendUint64(b, uint64(id)) }

// CounterUpdate is ON_COUNTER_READY / ON_UNAVAILABLE_COUNTER:
// 0 correlation id, 8 counter id.
type CounterUpdate struct {
	CorrelationID int64
	CounterID     int32
}

// DecodeCounterUpdate decodes a counter response.
func DecodeCounterUpdate(b []byte) (CounterUpdate, error) {
	if err := need(b, 12, "counter update"); err != nil {
		return CounterUpdate{}, err
	}
	return CounterUpdate{i64(b, 0), i32(b, 8)}, nil
}

// DecodeResponse decodes any response type this package knows into its
// struct (for inspection and tests): PublicationReady, SubscriptionReady,
// ImageReady, ImageMessage, ErrorResponse, CounterUpdate, or int64 for
// the single-id responses. Unknown types are ErrMalformed.
func DecodeResponse(typeID int32, b []byte) (any, error) {
	switch typeID {
	case RspOnPublicationReady, RspOnExclusivePublicationRead:
		return DecodePublicationReady(b)
	case RspOnSubscriptionReady:
		return DecodeSubscriptionReady(b)
	case RspOnAvailableImage:
		return DecodeImageReady(b)
	case RspOnUnavailableImage:
		return DecodeImageMessage(b)
	case RspOnError:
		return DecodeErrorResponse(b)
	case RspOnOperationSuccess, RspOnClientTimeout:
		return DecodeInt64Response(b)
	case RspOnCounterReady, RspOnUnavailableCounter, RspOnStaticCounter:
		return DecodeCounterUpdate(b)
	}
	return nil, malformed("unknown response type %#x", typeID)
}
