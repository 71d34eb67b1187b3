package pod

import (
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Outbox errors.
var (
	// ErrOutboxFull: the values do not fit; the caller (the generator's
	// consumer) must wait for acks to release room. Nothing is dropped.
	ErrOutboxFull = errors.New("pod: outbox full")
	// ErrOutboxOrder: appended values do not continue the outbox's sequence.
	ErrOutboxOrder = errors.New("pod: outbox append out of order")
)

// Outbox holds a publisher's unacknowledged values in sequence order: a
// bounded ring indexed by sequence number. It holds the contiguous range
// First()..Last(); Release(upTo) drops values every subscriber has committed,
// and Range(from, max) reads values to offer or replay from any position in
// the range.
//
// It is not safe for concurrent use: the publishing actor owns it.
type Outbox struct {
	ring  []uint64
	first uint64 // seq of the oldest held value (== last+1 when empty)
	n     int    // values held
}

// NewOutbox returns an empty outbox holding at most capacity values, whose
// first appended value will have sequence number next.
func NewOutbox(capacity int, next uint64) (*Outbox, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("pod: outbox capacity %d must be >= 1", capacity)
	}
	if next < 1 {
		next = 1
	}
	return &Outbox{ring: make([]uint64, capacity), first: next}, nil
}

// Cap returns the capacity in values.
func (o *Outbox) Cap() int { return len(o.ring) }

// Len returns the number of values held.
func (o *Outbox) Len() int { return o.n }

// Free returns how many more values fit.
func (o *Outbox) Free() int { return len(o.ring) - o.n }

// First returns the seq of the oldest held value (Last()+1 when empty).
func (o *Outbox) First() uint64 { return o.first }

// Last returns the seq of the newest held value, or First()-1 when empty: the
// last value ever appended (or released).
func (o *Outbox) Last() uint64 { return o.first + uint64(o.n) - 1 }

// Append adds values with sequence numbers firstSeq, firstSeq+1, ...; firstSeq
// must be Last()+1. It appends all or nothing.
func (o *Outbox) Append(firstSeq uint64, values []uint64) error {
	if firstSeq != o.Last()+1 {
		return fmt.Errorf("%w: got seq %d, want %d", ErrOutboxOrder, firstSeq, o.Last()+1)
	}
	if len(values) > o.Free() {
		return fmt.Errorf("%w: %d values, %d free", ErrOutboxFull, len(values), o.Free())
	}
	c := uint64(len(o.ring))
	for i, v := range values {
		o.ring[(firstSeq+uint64(i))%c] = v
	}
	o.n += len(values)
	return nil
}

// Release drops every value with seq <= upTo and returns how many it dropped.
func (o *Outbox) Release(upTo uint64) int {
	if upTo < o.first || o.n == 0 {
		return 0
	}
	k := upTo - o.first + 1
	if k > uint64(o.n) {
		k = uint64(o.n)
	}
	o.first += k
	o.n -= int(k)
	return int(k)
}

// Range copies into dst (reusing its storage) up to max values starting at
// seq from, and returns them. It returns nil when from is outside the held
// range.
func (o *Outbox) Range(dst []uint64, from uint64, max int) []uint64 {
	dst = dst[:0]
	if o.n == 0 || from < o.first || from > o.Last() || max <= 0 {
		return dst
	}
	k := o.Last() - from + 1
	if k > uint64(max) {
		k = uint64(max)
	}
	c := uint64(len(o.ring))
	for s := from; s < from+k; s++ {
		dst = append(dst, o.ring[s%c])
	}
	return dst
}

// OutboxState is the outbox's serialisable form (in the publisher's
// snapshot).
type OutboxState struct {
	First  uint64   `msgpack:"first"`
	Values []uint64 `msgpack:"values"`
}

// State returns a copy of the outbox's contents.
func (o *Outbox) State() OutboxState {
	return OutboxState{First: o.first, Values: o.Range(make([]uint64, 0, o.n), o.first, o.n)}
}

// RestoreOutbox rebuilds an outbox from a snapshot state. A state holding more
// values than capacity is an error (the operator shrank the outbox below what
// a snapshot holds; nothing may be dropped).
func RestoreOutbox(capacity int, s OutboxState) (*Outbox, error) {
	if len(s.Values) > capacity {
		return nil, fmt.Errorf("pod: snapshot outbox holds %d values, capacity is %d", len(s.Values), capacity)
	}
	o, err := NewOutbox(capacity, s.First)
	if err != nil {
		return nil, err
	}
	if err := o.Append(o.first, s.Values); err != nil {
		return nil, err
	}
	return o, nil
}

// EncodeMsgpack writes the outbox as its OutboxState (msgpack.CustomEncoder).
func (o *Outbox) EncodeMsgpack(enc *msgpack.Encoder) error {
	return enc.Encode(o.State())
}

// DecodeMsgpack restores the outbox from an OutboxState
// (msgpack.CustomDecoder). It keeps the outbox's capacity when the state
// fits, and grows it when it does not: a snapshot's values are never
// dropped.
func (o *Outbox) DecodeMsgpack(dec *msgpack.Decoder) error {
	var s OutboxState
	if err := dec.Decode(&s); err != nil {
		return err
	}
	capacity := max(len(o.ring), len(s.Values), 1)
	r, err := RestoreOutbox(capacity, s)
	if err != nil {
		return err
	}
	*o = *r
	return nil
}
