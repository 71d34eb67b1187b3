package pod

import (
	"errors"
	"fmt"
	"math"
	"sort"

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

// Outbox holds a publisher's unacknowledged values in sequence order. It
// holds the contiguous range First()..Last(), at most Cap() values;
// Release(upTo) drops values every subscriber has committed, and Range(from,
// max) reads values to offer or replay from any position in the range.
//
// The values are kept as runs of consecutive values (value, value+1, ...
// at consecutive seqs), so its memory and its encoded size (the publisher's
// checkpoints and snapshots) grow with the number of runs, not of values:
// the pods' generator is a replayable source (value = seq), whose whole
// outbox is one run of 24 bytes whatever --outbox is. Arbitrary values
// cost one run (24 bytes) each.
//
// It is not safe for concurrent use: the publishing actor owns it.
type Outbox struct {
	runs     []obRun // runs[head:] hold First()..Last() in order
	head     int
	first    uint64 // seq of the oldest held value (== last+1 when empty)
	n        int    // values held
	capacity int
}

// obRun: the values at seqs seq..seq+n-1 are val..val+n-1.
type obRun struct{ seq, val, n uint64 }

// NewOutbox returns an empty outbox holding at most capacity values, whose
// first appended value will have sequence number next.
func NewOutbox(capacity int, next uint64) (*Outbox, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("pod: outbox capacity %d must be >= 1", capacity)
	}
	if next < 1 {
		next = 1
	}
	return &Outbox{first: next, capacity: capacity}, nil
}

// Cap returns the capacity in values.
func (o *Outbox) Cap() int { return o.capacity }

// Len returns the number of values held.
func (o *Outbox) Len() int { return o.n }

// Free returns how many more values fit.
func (o *Outbox) Free() int { return o.capacity - o.n }

// First returns the seq of the oldest held value (Last()+1 when empty).
func (o *Outbox) First() uint64 { return o.first }

// Last returns the seq of the newest held value, or First()-1 when empty: the
// last value ever appended (or released).
func (o *Outbox) Last() uint64 { return o.first + uint64(o.n) - 1 }

// Runs returns how many runs of consecutive values the outbox holds (its
// memory is about 24 bytes a run).
func (o *Outbox) Runs() int { return len(o.runs) - o.head }

// check returns the error for appending n values at firstSeq, if any.
func (o *Outbox) check(firstSeq uint64, n int) error {
	if firstSeq != o.Last()+1 {
		return fmt.Errorf("%w: got seq %d, want %d", ErrOutboxOrder, firstSeq, o.Last()+1)
	}
	if n > o.Free() {
		return fmt.Errorf("%w: %d values, %d free", ErrOutboxFull, n, o.Free())
	}
	return nil
}

// Append adds values with sequence numbers firstSeq, firstSeq+1, ...; firstSeq
// must be Last()+1. It appends all or nothing.
func (o *Outbox) Append(firstSeq uint64, values []uint64) error {
	if err := o.check(firstSeq, len(values)); err != nil {
		return err
	}
	for i := 0; i < len(values); {
		// The longest run of consecutive values from i.
		j := i + 1
		for j < len(values) && values[j] == values[j-1]+1 {
			j++
		}
		o.push(firstSeq+uint64(i), values[i], uint64(j-i))
		i = j
	}
	return nil
}

// AppendRun adds the n values first, first+1, ... with sequence numbers
// firstSeq, firstSeq+1, ...; firstSeq must be Last()+1. It appends all or
// nothing. The pods' generator appends this way (value = seq).
func (o *Outbox) AppendRun(firstSeq, first uint64, n int) error {
	if n < 0 || first > math.MaxUint64-uint64(max(n, 1)-1) {
		return fmt.Errorf("pod: outbox run of %d values from %d overflows", n, first)
	}
	if err := o.check(firstSeq, n); err != nil {
		return err
	}
	if n > 0 {
		o.push(firstSeq, first, uint64(n))
	}
	return nil
}

// push appends a run (seq is Last()+1, n >= 1 and fits), extending the
// newest run when it continues it.
func (o *Outbox) push(seq, val, n uint64) {
	if k := len(o.runs); k > o.head {
		if r := &o.runs[k-1]; r.val+r.n == val {
			r.n += n
			o.n += int(n)
			return
		}
	}
	o.runs = append(o.runs, obRun{seq: seq, val: val, n: n})
	o.n += int(n)
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
	for o.head < len(o.runs) {
		r := &o.runs[o.head]
		end := r.seq + r.n // first seq after the run
		if end <= o.first {
			o.head++
			continue
		}
		if r.seq < o.first {
			d := o.first - r.seq
			r.seq, r.val, r.n = o.first, r.val+d, r.n-d
		}
		break
	}
	switch {
	case o.head == len(o.runs):
		o.runs, o.head = o.runs[:0], 0
	case o.head >= 64 && 2*o.head >= len(o.runs):
		// Reuse the storage released runs held.
		k := copy(o.runs, o.runs[o.head:])
		o.runs, o.head = o.runs[:k], 0
	}
	return int(k)
}

