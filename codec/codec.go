package codec

import (
	"errors"
	"fmt"
)

// Kind is the first byte of every message on a transport stream.
// Wire enum: append-only, never renumber.
type Kind byte

const (
	KindBatch   Kind = 1
	KindAck     Kind = 2
	KindControl Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindBatch:
		return "batch"
	case KindAck:
		return "ack"
	case KindControl:
		return "control"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

var (
	// ErrMalformed is wrapped by every decoding error caused by bad input.
	ErrMalformed = errors.New("codec: malformed message")
	// ErrChecksum means a snapshot's CRC32 does not match its payload.
	ErrChecksum = errors.New("codec: snapshot checksum mismatch")
	// ErrTooLarge means a message or snapshot exceeds a size limit.
	ErrTooLarge = errors.New("codec: too large")
)

// MaxIDLen bounds node ids inside messages (nodeid validates the same bound).
const MaxIDLen = 64

// Peek returns the kind of an encoded message without decoding it.
func Peek(msg []byte) (Kind, error) {
	if len(msg) == 0 {
		return 0, fmt.Errorf("%w: empty", ErrMalformed)
	}
	k := Kind(msg[0])
	switch k {
	case KindBatch, KindAck, KindControl:
		return k, nil
	}
	return k, fmt.Errorf("%w: unknown kind %d", ErrMalformed, msg[0])
}

func malformed(what string, args ...any) error {
	return fmt.Errorf("%w: "+what, append([]any{ErrMalformed}, args...)...)
}
