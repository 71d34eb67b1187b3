package pod

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/steadfast-pods/steadfast/internal/fizzbuzz"
	"github.com/steadfast-pods/steadfast/nodeid"
)

// Category is FizzBuzz's classification of a value (see internal/fizzbuzz).
type Category = fizzbuzz.Category

const (
	Plain    = fizzbuzz.Plain
	Fizz     = fizzbuzz.Fizz
	Buzz     = fizzbuzz.Buzz
	FizzBuzz = fizzbuzz.FizzBuzz
)

// Classify is FizzBuzz: 15 → FizzBuzz, 3 → Fizz, 5 → Buzz, else the value.
func Classify(v uint64) Category { return fizzbuzz.Classify(v) }

// Line renders a value the way the logger prints it.
func Line(v uint64, c Category) string {
	switch c {
	case Fizz:
		return "Fizz"
	case Buzz:
		return "Buzz"
	case FizzBuzz:
		return "FizzBuzz"
	}
	return strconv.FormatUint(v, 10)
}

// maxDeadListed bounds the dead-lettered values a tally lists (it counts all).
const maxDeadListed = 1024

// PubTally is the logger's state for one publisher's stream. Every field is
// a fact about what was applied, so the closed-form check (Check) can tell a
// complete, duplicate-free stream from a broken one.
type PubTally struct {
	Epoch    uint64 `msgpack:"epoch" json:"epoch"`         // highest publisher epoch applied
	FirstSeq uint64 `msgpack:"first_seq" json:"first_seq"` // first seq applied (1 for a complete stream)
	LastSeq  uint64 `msgpack:"last_seq" json:"last_seq"`   // last seq applied or dead-lettered
	EndSeq   uint64 `msgpack:"end_seq" json:"end_seq"`     // the publisher's end of stream (0: not ended)

	Count    uint64 `msgpack:"count" json:"count"` // values applied
	Fizz     uint64 `msgpack:"fizz" json:"fizz"`
	Buzz     uint64 `msgpack:"buzz" json:"buzz"`
	FizzBuzz uint64 `msgpack:"fizzbuzz" json:"fizzbuzz"`
	Plain    uint64 `msgpack:"plain" json:"plain"`
	PlainSum uint64 `msgpack:"plain_sum" json:"plain_sum"` // sum of the plain values

	DeadCount    uint64   `msgpack:"dead_count" json:"dead_count"` // values dead-lettered by the worker
	DeadLettered []uint64 `msgpack:"dead" json:"dead"`             // the first maxDeadListed of them
	Skipped      uint64   `msgpack:"skipped" json:"skipped"`       // values the publisher no longer had (lost)
	OutOfOrder   uint64   `msgpack:"out_of_order" json:"out_of_order"`
}

// Tally is the logger's persistent state: one PubTally per publisher.
type Tally struct {
	Pubs map[string]*PubTally `msgpack:"pubs" json:"pubs"`
}

// NewTally returns an empty tally.
func NewTally() *Tally { return &Tally{Pubs: map[string]*PubTally{}} }

func (t *Tally) pub(p string) *PubTally {
	if t.Pubs == nil {
		t.Pubs = map[string]*PubTally{}
	}
	pt := t.Pubs[p]
	if pt == nil {
		pt = &PubTally{}
		t.Pubs[p] = pt
	}
	return pt
}

func (pt *PubTally) step(epoch, seq uint64) {
	pt.begin(epoch, seq)
	if seq != pt.LastSeq+1 {
		pt.OutOfOrder++
	}
	if seq > pt.LastSeq {
		pt.LastSeq = seq
	}
}

// begin notes a newer epoch and, on the first value ever seen, the first
// seq.
func (pt *PubTally) begin(epoch, first uint64) {
	if epoch > pt.Epoch {
		pt.Epoch = epoch
	}
	if pt.FirstSeq == 0 {
		pt.FirstSeq = first
	}
}

// Apply counts one value. It applies whatever it is given (no filtering:
// dedup happens upstream, and the closed-form check must see its mistakes),
// noting any seq that does not follow the previous one.
func (t *Tally) Apply(pub string, epoch, seq, value uint64, c Category) {
	pt := t.pub(pub)
	pt.step(epoch, seq)
	pt.Count++
	switch c {
	case Fizz:
		pt.Fizz++
	case Buzz:
		pt.Buzz++
	case FizzBuzz:
		pt.FizzBuzz++
	default:
		pt.Plain++
		pt.PlainSum += value
	}
}