// Range copies into dst (reusing its storage) up to max values starting at
// seq from, and returns them. It returns dst empty when from is outside the
// held range.
func (o *Outbox) Range(dst []uint64, from uint64, max int) []uint64 {
	dst = dst[:0]
	if o.n == 0 || from < o.first || from > o.Last() || max <= 0 {
		return dst
	}
	runs := o.runs[o.head:]
	// The run holding from: the last one starting at or before it.
	i := sort.Search(len(runs), func(i int) bool { return runs[i].seq > from }) - 1
	for ; i < len(runs) && len(dst) < max; i++ {
		r := runs[i]
		off := uint64(0)
		if from > r.seq {
			off = from - r.seq
		}
		for v := r.val + off; v < r.val+r.n && len(dst) < max; v++ {
			dst = append(dst, v)
		}
	}
	return dst
}

// OutboxState is the outbox's serialisable form (in the publisher's
// snapshot): the values from seq First on, as runs of consecutive values
// (pairs [first value, count] in Runs). Values is the older form (one
// entry a value), still read.
type OutboxState struct {
	First  uint64   `msgpack:"first"`
	Values []uint64 `msgpack:"values,omitempty"`
	Runs   []uint64 `msgpack:"runs,omitempty"`
}

// State returns a copy of the outbox's contents.
func (o *Outbox) State() OutboxState {
	s := OutboxState{First: o.first}
	for _, r := range o.runs[o.head:] {
		s.Runs = append(s.Runs, r.val, r.n)
	}
	return s
}

// RestoreOutbox rebuilds an outbox from a snapshot state. A state holding more
// values than capacity is an error (the operator shrank the outbox below what
// a snapshot holds; nothing may be dropped).
func RestoreOutbox(capacity int, s OutboxState) (*Outbox, error) {
	n, err := s.values()
	if err != nil {
		return nil, err
	}
	if n > capacity {
		return nil, fmt.Errorf("pod: snapshot outbox holds %d values, capacity is %d", n, capacity)
	}
	return s.restore(capacity)
}

// values checks the state's form and returns how many values it holds (at
// most maxOutbox: a state claiming more is refused before anything is
// built).
func (s OutboxState) values() (int, error) {
	if len(s.Values) > 0 && len(s.Runs) > 0 {
		return 0, errors.New("pod: outbox state has both values and runs")
	}
	if len(s.Runs)%2 != 0 {
		return 0, fmt.Errorf("pod: outbox state has %d run numbers, want pairs", len(s.Runs))
	}
	total := uint64(len(s.Values))
	for i := 0; i < len(s.Runs); i += 2 {
		v, n := s.Runs[i], s.Runs[i+1]
		if n == 0 || n > maxOutbox || v > math.MaxUint64-(n-1) {
			return 0, fmt.Errorf("pod: outbox state run %d: %d values from %d", i/2, n, v)
		}
		if total += n; total > maxOutbox {
			return 0, fmt.Errorf("pod: outbox state holds more than %d values", maxOutbox)
		}
	}
	return int(total), nil
}

// restore builds the outbox (the state was checked by values).
func (s OutboxState) restore(capacity int) (*Outbox, error) {
	o, err := NewOutbox(capacity, s.First)
	if err != nil {
		return nil, err
	}
	if err := o.Append(o.first, s.Values); err != nil {
		return nil, err
	}
	for i := 0; i < len(s.Runs); i += 2 {
		if err := o.AppendRun(o.Last()+1, s.Runs[i], int(s.Runs[i+1])); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// EncodeMsgpack writes the outbox as its OutboxState (msgpack.CustomEncoder),
// without copying its contents.
func (o *Outbox) EncodeMsgpack(enc *msgpack.Encoder) error {
	runs := o.runs[o.head:]
	n := 1
	if len(runs) > 0 {
		n = 2
	}
	if err := enc.EncodeMapLen(n); err != nil {
		return err
	}
	if err := enc.EncodeString("first"); err != nil {
		return err
	}
	if err := enc.EncodeUint(o.first); err != nil {
		return err
	}
	if len(runs) == 0 {
		return nil
	}
	if err := enc.EncodeString("runs"); err != nil {
		return err
	}
	if err := enc.EncodeArrayLen(2 * len(runs)); err != nil {
		return err
	}
	for _, r := range runs {
		if err := enc.EncodeUint(r.val); err != nil {
			return err
		}
		if err := enc.EncodeUint(r.n); err != nil {
			return err
		}
	}
	return nil
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
	n, err := s.values()
	if err != nil {
		return err
	}
	r, err := s.restore(max(o.capacity, n, 1))
	if err != nil {
		return err
	}
	*o = *r
	return nil
}
