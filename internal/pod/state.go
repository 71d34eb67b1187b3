package pod

import (
	"fmt"
	"math"

	"github.com/steadfast-pods/steadfast/codec"
)

// Restoring actor states: snapshots come from this pod's disk and from
// peers, so a state is decoded into a fresh value, validated, and only then
// installed. A state that does not decode or validate is refused with an
// error wrapping ErrBadState; nothing already in place is overwritten and
// nothing panics (the restore-path fuzzers check this).

// decodePubState decodes the publishing actor's state. capacity is the
// configured outbox capacity (a snapshot holding more keeps its values).
func decodePubState(b []byte, capacity int) (*pubState, error) {
	ob, err := NewOutbox(max(capacity, 1), 1)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadState, err)
	}
	st := &pubState{Outbox: ob}
	if err := codec.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%w: publisher state: %v", ErrBadState, err)
	}
	if st.Subs == nil {
		st.Subs = map[string]*SubRecord{}
	}
	if err := st.Validate(); err != nil {
		return nil, err
	}
	return st, nil
}

// decodeLoggerState decodes the logger's state (the subscriber's tally).
func decodeLoggerState(b []byte) (*loggerState, error) {
	ls := &loggerState{}
	if err := codec.Unmarshal(b, ls); err != nil {
		return nil, fmt.Errorf("%w: logger state: %v", ErrBadState, err)
	}
	if err := ls.Tally.Validate(); err != nil {
		return nil, err
	}
	if ls.Tally.Pubs == nil {
		ls.Tally.Pubs = map[string]*PubTally{}
	}
	return ls, nil
}

// validOutbox checks an outbox's sequence range for overflow.
func validOutbox(o *Outbox) error {
	if o.First() == 0 || o.First() > math.MaxUint64-uint64(o.Cap()) {
		return fmt.Errorf("%w: outbox first seq %d", ErrBadState, o.First())
	}
	return nil
}

// validateSnapshot is the pods' cluster.Config.ValidateSnapshot: every actor
// state a snapshot carries that a restore would decode (the publishing
// actor's and the logger's) must decode and validate. The cluster calls it
// on replica pushes (a refused one is never stored) and on every restore
// source (a refused one is skipped and the next-newest source tried), so a
// poisoned snapshot can neither crash a replacement nor be kept.
func validateSnapshot(outboxCapacity int) func(*codec.Snapshot) error {
	return func(snap *codec.Snapshot) error {
		if b, ok := snap.States[actorPublish]; ok {
			if _, err := decodePubState(b, outboxCapacity); err != nil {
				return err
			}
		}
		if b, ok := snap.States[actorLogger]; ok {
			if _, err := decodeLoggerState(b); err != nil {
				return err
			}
		}
		return nil
	}
}
