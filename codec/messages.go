package codec

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Ack is a subscriber's committed watermark for one publisher: every value of
// that publisher with seq <= Committed is contained in a durable snapshot of
// the subscriber. Wire form: KindAck, then a msgpack array of the fields.
type Ack struct {
	_msgpack        struct{} `msgpack:",as_array"`
	Subscriber      string   // subscriber node id
	SubscriberEpoch uint64   // subscriber epoch
	Publisher       string   // publisher node id the watermark is for
	PublisherEpoch  uint64   // newest publisher epoch the subscriber has seen
	Committed       uint64   // highest seq covered by a durable snapshot
}

// ControlType says what a Control message means. Wire enum: append-only.
type ControlType uint8

const (
	// ControlEndOfStream: the publisher has generated its last value, Seq.
	ControlEndOfStream ControlType = 1
	// ControlHello: a subscriber announces itself (NodeID, Epoch) to a
	// publisher and asks it to replay after Seq. Only subscribers send it.
	ControlHello ControlType = 2
	// ControlReleased: a publisher no longer holds its values up to Seq
	// (released from its outbox before this subscriber acknowledged them).
	ControlReleased ControlType = 3
)

// Control is a small control message. Wire form: KindControl, then a msgpack
// array of the fields.
type Control struct {
	_msgpack struct{} `msgpack:",as_array"`
	Type     ControlType
	NodeID   string
	Epoch    uint64
	Seq      uint64
}

// AppendAck appends the encoding of a to dst.
func AppendAck(dst []byte, a *Ack) ([]byte, error) { return appendMsgpack(dst, KindAck, a) }

// DecodeAck decodes an ack.
func DecodeAck(msg []byte, a *Ack) error {
	if err := decodeMsgpack(msg, KindAck, a); err != nil {
		return err
	}
	if len(a.Subscriber) > MaxIDLen || len(a.Publisher) > MaxIDLen {
		return malformed("ack: id too long")
	}
	return nil
}

// AppendControl appends the encoding of c to dst.
func AppendControl(dst []byte, c *Control) ([]byte, error) {
	return appendMsgpack(dst, KindControl, c)
}

// DecodeControl decodes a control message.
func DecodeControl(msg []byte, c *Control) error {
	if err := decodeMsgpack(msg, KindControl, c); err != nil {
		return err
	}
	switch {
	case len(c.NodeID) > MaxIDLen:
		return malformed("control: id too long")
	case c.Type != ControlEndOfStream && c.Type != ControlHello && c.Type != ControlReleased:
		return malformed("control: unknown type %d", c.Type)
	}
	return nil
}

func appendMsgpack(dst []byte, k Kind, v any) ([]byte, error) {
	buf := bytes.NewBuffer(append(dst, byte(k)))
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(buf)
	if err := enc.Encode(v); err != nil {
		return dst, fmt.Errorf("codec: encode %s: %w", k, err)
	}
	return buf.Bytes(), nil
}

func decodeMsgpack(msg []byte, k Kind, v any) error {
	if len(msg) == 0 || Kind(msg[0]) != k {
		return malformed("not a %s", k)
	}
	r := bytes.NewReader(msg[1:])
	dec := msgpack.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		return malformed("%s: %v", k, err)
	}
	if r.Len() != 0 {
		return malformed("%s: trailing bytes", k)
	}
	return nil
}

// Marshal encodes an actor state (or any value) as msgpack.
func Marshal(v any) ([]byte, error) {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("codec: marshal: %w", err)
	}
	return b, nil
}

// Unmarshal decodes msgpack produced by Marshal into v.
func Unmarshal(data []byte, v any) error {
	if err := msgpack.Unmarshal(data, v); err != nil {
		return malformed("unmarshal: %v", err)
	}
	return nil
}

// StateCodec adapts Marshal/Unmarshal to the actor runtime's state codec
// interface (Marshal(any) ([]byte, error); Unmarshal([]byte, any) error).
type StateCodec struct{}

func (StateCodec) Marshal(v any) ([]byte, error)      { return Marshal(v) }
func (StateCodec) Unmarshal(data []byte, v any) error { return Unmarshal(data, v) }
