package cluster

import (
	"fmt"
	"strings"
)

// peerRef names a live peer for a replication round: its incarnation
// (memberlist name) and node id.
type peerRef struct{ name, nodeID string }

// round is one Save's replication round as a pure state machine: no
// sockets, clocks or goroutines. It is told the live peers in rendezvous
// order (ranked), the outcome of each push and every change of the live
// view, and answers which peers to push to next and which pushes to
// abandon. Save is its I/O shell (replicate.go).
//
// Rules:
//   - It starts pushes to the first Replicas ranked peers, and needs
//     min(MinAcks, that many) acknowledgements.
//   - While fewer than need have acknowledged, a failed push (or one whose
//     peer left the live view) is replaced by a push to the next ranked
//     live peer not tried yet, keeping at most Replicas pushes in flight
//     plus acknowledged. No peer is pushed to twice.
//   - It is done when need peers acknowledged, or when nothing is in
//     flight: durable if at least one acknowledged, otherwise not.
//   - The outcome of a push that was abandoned or already decided is
//     ignored.
type round struct {
	replicas, need int
	tried          map[string]bool // incarnations pushed to
	inflight       map[string]peerRef
	acked          []string // node ids, in order of acknowledgement
	errs           []error
}

// newRound starts a round over ranked (live peers, rendezvous order) and
// returns the pushes to start. With no peer it is done at once.
func newRound(replicas, minAcks int, ranked []peerRef) (*round, []peerRef) {
	first := ranked[:min(replicas, len(ranked))]
	r := &round{
		replicas: replicas,
		need:     min(minAcks, len(first)),
		tried:    make(map[string]bool),
		inflight: make(map[string]peerRef),
	}
	return r, r.launch(first)
}

func (r *round) launch(ps []peerRef) []peerRef {
	for _, p := range ps {
		r.tried[p.name] = true
		r.inflight[p.name] = p
	}
	return ps
}

// Acked records the acknowledgement of the push to name.
func (r *round) Acked(name string) {
	p, ok := r.inflight[name]
	if !ok {
		return
	}
	delete(r.inflight, name)
	r.acked = append(r.acked, p.nodeID)
}

// Failed records the failure of the push to name and returns the pushes
// that replace it, chosen from ranked (the live peers now).
func (r *round) Failed(name string, err error, ranked []peerRef) []peerRef {
	p, ok := r.inflight[name]
	if !ok {
		return nil
	}
	delete(r.inflight, name)
	r.errs = append(r.errs, fmt.Errorf("%s: %w", p.nodeID, err))
	return r.refill(ranked)
}

// ViewChanged takes the live peers now (ranked) and returns the pushes to
// abandon (their peer left the view; each counts as failed with
// errPeerGone) and the pushes that replace them.
func (r *round) ViewChanged(ranked []peerRef) (gone []string, start []peerRef) {
	live := make(map[string]bool, len(ranked))
	for _, p := range ranked {
		live[p.name] = true
	}
	for name, p := range r.inflight {
		if !live[name] {
			gone = append(gone, name)
			delete(r.inflight, name)
			r.errs = append(r.errs, fmt.Errorf("%s: %w", p.nodeID, errPeerGone))
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	return gone, r.refill(ranked)
}

// refill replaces failed pushes while acknowledgements are missing.
func (r *round) refill(ranked []peerRef) []peerRef {
	if len(r.acked) >= r.need {
		return nil
	}
	var out []peerRef
	for _, p := range ranked {
		if len(r.inflight)+len(r.acked)+len(out) >= r.replicas {
			break
		}
		if !r.tried[p.name] {
			out = append(out, p)
		}
	}
	return r.launch(out)
}

// Done reports whether the round is over.
func (r *round) Done() bool {
	return len(r.acked) >= r.need || len(r.inflight) == 0
}

// Result returns the node ids that acknowledged and, if none did, an error
// wrapping ErrNoReplica with every push's failure.
func (r *round) Result() ([]string, error) {
	if len(r.acked) > 0 {
		return r.acked, nil
	}
	if len(r.errs) == 0 {
		return nil, fmt.Errorf("%w: no live peer", ErrNoReplica)
	}
	return nil, fmt.Errorf("%w: %w", ErrNoReplica, errList(r.errs))
}

// errList is several errors on one line, "a; b", each reachable by
// errors.Is and errors.As.
type errList []error

func (e errList) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e errList) Unwrap() []error { return e }
