package cluster

import (
	"sync"
	"sync/atomic"

	"github.com/steadfast-pods/steadfast/nodeid"
)

// EpochTracker records the highest epoch seen per node id and fences lower
// ones. Only the Cluster raises it, and only from membership metadata
// (authenticated by the cluster key when one is set): an epoch named in a
// message never moves it, so a forged message cannot fence a node. Pods call
// Accept on every batch, ack and control message they receive so that a
// zombie's traffic is rejected. Safe for concurrent use.
type EpochTracker struct {
	mu      sync.Mutex
	highest map[string]uint64 // guarded by mu

	rejects atomic.Uint64
}

// NewEpochTracker returns an empty tracker.
func NewEpochTracker() *EpochTracker {
	return &EpochTracker{highest: make(map[string]uint64)}
}

// Observe records that epoch exists for nodeID and reports whether it is
// not lower than the highest epoch seen before (it never counts a reject).
// Epochs above nodeid.MaxEpoch are refused (false) and not recorded. Only
// membership may call it (see the type's comment).
func (t *EpochTracker) Observe(nodeID string, epoch uint64) bool {
	if nodeid.ValidateEpoch(epoch) != nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.highest[nodeID]
	if epoch > h {
		t.highest[nodeID] = epoch
	}
	return epoch >= h
}

// Accept reports whether a message from incarnation (nodeID, epoch) may be
// applied: false (and a counted reject) when membership has seen a higher
// epoch of nodeID. It records nothing: an epoch higher than membership's
// is accepted but does not fence anyone (the sender is not authenticated
// by it), so a forged message cannot freeze a real sender's stream.
func (t *EpochTracker) Accept(nodeID string, epoch uint64) bool {
	if epoch >= t.Highest(nodeID) {
		return true
	}
	t.rejects.Add(1)
	return false
}

// Highest returns the highest epoch seen for nodeID, 0 if none.
func (t *EpochTracker) Highest(nodeID string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.highest[nodeID]
}

// Rejects returns how many times Accept refused a message.
func (t *EpochTracker) Rejects() uint64 { return t.rejects.Load() }