// ApplyBatch counts the values first..last of pub, whose FizzBuzz counts
// are k (the worker classified them). Like Apply it applies whatever it is
// given, noting a batch that does not follow the previous seq (each of its
// values counts as out of order).
func (t *Tally) ApplyBatch(pub string, epoch, first, last uint64, k fizzbuzz.Counts) {
	if last < first {
		return
	}
	pt := t.pub(pub)
	pt.begin(epoch, first)
	if first != pt.LastSeq+1 {
		pt.OutOfOrder += last - first + 1
	}
	pt.LastSeq = max(pt.LastSeq, last)
	pt.Count += k.Count
	pt.Fizz += k.Fizz
	pt.Buzz += k.Buzz
	pt.FizzBuzz += k.FizzBuzz
	pt.Plain += k.Plain
	pt.PlainSum += k.PlainSum
}

// DeadLetter records a value the worker could not process (a showstopper).
func (t *Tally) DeadLetter(pub string, epoch, seq, value uint64) {
	pt := t.pub(pub)
	pt.step(epoch, seq)
	pt.DeadCount++
	if len(pt.DeadLettered) < maxDeadListed {
		pt.DeadLettered = append(pt.DeadLettered, value)
	}
}

// Skip records that the publisher no longer had values from..to for this
// subscriber (they are lost; the check reports them).
func (t *Tally) Skip(pub string, epoch, from, to uint64) {
	if to < from {
		return
	}
	pt := t.pub(pub)
	pt.begin(epoch, from)
	pt.Skipped += to - from + 1
	if to > pt.LastSeq {
		pt.LastSeq = to
	}
}

// End records the publisher's end of stream at seq.
func (t *Tally) End(pub string, epoch, seq uint64) {
	pt := t.pub(pub)
	if epoch > pt.Epoch {
		pt.Epoch = epoch
	}
	pt.EndSeq = seq
}

// Ended reports whether pub's stream has ended and everything up to its end
// has been applied or dead-lettered.
func (t *Tally) Ended(pub string) bool {
	pt := t.Pubs[pub]
	return pt != nil && pt.EndSeq > 0 && pt.LastSeq >= pt.EndSeq
}

// Committed returns the last seq of pub the tally covers (its dedup
// watermark).
func (t *Tally) Committed(pub string) uint64 {
	if pt := t.Pubs[pub]; pt != nil {
		return pt.LastSeq
	}
	return 0
}

// Clone returns a deep copy.
func (t *Tally) Clone() *Tally {
	c := NewTally()
	for k, v := range t.Pubs {
		cp := *v
		cp.DeadLettered = slices.Clone(v.DeadLettered)
		c.Pubs[k] = &cp
	}
	return c
}

// Expect is the closed form of a complete stream 1..N.
type Expect fizzbuzz.Counts

// Expected returns the counts for values 1..n, minus the excluded values
// (dead letters, each a distinct value in 1..n).
func Expected(n uint64, excluded []uint64) Expect { return Expect(fizzbuzz.Expected(n, excluded)) }

// CheckResult is the verdict of the closed-form check for one publisher's stream at one
// subscriber.
type CheckResult struct {
	Delivered  uint64   `json:"delivered"`  // values applied
	Lost       uint64   `json:"lost"`       // values missing (at least)
	Duplicated uint64   `json:"duplicated"` // values applied twice (at least)
	Dead       uint64   `json:"dead_letters"`
	Problems   []string `json:"problems,omitempty"`
}

// OK reports whether nothing was lost or duplicated.
func (r CheckResult) OK() bool { return r.Lost == 0 && r.Duplicated == 0 && len(r.Problems) == 0 }

