package cluster

import (
	"sync"
	"sync/atomic"
)

// EpochTracker records the highest epoch seen per node id and fences lower
// ones. The Cluster feeds it from membership metadata, replica pushes and
// gather replies; pods call Accept on every batch, ack and control message
// they receive so that a zombie's traffic is rejected. Safe for concurrent
// use.
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
func (t *EpochTracker) Observe(nodeID string, epoch uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.highest[nodeID]
	if epoch > h {
		t.highest[nodeID] = epoch
	}
	return epoch >= h
}

// Accept records epoch for nodeID like Observe and reports whether a
// message from that incarnation may be applied: false (and a counted
// reject) when a higher epoch of nodeID has been seen.
func (t *EpochTracker) Accept(nodeID string, epoch uint64) bool {
	if t.Observe(nodeID, epoch) {
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