// Check compares a tally against the closed form for n values. allowedDead
// lists the values that may legitimately be dead-lettered (the
// showstoppers); any other dead letter counts as lost. Lost and duplicated
// are derived from the applied counts, not from the tally's own anomaly
// counters.
func Check(pt *PubTally, n uint64, allowedDead []uint64) CheckResult {
	if pt == nil {
		pt = &PubTally{}
	}
	var r CheckResult
	r.Delivered = pt.Count
	r.Dead = pt.DeadCount
	// Dead letters: only distinct allowed values in 1..n are excluded.
	var excluded []uint64
	seen := map[uint64]bool{}
	for _, v := range pt.DeadLettered {
		switch {
		case v < 1 || v > n:
			r.Problems = append(r.Problems, fmt.Sprintf("dead letter %d outside 1..%d", v, n))
		case seen[v]:
			r.Problems = append(r.Problems, fmt.Sprintf("value %d dead-lettered twice", v))
		case !slices.Contains(allowedDead, v):
			// Not excluded from the closed form: the count check below
			// reports it as lost.
			r.Problems = append(r.Problems, fmt.Sprintf("value %d dead-lettered but is not a showstopper", v))
		default:
			excluded = append(excluded, v)
		}
		seen[v] = true
	}
	if pt.DeadCount != uint64(len(pt.DeadLettered)) {
		r.Problems = append(r.Problems, fmt.Sprintf("%d dead letters, %d listed", pt.DeadCount, len(pt.DeadLettered)))
	}
	for _, v := range allowedDead {
		if v >= 1 && v <= n && !seen[v] {
			r.Problems = append(r.Problems, fmt.Sprintf("showstopper %d was not dead-lettered", v))
		}
	}
	e := Expected(n, excluded)
	got := Expect{Count: pt.Count, Fizz: pt.Fizz, Buzz: pt.Buzz, FizzBuzz: pt.FizzBuzz, Plain: pt.Plain, PlainSum: pt.PlainSum}
	switch {
	case got.Count < e.Count:
		r.Lost += e.Count - got.Count
	case got.Count > e.Count:
		r.Duplicated += got.Count - e.Count
	}
	if got != e {
		r.Problems = append(r.Problems, fmt.Sprintf("counts %+v, closed form %+v", got, e))
		if got.Count == e.Count {
			// Same number of values but different ones: at least one lost
			// and one applied twice.
			r.Lost++
			r.Duplicated++
		}
	}
	if pt.LastSeq != n {
		r.Problems = append(r.Problems, fmt.Sprintf("last seq %d, want %d", pt.LastSeq, n))
	}
	if pt.EndSeq != n {
		r.Problems = append(r.Problems, fmt.Sprintf("end of stream at %d, want %d", pt.EndSeq, n))
	}
	if pt.Skipped > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d values skipped (publisher no longer had them)", pt.Skipped))
	}
	return r
}

// Validate checks a decoded tally: valid publisher ids, no missing entry,
// and counts that fit the sequence range they claim.
func (t *Tally) Validate() error {
	if t == nil {
		return fmt.Errorf("%w: no tally", ErrBadState)
	}
	for id, pt := range t.Pubs {
		if err := nodeid.Validate(id); err != nil {
			return fmt.Errorf("%w: tally publisher %q: %v", ErrBadState, id, err)
		}
		if pt == nil {
			return fmt.Errorf("%w: tally publisher %q has no entry", ErrBadState, id)
		}
		if pt.Fizz+pt.Buzz+pt.FizzBuzz+pt.Plain != pt.Count {
			return fmt.Errorf("%w: tally publisher %q: categories do not add up to the count %d", ErrBadState, id, pt.Count)
		}
		if pt.FirstSeq > pt.LastSeq+1 || (pt.LastSeq > 0 && pt.FirstSeq == 0) {
			return fmt.Errorf("%w: tally publisher %q: first seq %d, last seq %d", ErrBadState, id, pt.FirstSeq, pt.LastSeq)
		}
		if pt.EndSeq > 0 && pt.LastSeq > pt.EndSeq {
			return fmt.Errorf("%w: tally publisher %q: last seq %d beyond the end %d", ErrBadState, id, pt.LastSeq, pt.EndSeq)
		}
		if len(pt.DeadLettered) > maxDeadListed || uint64(len(pt.DeadLettered)) > pt.DeadCount {
			return fmt.Errorf("%w: tally publisher %q: %d dead letters listed of %d", ErrBadState, id, len(pt.DeadLettered), pt.DeadCount)
		}
	}
	return nil
}

// CoreState returns the subscriber core's state the tally implies: per
// publisher, its epoch, its last seq (the watermark) and its end.
func (t *Tally) CoreState() SubCoreState {
	s := SubCoreState{Pubs: make(map[string]SubPubState, len(t.Pubs))}
	for id, pt := range t.Pubs {
		s.Pubs[id] = SubPubState{Epoch: pt.Epoch, Taken: pt.LastSeq, End: pt.EndSeq}
	}
	return s
}
